"""Pre-training on text end to end: the data is read once, with the chosen encoder's tokenizer and length, a
model folder's weights are where a run starts, and the saved encoder embeds and evaluates new text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from selfsup.checkpoint import load_encoder
from selfsup.encoders import build_encoder
from selfsup.encoders.text import load_tokenizer, text_encoder_config
from selfsup.errors import SelfsupError
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import pretrain

SMALL = {"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 16}
GOOD = [
    "a warm and funny film",
    "wonderful acting and a clever script",
    "a delight from start to finish",
    "moving, smart and beautifully shot",
    "the best comedy of the year",
    "charming and heartfelt",
]
BAD = [
    "a dull and tedious mess",
    "the plot makes no sense at all",
    "badly acted and far too long",
    "a lazy sequel with nothing new",
    "boring from the first scene",
    "an ugly, joyless slog",
]


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.jsonl"
    rows = [{"review": t, "y": "good"} for t in GOOD] + [{"review": t, "y": "bad"} for t in BAD]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def _tokenizing(preprocessing) -> dict:
    """The tokenizer and text length a text preprocessing reads with."""
    return {key: preprocessing.settings[key] for key in ("tokenizer", "max_length")}


def _recipe(tmp_path, data, **fields):
    return make_recipe(
        **(
            {
                "data": str(data),
                "out": str(tmp_path / "run"),
                "epochs": 1,
                "max_steps": 3,
                "batch_size": 4,
                "online_probe": False,
                "text_field": "review",
                "label": "y",
            }
            | fields
        )
    )


def test_small_bert_mlm_run_reads_with_its_tokenizer_and_evaluates(tmp_path, reviews, one_thread):
    result = pretrain(
        _recipe(tmp_path, reviews, method="mlm", encoder="small_bert", encoder_args=SMALL), progress=False
    )
    assert result.splits.train.x.shape == (12, 16)  # read at the encoder's max_length (default 128)
    assert _tokenizing(result.splits.preprocessing) == {"tokenizer": "minilm", "max_length": 16}
    assert result.loss_history and all(np.isfinite(loss) for _, loss in result.loss_history)
    encoder = load_encoder(result.out)
    assert "read" not in encoder.config  # how the files were read is the encoder's preprocessing
    assert encoder.preprocessing == result.encoder.preprocessing
    assert (encoder.preprocessing.get("text_field"), encoder.preprocessing.get("label")) == ("review", "y")
    report = evaluate(result.out, str(reviews), EvaluationOptions(protocols=("knn",), k=3, test_fraction=0.5))
    assert {row["encoder"] for row in report.rows} >= {"pretrained", "random-init", "raw-input"}


def test_a_resumed_init_run_reads_with_the_exports_tokenizer_and_length(tmp_path, reviews, one_thread):
    from selfsup.workflows.pretrain import resume_recipe

    export = pretrain(
        _recipe(
            tmp_path, reviews, method="mlm", encoder="small_bert", encoder_args=SMALL, out=str(tmp_path / "export")
        ),
        progress=False,
    )
    first = pretrain(_recipe(tmp_path, reviews, method="mlm", init=str(export.out), max_steps=-1), progress=False)
    assert first.splits.train.x.shape == (12, 16)  # the export's max_length, not the default 128
    resumed = pretrain(resume_recipe(tmp_path / "run", epochs=2), resume=True, progress=False)
    assert resumed.splits.train.x.shape == (12, 16) and _tokenizing(resumed.splits.preprocessing) == {
        "tokenizer": "minilm",
        "max_length": 16,
    }


def test_a_minilm_run_starts_from_its_weights(tmp_path, reviews, one_thread):
    from selfsup.encoders.text import load_pretrained

    recipe = _recipe(tmp_path, reviews, method="simcse", encoder_args={"max_length": 16}, max_steps=1, lr=1e-9)
    result = pretrain(recipe, progress=False)
    assert result.encoder.config["name"] == "minilm"
    reference = build_encoder(text_encoder_config("minilm", max_length=16))
    load_pretrained(reference)
    trained = result.encoder.state_dict()
    # one step at a tiny learning rate: still MiniLM's weights, not a random initialisation
    assert all(torch.allclose(v, trained[k], atol=1e-4) for k, v in reference.state_dict().items())
    assert load_tokenizer("minilm").pad_token_id == result.encoder.config["pad_id"]


def test_text_methods_refuse_other_data_and_masked_methods_refuse_text(tmp_path, reviews):
    with pytest.raises(SelfsupError, match="made for text"):
        pretrain(make_recipe(data="builtin:iris", method="mlm", out=str(tmp_path / "a")), progress=False)
    with pytest.raises(SelfsupError, match="use mlm"):
        pretrain(_recipe(tmp_path, reviews, method="mae", out=str(tmp_path / "b")), progress=False)


def test_an_unlabeled_txt_corpus_pre_trains(tmp_path, one_thread):
    """One text per line, no labels: every sample gets the unlabeled mark (this once gave an empty label
    tensor, which broke the data loader)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(GOOD + BAD) + "\n")
    result = pretrain(
        make_recipe(
            data=str(corpus),
            method="mlm",
            encoder="small_bert",
            encoder_args=SMALL,
            out=str(tmp_path / "run"),
            epochs=1,
            max_steps=3,
            batch_size=4,
        ),
        progress=False,
    )
    assert len(result.splits.train.y) == 12 and result.loss_history
