"""Zero-shot classification with label prompts (Radford et al. 2021, CLIP, section 3.1.2).

Each class name is written into a prompt (``"{}"`` by default, e.g. ``"the word {}"``), the prompts are
embedded by the text side of a paired run, and each test sample goes to the class whose prompt embedding
is nearest by cosine similarity. No label of the data is used: the training split is not read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from selfsup.checkpoint import META, load_encoder, read_meta
from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.embed import embed
from selfsup.evaluation.fewshot import normalise

DEFAULT_PROMPT = "{}"


def partner_path(encoder_path: str | Path, modality: str | None = None) -> Path | None:
    """The other side of a paired run's side export (its ``paired_with``); None for an ordinary encoder, or
    when the partner is not of ``modality``."""
    folder = Path(encoder_path)
    folder = folder if folder.is_dir() else folder.parent
    partner = read_meta(folder).get("paired_with")
    if not partner:
        return None
    path = (folder / partner).resolve()
    if not (path / META).is_file():
        warnings.warn(
            f"'{folder}' was trained with '{path}', which is gone: no zero-shot rows; pass --partner.", stacklevel=2
        )
        return None
    return path if modality is None or read_meta(path)["modality"] == modality else None


def load_partner(path: str | Path) -> Encoder:
    """The text encoder that embeds the prompts; another modality is refused."""
    partner = load_encoder(path)
    if partner.config["modality"] != "text":
        raise SelfsupError(
            f"zero-shot classification embeds label prompts with a text encoder, but '{path}' is a "
            f"{partner.config['modality']} encoder; pair the encoder with text to use it."
        )
    return partner


def class_prompts(classes: list[str], template: str = DEFAULT_PROMPT) -> list[str]:
    """Each class name written into ``template`` at its ``{}``."""
    if template.count("{}") != 1:
        raise SelfsupError(
            f"--prompt must hold '{{}}' once, where the class name goes (e.g. 'the word {{}}'); got {template!r}."
        )
    return [template.replace("{}", name.replace("_", " ")) for name in classes]


def nearest_prompt(test_emb: np.ndarray, prompt_emb: np.ndarray) -> np.ndarray:
    """For each test embedding, the index of the prompt embedding with the highest cosine similarity (the
    prompts are class prototypes, as the class centroids are in few-shot)."""
    return (normalise(test_emb) @ normalise(prompt_emb).T).argmax(1)


def prompt_embeddings(text_encoder: Encoder, prompts: list[str]) -> np.ndarray:
    """The prompts embedded by ``text_encoder`` (tokenised its way)."""
    from selfsup.encoders.text import tokenize

    return embed(text_encoder, tokenize(prompts, text_encoder.config))


def zero_shot(
    test_emb: np.ndarray, text_encoder: Encoder, classes: list[str], template: str = DEFAULT_PROMPT
) -> tuple[np.ndarray, dict]:
    """Predicted class indices for the test embeddings, and the prompts used."""
    prompts = class_prompts(classes, template)
    pred = nearest_prompt(test_emb, prompt_embeddings(text_encoder, prompts))
    return pred, {"prompt": template, "prompts": prompts}
