"""Shared fixtures: small real data (scikit-learn digits) and a fast encoder."""

from __future__ import annotations

import pytest
import torch

from selfsup.data import Splits
from selfsup.datasets import load_builtin

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits() -> Splits:
    return load_builtin("digits")


@pytest.fixture
def small_encoder_config(digits: Splits) -> dict:
    from selfsup.modalities.image import encoder_config

    return encoder_config("small_cnn", digits, 16)
