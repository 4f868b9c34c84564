"""evaluate(): several seeds, fine-tuning next to the frozen probes, and no selection on the test split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

import selfsup.evaluation.finetune as finetune_module
from selfsup.checkpoint import load_encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.embed import embed
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate, labeled_split
from selfsup.evaluation.finetune import FinetuneOptions
from selfsup.sources import load_data


@pytest.mark.slow
def test_several_seeds_give_a_mean_and_a_t_interval(iris_run) -> None:
    result = evaluate(iris_run, "builtin:iris", EvaluationOptions(seeds=3, seed=4))
    assert result.meta["seeds"] == 3 and "over 3 seeds" in result.meta["confidence_interval"]
    for row in result.rows:
        if row["protocol"] == "gbdt":
            continue
        assert len(row["per_seed"]) == 3 and row["accuracy"] == pytest.approx(np.mean(row["per_seed"]))
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
        assert np.sum(row["confusion"]) == 3 * row["n_test"]  # summed over the seeds
    # iris has its own split and the pretrained encoder is fixed, so only the seeded parts vary
    knn = {r["encoder"]: r for r in result.rows if r["protocol"] == "knn"}
    assert len(set(knn["pretrained"]["per_seed"])) == 1
    # ... but the seeds all scored the same test samples, so their uncertainty is kept in the interval
    assert knn["pretrained"]["ci_low"] < knn["pretrained"]["accuracy"] < knn["pretrained"]["ci_high"]
    assert "combined in quadrature" in result.meta["confidence_interval"]
    one = evaluate(iris_run, "builtin:iris", EvaluationOptions(seed=4))
    assert one.meta["seeds"] == 1 and "Wilson" in one.meta["confidence_interval"]
    assert [r["accuracy"] for r in one.rows if r["encoder"] == "pretrained"] == [
        r["per_seed"][0] for r in result.rows if r["encoder"] == "pretrained"
    ]
    with pytest.raises(SelfsupError, match="at least 1"):
        EvaluationOptions(seeds=0)  # refused before any work


@pytest.mark.slow
def test_selection_never_touches_the_test_split(iris_run, monkeypatch, tmp_path) -> None:
    """Instrument every split the harness makes: CV folds (k, C) and fine-tuning's validation part see
    training samples only."""
    encoder = load_encoder(iris_run)
    splits = load_data("builtin:iris", preprocessing=encoder.preprocessing)
    train, _test, _ = labeled_split(splits, None, None, encoder.preprocessing, 0, 0.25)
    train_rows = sorted(row.tobytes() for row in embed(encoder, train.float_samples()))
    seen_cv, seen_val = [], []
    real_split, real_val = StratifiedKFold.split, finetune_module.validation_split

    def cv_spy(self, X, y=None, groups=None):
        seen_cv.append(np.asarray(X))
        return real_split(self, X, y, groups)

    def val_spy(y, fraction, seed):
        seen_val.append(len(y))
        return real_val(y, fraction, seed)

    monkeypatch.setattr(StratifiedKFold, "split", cv_spy)
    monkeypatch.setattr(finetune_module, "validation_split", val_spy)
    result = evaluate(
        iris_run,
        splits,
        EvaluationOptions(protocols=("knn", "linear", "finetune"), k="cv", finetune=FinetuneOptions(epochs=3)),
        out=tmp_path,
    )
    assert len(seen_cv) >= 6  # k and C for three encoders
    assert all(len(x) == len(train) for x in seen_cv)
    # the pretrained encoder's k and C were chosen on exactly its training embeddings
    assert sum(sorted(row.tobytes() for row in x.astype(np.float32)) == train_rows for x in seen_cv) >= 2
    assert seen_val == [len(train), len(train)]  # pretrained and random-init fine-tuned on the training split
    tuned = {r["encoder"] for r in result.rows if r["protocol"] == "finetune"}
    assert tuned == {"pretrained", "random-init"}  # raw input has no encoder to fine-tune
    page = (tmp_path / "report.html").read_text()
    assert "finetune</b>: the whole encoder" in page and "supervised training from scratch" in page


@pytest.mark.slow
def test_a_split_made_by_seed_is_saved_with_the_report(iris_run, tmp_path) -> None:
    import json

    encoder = load_encoder(iris_run)
    own = load_data("builtin:iris", preprocessing=encoder.preprocessing)
    pooled = type(own)(train=own.train, test=None, name="iris train part", modality=own.modality)  # no own split
    result = evaluate(encoder, pooled, EvaluationOptions(protocols=("knn",), seeds=2), out=tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())["meta"]["test_ids_by_seed"]
    assert set(saved) == {"0", "1"} and saved["0"] != saved["1"]
    assert len(saved["0"]) == result.meta["n_test"] and set(saved["0"]) <= {str(i) for i in own.train.ids}
    assert (
        "test_ids_by_seed" not in evaluate(encoder, own, EvaluationOptions(protocols=("knn",))).meta
    )  # the dataset's own split


def _no_embedding(*args, **kwargs):
    raise AssertionError("embedding started before the labels were checked")


def test_labels_of_one_class_are_refused_before_any_embedding(iris_run, monkeypatch, tmp_path) -> None:
    """One training class would make every probe score 100% [100, 100]: refused for evaluate and compare."""
    from sklearn.datasets import load_iris

    import selfsup.evaluation.compare as compare_module
    import selfsup.evaluation.evaluate as evaluate_module
    from selfsup.data import DataOptions
    from selfsup.datasets.tables import table_frame

    monkeypatch.setattr(evaluate_module, "embed", _no_embedding)
    monkeypatch.setattr(compare_module, "embed", _no_embedding)
    encoder = load_encoder(iris_run)
    own = load_data("builtin:iris", preprocessing=encoder.preprocessing)
    setosa = type(own)(
        train=own.train.subset(np.flatnonzero(own.train.y.numpy() == 0)),
        test=own.test.subset(np.flatnonzero(own.test.y.numpy() == 0)),
        name="setosa only",
        modality=own.modality,
    )
    message = (
        "'{}' has only one class ('setosa') in its training labels; evaluation needs at least two classes: "
        "label samples of another class too."
    )
    with pytest.raises(SelfsupError) as info:
        evaluate(encoder, setosa)
    assert str(info.value) == message.format("setosa only")
    frame = table_frame(load_iris)
    path = tmp_path / "setosa.csv"
    frame[frame["target"] == "setosa"].to_csv(path, index=False)
    with pytest.raises(SelfsupError) as info:
        compare_module.compare([str(iris_run)], str(path), options=DataOptions(label="target"))
    assert str(info.value) == message.format(path)


def test_a_test_split_of_one_class_is_warned_about(iris_run) -> None:
    encoder = load_encoder(iris_run)
    own = load_data("builtin:iris", preprocessing=encoder.preprocessing)
    one = type(own)(
        train=own.train,
        test=own.test.subset(np.flatnonzero(own.test.y.numpy() == 1)),
        name="iris",
        modality=own.modality,
    )
    with pytest.warns(
        UserWarning,
        match=r"^'iris' has only one class \('versicolor'\) in its test labels \(training "
        r"has 3\): accuracy only says how often that class is recognised",
    ) as record:
        result = evaluate(encoder, one, EvaluationOptions(protocols=("knn",), baselines=False))
    assert len(record) == 1 and result.meta["n_test"] == int((own.test.y == 1).sum())


def test_options_are_checked_when_made() -> None:
    """A bad protocol, prompt or partner fails when the options are made, before any data is read."""
    from selfsup.evaluation.protocols import ALL_PROTOCOLS, PROTOCOL_ROWS

    with pytest.raises(SelfsupError, match="unknown protocol 'lineer'. Did you mean 'linear'"):
        EvaluationOptions(protocols=("knn", "lineer"))
    with pytest.raises(SelfsupError, match="--prompt must hold"):
        EvaluationOptions(prompt="no slot")
    with pytest.raises(SelfsupError, match="--partner is the text encoder for zero-shot rows; add zeroshot"):
        EvaluationOptions(protocols=("knn",), partner="text-side")
    # a list is kept as a tuple
    assert EvaluationOptions(protocols=["knn", "finetune"]).protocols == ("knn", "finetune")
    assert tuple(PROTOCOL_ROWS) == ALL_PROTOCOLS  # one registry entry per frozen-feature protocol
