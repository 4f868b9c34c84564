from __future__ import annotations

import numpy as np
import pytest

from selfsup.evaluation.knn import choose_k, knn_predict


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    centers = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    return centers[y] + rng.normal(size=(n, 3)), y


def test_k1_on_training_set_reproduces_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    y = rng.integers(0, 7, size=200)  # random labels: only the point itself can explain them
    np.testing.assert_array_equal(knn_predict(x, y, x, k=1), y)


def test_separated_clusters_are_classified_perfectly():
    x_train, y_train = _clusters(100, 1)
    x_test, y_test = _clusters(60, 2)
    np.testing.assert_array_equal(knn_predict(x_train, y_train, x_test, k=20), y_test)


def test_exclude_self_leave_one_out_on_two_points_gets_both_wrong():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1])
    np.testing.assert_array_equal(knn_predict(x, y, x, k=5, exclude_self=True), [1, 0])
    np.testing.assert_array_equal(knn_predict(x, y, x, k=5, exclude_self=False), [0, 1])


def test_k_larger_than_train_is_clipped_and_labels_keep_their_values():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    y = np.array([5, 5, 9])
    pred = knn_predict(x, y, np.array([[1.0, 0.05], [0.05, 1.0]]), k=100)
    # With all 3 neighbours, weights exp(sim/T) still favour the near class for each query.
    np.testing.assert_array_equal(pred, [5, 9])


def test_weighting_lets_one_close_neighbour_outvote_two_far_ones():
    x = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    y = np.array([0, 1, 1])
    query = np.array([[1.0, 0.0]])
    assert knn_predict(x, y, query, k=3, temperature=0.07)[0] == 0
    assert knn_predict(x, y, query, k=3, temperature=100.0)[0] == 1  # ~uniform votes: majority


def test_chunking_matches_unchunked():
    rng = np.random.default_rng(3)
    x, q = rng.normal(size=(300, 8)), rng.normal(size=(77, 8))
    y = rng.integers(0, 4, size=300)
    full = knn_predict(x, y, q, k=10)
    np.testing.assert_array_equal(knn_predict(x, y, q, k=10, chunk_entries=300 * 7), full)  # 7 test rows a chunk
    loo_full = knn_predict(x, y, x, k=1, exclude_self=True)
    np.testing.assert_array_equal(knn_predict(x, y, x, k=1, exclude_self=True, chunk_entries=300 * 7), loo_full)


def test_chunked_knn_on_digits_equals_one_matrix():
    """Real data (the built-in digits' pixels: a bank of 1,347 training images, 450 test queries): predictions and
    the cross-validated k are the same whether the queries are scored in one similarity matrix, one at a time or
    13 at a time."""
    from selfsup.sources import load_data

    data = load_data("builtin:digits")
    assert data.test is not None
    bank, y = data.train.float_samples().flatten(1).numpy(), data.train.y.numpy()
    queries, truth = data.test.float_samples().flatten(1).numpy(), data.test.y.numpy()
    one_matrix = knn_predict(bank, y, queries, k=20, chunk_entries=1 << 40)
    assert (one_matrix == truth).mean() > 0.9  # a real kNN, not a degenerate one
    for entries in (1, len(bank) * 13):
        np.testing.assert_array_equal(knn_predict(bank, y, queries, k=20, chunk_entries=entries), one_matrix)
    loo = knn_predict(bank, y, bank, k=5, exclude_self=True, chunk_entries=1 << 40)
    np.testing.assert_array_equal(knn_predict(bank, y, bank, k=5, exclude_self=True, chunk_entries=len(bank) * 7), loo)
    assert choose_k(bank, y, chunk_entries=1 << 40) == choose_k(bank, y, chunk_entries=len(bank) * 5)


def test_exclude_self_requires_same_rows():
    x = np.ones((3, 2))
    with pytest.raises(ValueError):
        knn_predict(x, np.zeros(3), x[:2], exclude_self=True)
