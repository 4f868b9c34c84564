"""``selfsup unlearn`` on real digits written as a PNG folder (train/ and test/ splits, 30 and 10 per class).

The classifier is a small CNN fine-tuned for a few epochs: it fits its training split, so the forget set (10 of the
30 training 3s) starts at high accuracy and low loss; a few unlearning steps must lower the forget accuracy while
the retain accuracy stays close, and the label-agnostic method must turn the forget embeddings away from the
original encoder's while the retain embeddings stay near it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.checkpoint import load_classifier, load_encoder, save_classifier, save_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.encoders import build_encoder
from selfsup.evaluation.embed import embed
from selfsup.evaluation.finetune import FinetuneOptions, logits_of, train_classifier
from selfsup.outputs import UNLEARNING
from selfsup.sources import load_data
from selfsup.workflows.forget_sets import UnlearnOptions
from selfsup.workflows.unlearn import unlearn, unlearn_with_stop

FORGET_CLASS = 3
FAST = UnlearnOptions(steps=30, lr=3e-4, batch_size=32, finetune_epochs=2)


def _write(root: Path, x: np.ndarray, y: np.ndarray, per_class: int, prefix: str) -> None:
    for c in range(10):
        folder = root / str(c)
        folder.mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(y == c)[:per_class]):
            Image.fromarray(x[i, 0]).save(folder / f"{prefix}{j:03d}.png")


def _ids(path: Path, ids: list[str]) -> Path:
    path.write_text("id\n" + "".join(f"{i}\n" for i in ids))
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny steps on busy shared cores: one thread is many times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, digits, _one_thread) -> dict:
    root = tmp_path_factory.mktemp("unlearn")
    data = root / "digits"
    _write(data / "train", digits.train.x.numpy(), digits.train.y.numpy(), 30, "p")
    _write(data / "test", digits.test.x.numpy(), digits.test.y.numpy(), 10, "t")
    splits = load_data(str(data))
    from selfsup.modalities.image import encoder_config

    torch.manual_seed(0)
    encoder = build_encoder(encoder_config("small_cnn", splits, 8))
    encoder.preprocessing = splits.preprocessing
    save_encoder(encoder, root / "encoder")
    train = splits.train
    classifier, _ = train_classifier(
        encoder, train.float_samples(), train.y, train.y.numpy(), 10, options=FinetuneOptions(epochs=8), seed=0
    )
    assert train.classes is not None
    save_classifier(classifier, train.classes, root / "classifier")
    forget = [i for i, y in zip(train.ids, train.y.tolist(), strict=True) if y == FORGET_CLASS][:10]
    return {
        "root": root,
        "data": str(data),
        "splits": splits,
        "classifier": classifier,
        "forget_ids": forget,
        "forget": _ids(root / "forget.csv", forget),
    }


def _parts(setup: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    train = setup["splits"].train
    is_forget = np.isin(train.ids, setup["forget_ids"])
    x, y = train.float_samples(), train.y
    return x[is_forget], y[is_forget], x[~is_forget], y[~is_forget]


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits_of(model, x).argmax(1) == y).float().mean())


def test_labelled_methods_lower_forget_accuracy_and_npo_keeps_retain_where_gradient_ascent_collapses(setup) -> None:
    xf, yf, xr, yr = _parts(setup)
    original = setup["classifier"]
    before_forget, before_retain = _accuracy(original, xf, yf), _accuracy(original, xr, yr)
    assert before_forget >= 0.8  # the classifier learnt its training 3s
    npo = unlearn_with_stop(original, "npo", xf, xr, yf, yr, FAST, seed=0)[0]
    ascent = unlearn_with_stop(original, "gradient-ascent", xf, xr, yf, yr, FAST, seed=0)[0]
    for unlearned in (npo, ascent):
        assert _accuracy(unlearned, xf, yf) <= before_forget - 0.5
    assert _accuracy(npo, xr, yr) >= before_retain - 0.15
    # NPO's bounded loss: far less collapse than unbounded gradient ascent (Zhang et al. 2024)
    assert _accuracy(npo, xr, yr) > _accuracy(ascent, xr, yr) + 0.2
    assert _accuracy(original, xf, yf) == before_forget  # the original is not touched


def test_label_agnostic_turns_forget_embeddings_away_and_keeps_retain(setup) -> None:
    xf, _, xr, _ = _parts(setup)
    encoder = setup["classifier"][0]
    unlearned = unlearn_with_stop(encoder, "label-agnostic", xf, xr, options=FAST, seed=0)[0]

    def similarity(x: torch.Tensor) -> float:
        a, b = (torch.as_tensor(embed(m, x)) for m in (unlearned, encoder))
        return float(torch.nn.functional.cosine_similarity(a, b).mean())

    assert similarity(xf) < 0.5
    assert similarity(xr) > 0.8


def test_unlearn_writes_the_model_and_its_audit_and_never_overwrites(setup, capsys) -> None:
    root = setup["root"]
    out = root / "npo"
    argv = ["unlearn", "--model", str(root / "classifier"), "--data", setup["data"], "--forget", str(setup["forget"])]
    argv += ["--retrain-from", str(root / "encoder"), "--steps", "30", "--lr", "3e-4", "--finetune-epochs", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MIA AUC" in printed and "retrained" in printed
    audit = json.loads((out / "audit.json").read_text())
    assert audit["forget"]["samples"] == 10 and audit["retain"]["samples"] == 290 and audit["test"]["samples"] == 100
    assert set(audit["audit"]) == {"original", "unlearned", "retrained"}
    for row in audit["audit"].values():
        assert 0 <= row["mia_auc"] <= 1 and 0 <= row["forget_accuracy"] <= 1
    assert audit["audit"]["unlearned"]["forget_accuracy"] < audit["audit"]["original"]["forget_accuracy"]
    assert audit["seconds"]["unlearn"] > 0 and audit["seconds"]["retrain"] > 0
    model, classes = load_classifier(out / "model")  # the same format as the input
    assert classes == [str(c) for c in range(10)]
    load_classifier(out / "retrained")  # the gold standard, for another run's --retrained
    xf, yf, _, _ = _parts(setup)
    assert _accuracy(model, xf, yf) == pytest.approx(audit["audit"]["unlearned"]["forget_accuracy"])
    assert UNLEARNING.owns(out) and not list(out.glob(".unlearn-*"))
    # an existing output is not overwritten without --overwrite
    before = (out / "audit.json").read_bytes()
    assert main([*argv, "--out", str(out), "--no-retrain"]) == EXIT_USER_ERROR
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "audit.json").read_bytes() == before
    # the gold standard one run trained, audited by another run as --retrained: the same figures
    ga = root / "ga"
    given = ["--method", "gradient-ascent", "--retrained", str(out / "retrained"), "--out", str(ga)]
    assert main([*argv[:7], "--steps", "5", *given]) == 0
    other = json.loads((ga / "audit.json").read_text())
    assert other["retrained"].startswith("given") and "retrain" not in other["seconds"]
    assert other["audit"]["retrained"] == audit["audit"]["retrained"]


def test_label_agnostic_on_an_encoder_writes_an_encoder(setup) -> None:
    root = setup["root"]
    out = root / "laf"
    result = unlearn(root / "encoder", setup["data"], setup["forget"], "label-agnostic", out=out, options=FAST)
    assert result.kind == "encoder" and not (out / "model" / "classifier.safetensors").exists()
    load_encoder(out / "model")
    row = result.audit["audit"]["unlearned"]
    assert row["forget_similarity_to_original"] < result.audit["audit"]["original"]["forget_similarity_to_original"]
    assert "knn" in row["protocol"].lower() and "mia_auc" in row
    assert "--retrained" in result.audit["retrained"]
    again = unlearn(root / "encoder", setup["data"], setup["forget"], "npo", out=out, options=FAST, overwrite=True)
    assert again.kind == "classifier" and (out / "model" / "classifier.safetensors").is_file()  # fine-tuned first
    assert "retrain" in again.audit["seconds"] and "finetune_original" in again.audit["seconds"]


def test_bad_input_is_one_line_and_writes_nothing(setup, tmp_path, capsys) -> None:
    root = setup["root"]
    splits = setup["splits"]
    base = ["unlearn", "--model", str(root / "classifier"), "--data", setup["data"], "--no-retrain"]
    unknown = _ids(tmp_path / "unknown.csv", ["no/such.png"])
    in_test = _ids(tmp_path / "test.csv", [splits.test.ids[0]])
    (tmp_path / "empty.csv").write_text("id\n")
    (tmp_path / "noid.csv").write_text("name\n3/p000.png\n")
    everything = _ids(tmp_path / "all.csv", splits.train.ids)
    cases = [
        (["--forget", str(unknown)], "match no sample"),
        (["--forget", str(in_test)], "test split"),
        (["--forget", str(tmp_path / "empty.csv")], "cannot be empty"),
        (["--forget", str(tmp_path / "noid.csv")], "no 'id' column"),
        (["--forget", str(everything)], "nothing is left to retain"),
        (["--forget", str(setup["forget"]), "--method", "ascent"], "unknown unlearning method"),
        (["--forget", str(setup["forget"]), "--retain", str(setup["forget"])], "both --forget and --retain"),
    ]
    for extra, said in cases:
        out = tmp_path / "out"
        assert main([*base, *extra, "--out", str(out)]) == EXIT_USER_ERROR, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("selfsup: error: ") and "\n" not in err and said in err, (extra, err)
        assert not out.exists()
    # a model of another modality: a table's data for an image classifier
    table = tmp_path / "table.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "label"])
        writer.writerows([[i, i % 3, i % 2] for i in range(20)])
    out = tmp_path / "out"
    code = main(["unlearn", "--model", str(root / "classifier"), "--data", str(table), "--label", "label"]
                + ["--forget", str(unknown), "--out", str(out)])  # fmt: skip
    assert code == EXIT_USER_ERROR
    assert "image" in capsys.readouterr().err and not out.exists()
