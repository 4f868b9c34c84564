from __future__ import annotations

import numpy as np
import pytest

from selfsup.errors import SelfsupError
from selfsup.evaluation.protocols import PROTOCOLS, run_protocols

KEYS = {"encoder", "protocol", "accuracy", "ci_low", "ci_high", "n_train", "n_test", "details", "confusion"}


def _data(seed: int):
    rng = np.random.default_rng(seed)
    y_train, y_test = np.arange(80) % 2, np.arange(40) % 2
    centers = 8 * np.eye(4)[:2]  # distinct directions: kNN compares by cosine similarity
    good = (rng.normal(size=(80, 4)) + centers[y_train], rng.normal(size=(40, 4)) + centers[y_test])
    noise = (rng.normal(size=(80, 4)), rng.normal(size=(40, 4)))
    return {"pretrained": good, "random-init": noise}, y_train, y_test


def test_rows_have_the_right_keys_and_order():
    features, y_train, y_test = _data(0)
    rows = run_protocols(features, y_train, y_test, k=5, seed=0)
    assert PROTOCOLS == ("knn", "linear")
    assert [(r["encoder"], r["protocol"]) for r in rows] == [
        ("pretrained", "knn"),
        ("pretrained", "linear"),
        ("random-init", "knn"),
        ("random-init", "linear"),
    ]
    for r in rows:
        assert set(r) == KEYS
        assert r["n_train"] == 80 and r["n_test"] == 40
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    assert rows[0]["details"] == {"k": 5, "temperature": 0.07}
    assert set(rows[1]["details"]) == {"C", "cv_accuracy", "cv_folds"}
    assert rows[0]["accuracy"] == 1.0 and rows[1]["accuracy"] == 1.0
    assert rows[2]["accuracy"] < 0.8
    assert rows[0]["confusion"] == [[int((y_test == 0).sum()), 0], [0, int((y_test == 1).sum())]]
    assert np.sum(rows[2]["confusion"]) == 40 and np.trace(rows[2]["confusion"]) == round(40 * rows[2]["accuracy"])


def test_single_protocol_subset():
    features, y_train, y_test = _data(1)
    rows = run_protocols(features, y_train, y_test, protocols=["knn"])
    assert [r["protocol"] for r in rows] == ["knn", "knn"]


def test_unknown_protocol_raises_with_suggestion():
    features, y_train, y_test = _data(2)
    with pytest.raises(SelfsupError, match="Did you mean 'linear'"):
        run_protocols(features, y_train, y_test, protocols=["knn", "lineer"])


def test_each_probe_is_named_as_it_starts(capsys):
    """Outside a terminal, one line per probe on stderr: a long evaluation never looks hung."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    features = {"raw-input": (rng.normal(size=(40, 3)) + y[:, None], rng.normal(size=(40, 3)) + y[:, None])}
    run_protocols(features, y, y, ("knn", "linear"), progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[1/2] knn probe on raw-input (40 x 3)", "[2/2] linear probe on raw-input (40 x 3)"]


def test_only_the_raw_input_is_fitted_on_principal_components():
    from selfsup.evaluation.linear import WIDE
    from selfsup.evaluation.protocols import RAW_COMPONENTS, RAW_INPUT

    rng = np.random.default_rng(0)
    n = RAW_COMPONENTS + 44
    y = np.arange(n) % 2
    x = rng.normal(size=(n, WIDE + 1))
    x[:, 0] += 3.0 * y
    rows = run_protocols({"pretrained": (x, x[:20]), RAW_INPUT: (x, x[:20])}, y, y[:20], ["linear"])
    fitted_in = {row["encoder"]: row["details"]["fitted_in"] for row in rows}
    assert fitted_in["pretrained"].startswith(f"the span of the {n} standardised training rows")
    assert fitted_in[RAW_INPUT].startswith(f"the first {RAW_COMPONENTS} principal components")
    rows = run_protocols({RAW_INPUT: (x, x[:20])}, y, y[:20], ["labels"])  # the same reduction at 100% of labels
    assert rows[-1]["details"]["fitted_in"].startswith(f"the first {RAW_COMPONENTS} principal components")
