"""The stated reduction of wide raw inputs (issue 22): narrow inputs untouched, wide ones projected so that dot
products (kNN's cosine) survive, fitted on the training split only."""

from __future__ import annotations

import numpy as np

from selfsup.evaluation.reduce import MAX_RAW_WIDTH, reduce_wide


def test_narrow_inputs_are_left_as_they_are():
    train, test = np.ones((5, MAX_RAW_WIDTH), np.float32), np.zeros((2, MAX_RAW_WIDTH), np.float32)
    got_train, got_test, note = reduce_wide(train, test, seed=0)
    assert got_train is train and got_test is test and note is None


def test_wide_inputs_of_low_rank_keep_their_dot_products():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(10, 3000)).astype(np.float32)  # every sample lies in a 10-dimensional span
    train = rng.normal(size=(200, 10)).astype(np.float32) @ basis
    test = rng.normal(size=(20, 10)).astype(np.float32) @ basis
    z_train, z_test, note = reduce_wide(train, test, seed=0)
    assert z_train.shape[0] == 200 and z_test.shape[0] == 20 and z_train.shape[1] <= 10
    assert note is not None and "3,000 columns" in note and "training split" in note
    exact = test @ train.T
    assert np.abs(z_test @ z_train.T - exact).max() < 0.01 * np.abs(exact).max() + 1e-3  # 99% of the energy
    again = reduce_wide(train, test, seed=0)
    assert np.array_equal(again[0], z_train)  # seeded
