"""Zero-shot classification by label prompts: nearest prompt by cosine, prompts from the template, and a
known answer through a real text encoder (test samples embedded exactly as their class's prompt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.checkpoint import save_encoder
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.encoders.text import text_encoder_config
from selfsup.errors import SelfsupError
from selfsup.evaluation.options import EvaluationOptions
from selfsup.evaluation.zeroshot import (
    IMAGE_TEMPLATES,
    class_embeddings,
    class_prompts,
    load_partner,
    nearest_prompt,
    partner_path,
    prompt_embeddings,
    templates_of,
    zero_shot,
)
from selfsup.modalities import get_modality

TEXT = {"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 16}


def test_nearest_prompt_is_by_cosine_not_length() -> None:
    prompts = np.array([[1.0, 0.0], [0.0, 1.0]])
    test = np.array([[10.0, 1.0], [0.1, 0.2], [-1.0, 5.0]])
    assert nearest_prompt(test, prompts).tolist() == [0, 1, 1]


def test_class_prompts_fill_the_template() -> None:
    assert class_prompts(["yes", "no_way"], "the word {}") == ["the word yes", "the word no way"]
    assert class_prompts(["cat"]) == ["cat"]
    for bad in ("the word", "{} or {}"):
        with pytest.raises(SelfsupError, match="--prompt must hold"):
            class_prompts(["cat"], bad)


def test_zero_shot_known_answer_through_a_text_encoder(one_thread) -> None:
    torch.manual_seed(0)
    text = build_encoder(text_encoder_config("small_bert", **TEXT)).eval()
    classes = ["cat", "dog", "bird"]
    prompt_emb = prompt_embeddings(text, class_prompts(classes, "a photo of a {}"))
    labels = np.array([2, 0, 1, 1, 0, 2])
    pred, details = zero_shot(prompt_emb[labels] * 3.0, text, classes, "a photo of a {}")
    assert pred.tolist() == labels.tolist()
    assert details["prompts"] == ["a photo of a cat", "a photo of a dog", "a photo of a bird"]


def test_partner_path_and_non_text_partner_refused(tmp_path, one_thread) -> None:
    text = build_encoder(text_encoder_config("small_bert", **TEXT))
    save_encoder(text, tmp_path / "text", extra={"paired_with": "../table"})
    with pytest.warns(UserWarning, match="which is gone: no zero-shot rows"):
        assert partner_path(tmp_path / "text") is None
    iris = load_builtin("iris")
    table = save_encoder(
        build_encoder(get_modality("tabular").encoder_config("mlp", iris, None, {})), tmp_path / "table"
    )
    assert partner_path(tmp_path / "text") == table.resolve()
    assert partner_path(tmp_path / "text", modality="text") is None  # a partner of another modality: none
    save_encoder(text, tmp_path / "plain")
    assert partner_path(tmp_path / "plain") is None
    with pytest.raises(SelfsupError, match="embeds label prompts with a text encoder"):
        load_partner(table)


def test_several_templates_average_the_normalised_prompt_embeddings(one_thread) -> None:
    torch.manual_seed(0)
    text = build_encoder(text_encoder_config("small_bert", **TEXT)).eval()
    classes, templates = ["cat", "dog"], ["a photo of a {}", "the {}", "{}"]
    by_hand = np.zeros((2, 32))
    for template in templates:
        for c, name in enumerate(classes):
            e = prompt_embeddings(text, [template.replace("{}", name)])[0]
            by_hand[c] += e / np.linalg.norm(e) / len(templates)
    assert np.allclose(class_embeddings(text, classes, templates), by_hand, atol=1e-5)
    pred, details = zero_shot(np.stack([by_hand[1], by_hand[0]]) * 2.0, text, classes, templates)
    assert pred.tolist() == [1, 0]
    assert details["prompt"] == "a photo of a {} | the {} | {}" and len(details["prompts"]) == 6


def test_default_templates_and_bad_ones_refused() -> None:
    assert templates_of(None, "image") == ("{}",)  # an ensemble is asked for: results never change silently
    assert templates_of("imagenet") == IMAGE_TEMPLATES and len(IMAGE_TEMPLATES) == 7
    assert templates_of(["{}", "imagenet"]) == ("{}", *IMAGE_TEMPLATES)
    assert templates_of(None, "audio") == ("{}",)
    assert templates_of(["the word {}", "{}"]) == ("the word {}", "{}")
    assert EvaluationOptions(prompt=["a {}", "the {}"]).prompt == ("a {}", "the {}")
    with pytest.raises(SelfsupError, match="--prompt must hold") as err:
        EvaluationOptions(prompt=["a {}", "no slot here"])
    assert "\n" not in str(err.value)
    with pytest.raises(SelfsupError, match="at least one template"):
        templates_of([])
