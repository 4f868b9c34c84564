from __future__ import annotations

import numpy as np

from selfsup.evaluation.linear import linear_probe


def _separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 10))
    x[:, 0] += 8.0 * (y == 0)
    x[:, 1] += 8.0 * (y == 1)
    x[:, 2] += 8.0 * (y == 2)
    return x, y


def test_separable_data_reaches_full_accuracy():
    x_train, y_train = _separable(150, 0)
    x_test, y_test = _separable(90, 1)
    pred, info = linear_probe(x_train, y_train, x_test)
    assert (pred == y_test).mean() == 1.0
    assert set(info) == {"C", "cv_accuracy", "cv_folds"}
    assert info["cv_folds"] == 5 and info["C"] in (0.01, 0.1, 1.0, 10.0, 100.0)
    assert info["cv_accuracy"] > 0.95


def test_random_labels_are_near_chance():
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(300, 20)), rng.normal(size=(400, 20))
    y_train, y_test = rng.integers(0, 2, 300), rng.integers(0, 2, 400)
    pred, _ = linear_probe(x_train, y_train, x_test, Cs=(0.1, 1.0))
    assert 0.35 < (pred == y_test).mean() < 0.65


def test_selection_never_sees_test_embeddings():
    x_train, _ = _separable(90, 2)
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 90)  # noisy labels so that C actually matters to CV accuracy
    Cs = (0.01, 1.0, 100.0)
    _, info_a = linear_probe(x_train, labels, _separable(30, 3)[0], seed=1, Cs=Cs)
    _, info_b = linear_probe(x_train, labels, rng.normal(size=(7, 10)) * 1e3, seed=1, Cs=Cs)
    assert info_a == info_b


def test_folds_shrink_to_the_smallest_class_and_single_c_skips_cv():
    x, y = _separable(30, 4)
    y = y.copy()
    y[:] = 0
    y[:3] = 1  # smallest class has 3 members
    _, info = linear_probe(x, y, x, cv=5)
    assert info["cv_folds"] == 3
    _, info = linear_probe(x, y, x, Cs=(0.5,))
    assert info == {"C": 0.5, "cv_accuracy": None, "cv_folds": 0}


def test_deterministic_given_seed():
    x, y = _separable(60, 6)
    y = np.random.default_rng(0).integers(0, 3, 60)
    a = linear_probe(x, y, x, seed=3, Cs=(0.1, 10.0))
    b = linear_probe(x, y, x, seed=3, Cs=(0.1, 10.0))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_large_training_sets_use_the_torch_head_and_separable_data_is_solved(monkeypatch) -> None:
    import selfsup.evaluation.linear as linear

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 200)
    x = rng.normal(size=(600, 6)) + 6 * np.eye(6)[y * 2]  # three well-separated classes
    yt = np.repeat(np.arange(3), 50)
    xt = rng.normal(size=(150, 6)) + 6 * np.eye(6)[yt * 2]
    monkeypatch.setattr(linear, "TORCH_ABOVE", 500)
    predicted, details = linear.linear_probe(x, y, xt)
    assert details["solver"].startswith("torch") and details["weight_decay"] in linear.WEIGHT_DECAYS
    assert (predicted == yt).mean() == 1.0
    monkeypatch.setattr(linear, "TORCH_ABOVE", 5000)  # below the threshold: scikit-learn with CV, as before
    assert "solver" not in linear.linear_probe(x, y, xt)[1]


def test_wide_embeddings_are_fitted_in_the_training_span_and_give_the_full_width_model() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from selfsup.evaluation.linear import WIDE, in_training_span

    rng = np.random.default_rng(0)
    y, yt = np.arange(80) % 4, np.arange(40) % 4
    x, xt = rng.normal(size=(80, WIDE + 476)), rng.normal(size=(40, WIDE + 476))
    x[:, :4] += 1.5 * np.eye(4)[y]
    xt[:, :4] += 1.5 * np.eye(4)[yt]
    a, b = in_training_span(x, xt)
    assert a.shape == (80, 80) and b.shape == (40, 80)
    full = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000, tol=1e-10)).fit(x, y)
    small = LogisticRegression(C=0.1, max_iter=5000, tol=1e-10).fit(a, y)
    np.testing.assert_allclose(small.predict_proba(b), full.predict_proba(xt), atol=1e-5)
    predicted, details = linear_probe(x, y, xt, Cs=(0.1,))
    np.testing.assert_array_equal(predicted, full.predict(xt))
    assert details["C"] == 0.1 and "span of the 80 standardised training rows" in details["fitted_in"]
    assert "fitted_in" not in linear_probe(x[:, :WIDE], y, xt[:, :WIDE], Cs=(0.1,))[1]  # not wider than WIDE


