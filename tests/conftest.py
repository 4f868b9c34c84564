"""Shared fixtures: small real data (scikit-learn digits, GunPoint series) and a fast encoder."""

from __future__ import annotations

import os

import pytest
import torch

from selfsup.data import Splits
from selfsup.datasets import load_builtin

# pytest-xdist runs one worker per core: one torch thread each (and in the commands they start), so the workers do
# not oversubscribe the cores; tiny steps on 2 threads of busy cores are many times slower than on one
_THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
torch.set_num_threads(_THREADS)
os.environ["OMP_NUM_THREADS"] = str(_THREADS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped on a machine without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits() -> Splits:
    return load_builtin("digits")


@pytest.fixture
def small_encoder_config(digits: Splits) -> dict:
    from selfsup.modalities.image import encoder_config

    return encoder_config("small_cnn", digits, 16)


@pytest.fixture(scope="session")
def series() -> torch.Tensor:
    """GunPoint's 50 training series ``(50, 1, 150)`` (UCR archive, from sktime's data files)."""
    return load_builtin("gunpoint").train.x


@pytest.fixture
def one_thread():
    """Tiny steps are dominated by thread synchronisation: on busy shared cores, 2 threads are much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
