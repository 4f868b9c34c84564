"""A tiny pre-trained run on iris, shared by the CLI tests of the optional protocols."""

from __future__ import annotations

import pytest

from selfsup.cli import main


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iris") / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                "builtin:iris",
                "--out",
                str(out),
                "--epochs",
                "1",
                "--max-steps",
                "2",
                "--batch-size",
                "32",
            ]
        )
        == 0
    )
    return out