def test_a_collapsed_wide_embedding_gives_one_class_everywhere_not_an_error() -> None:
    from selfsup.evaluation.linear import WIDE

    y = np.arange(60) % 3
    predicted, details = linear_probe(np.ones((60, WIDE + 1)), y, np.ones((9, WIDE + 1)), Cs=(1.0,))
    assert "fitted_in" in details and len(set(predicted)) == 1  # nothing to tell the classes apart by


def _low_rank_wide(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows wider than WIDE that vary in 10 directions only (plus a trace of noise): 4 classes along 4 of them."""
    from selfsup.evaluation.linear import WIDE

    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    z = rng.normal(size=(n, 10))
    z[:, :4] += 4.0 * np.eye(4)[y]
    mixing = np.random.default_rng(99).normal(size=(10, WIDE + 476))  # the same directions in both splits
    return z @ mixing + 1e-6 * rng.normal(size=(n, WIDE + 476)), y


def test_wide_rows_fitted_on_principal_components_give_the_full_models_predictions_when_those_hold_the_variance():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _low_rank_wide(120, 0)
    xt, yt = _low_rank_wide(60, 1)
    predicted, details = linear_probe(x, y, xt, Cs=(0.1,), components=20)
    # rank 10 plus 1e-6 noise: the noise's directions sit at the Gram matrix's round-off and are not kept
    assert "first 10 principal components of the 1,500 standardised columns" in details["fitted_in"]
    assert "(100.0% of its variance" in details["fitted_in"]
    full = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)).fit(x, y)
    np.testing.assert_array_equal(predicted, full.predict(xt))
    assert (predicted == yt).mean() > 0.8
    # no fewer training rows than components: the exact span is as cheap, and stays
    assert "span of the 120" in linear_probe(x, y, xt, Cs=(0.1,), components=120)[1]["fitted_in"]
    # not wider than WIDE: nothing is reduced
    assert "fitted_in" not in linear_probe(x[:, :50], y, xt[:, :50], Cs=(0.1,), components=20)[1]


def test_costly_fits_warm_started_along_C_on_two_threads_choose_the_same_C_and_predictions(monkeypatch):
    from selfsup.evaluation import linear

    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    x = rng.normal(size=(400, 30)) + 0.8 * np.eye(4)[y] @ rng.normal(size=(4, 30))
    xt = rng.normal(size=(200, 30))
    cold = linear.linear_probe(x, y, xt, seed=0)
    monkeypatch.setattr(linear, "LARGE", x.size)  # this input counts as large: the warm path
    warm = linear.linear_probe(x, y, xt, seed=0)
    assert warm[1]["C"] == cold[1]["C"] and abs(warm[1]["cv_accuracy"] - cold[1]["cv_accuracy"]) < 0.01
    assert np.mean(warm[0] == cold[0]) == 1.0  # the refit on the whole split is cold either way


def test_principal_axes_are_numpys_svd_for_wide_and_tall_rows():
    from sklearn.datasets import load_digits

    from selfsup.evaluation.linear import principal_axes

    pixels = load_digits().data[:300]
    for a in (pixels[:40] - pixels[:40].mean(0), pixels - pixels.mean(0)):  # 40 x 64 (wide), 300 x 64 (tall)
        axes, kept = principal_axes(a, 10)
        _, singular, rows = np.linalg.svd(a, full_matrices=False)
        assert axes.shape == (64, 10)
        # the same axes up to sign, orthonormal, holding the same share of the variance
        np.testing.assert_allclose(np.abs(np.sum(axes * rows[:10].T, axis=0)), 1.0, atol=1e-8)
        np.testing.assert_allclose(axes.T @ axes, np.eye(10), atol=1e-8)
        assert abs(kept - (singular[:10] ** 2).sum() / (singular**2).sum()) < 1e-12
    # rank 1: one axis, not ten made of round-off
    line = np.outer(np.arange(-20, 20), pixels[5])
    axes, kept = principal_axes(line, 10)
    assert axes.shape == (64, 1) and abs(kept - 1.0) < 1e-12
