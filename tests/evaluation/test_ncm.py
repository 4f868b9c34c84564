"""The nearest-class-mean probe: a case worked by hand, and the same answer as the training-time monitor."""

from __future__ import annotations

import numpy as np
import torch

from selfsup.evaluation.ncm import ncm_predict
from selfsup.evaluation.protocols import run_protocols
from selfsup.monitors import nearest_class_mean_accuracy


def test_means_of_normalised_embeddings_by_hand() -> None:
    # class 3: (1, 0); class 7: (0, 10) and (1, 1). Normalised first, class 7's mean points along
    # (0 + 0.7071, 1 + 0.7071) / 2 -> (0.3827, 0.9239); its raw mean (0.5, 5.5) would point along (0.0905, 0.9959).
    train = np.array([[1.0, 0.0], [0.0, 10.0], [1.0, 1.0]])
    labels = np.array([3, 7, 7])
    # (1, 0.8): cosine 0.7809 to class 3, 0.2988 + 0.5771 = 0.8759 to class 7 (0.6926 to the raw mean: class 3)
    # (1, 0.2): cosine 0.9806 to class 3, 0.5565 to class 7
    test = np.array([[1.0, 0.8], [2.0, 0.4]])
    pred, details = ncm_predict(train, labels, test)
    assert pred.tolist() == [7, 3] and details["class_means"] == 2
    rows = run_protocols({"hand": (train, test)}, labels, np.array([7, 7]), ["ncm"], n_classes=8)
    assert rows[0]["protocol"] == "ncm" and rows[0]["accuracy"] == 0.5 and rows[0]["confusion"][7][3] == 1


def test_agrees_with_the_training_time_monitor(digits) -> None:
    x = digits.train.float_samples().flatten(1).numpy()
    y = digits.train.y.numpy()
    pred, _ = ncm_predict(x[:1000], y[:1000], x[1000:])
    expected = nearest_class_mean_accuracy(
        torch.from_numpy(x[:1000]), torch.from_numpy(y[:1000]), torch.from_numpy(x[1000:]), torch.from_numpy(y[1000:])
    )
    # float64 here, float32 there: at most one near-tie may fall the other way
    assert abs(np.mean(pred == y[1000:]) - expected) <= 1 / len(pred) and expected > 0.8
