"""The one-line errors of optional packages: ``require`` imports, ``locate`` finds a package's folder without importing
it, and both name the extra that installs what is missing."""

from __future__ import annotations

import sys

import pytest
import sklearn

from selfsup.errors import SelfsupError, locate, require


def test_require_imports_the_module_and_locate_finds_its_folder():
    assert require("sklearn.datasets", "none", "this test").load_iris is not None
    folder = locate("sklearn", "none", "this test")
    assert folder.samefile(sklearn.__path__[0]) and (folder / "datasets" / "data" / "iris.csv").is_file()


def test_a_missing_package_names_itself_and_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if it were not installed
    with pytest.raises(SelfsupError) as err:
        require("soundfile", "audio", "reading audio")
    assert str(err.value) == "reading audio needs the optional package 'soundfile': pip install 'selfsup[audio]'"
    with pytest.raises(
        SelfsupError, match=r"^builtin:x needs the optional package 'no_such_package_here': pip install "
    ):
        locate("no_such_package_here", "timeseries", "builtin:x")
    with pytest.raises(
        SelfsupError, match=r"^x needs the optional package 'no_such_package_here': pip install 'selfsup"
    ):
        require("no_such_package_here.sub", "text", "x")  # the top-level package is named


def test_an_error_raised_in_a_data_loading_worker_keeps_its_one_line():
    import torch
    from torch.utils.data import DataLoader

    class Broken(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int):
            raise SelfsupError("cannot read image 'x.png': truncated. Fix or remove it.")

    with pytest.raises(SelfsupError) as caught:
        next(iter(DataLoader(Broken(), num_workers=1)))
    assert str(caught.value) == "cannot read image 'x.png': truncated. Fix or remove it."
