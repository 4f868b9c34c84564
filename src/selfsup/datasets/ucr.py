"""UCR/UEA time-series classification sets bundled with the installed sktime package (no downloads).

The ``.ts`` files are read by our own reader (``selfsup.modalities.timeseries.read_ts``) from
``sktime/datasets/data/<NAME>/<NAME>_TRAIN.ts`` and ``_TEST.ts``: sktime is located, never imported
(importing it takes seconds). Splits are the archives' official train/test splits; series are raw
(UCR univariate sets come z-normalised per series by the archive), NaN-padded when ragged.
Dau et al. 2019, "The UCR time series archive"; Bagnall et al. 2018, "The UEA multivariate time series
classification archive".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from selfsup.data import Preprocessing, Splits
from selfsup.errors import SelfsupError, locate

# builtin name -> (archive name, description). Figures checked against the bundled files by tests/datasets/test_ucr.py.
_SETS: dict[str, tuple[str, str]] = {
    "gunpoint": (
        "GunPoint",
        "GunPoint: 50 train / 150 test series, 1 channel x 150 steps, 2 classes (gun draw, "
        "point); hand x-position from video, UCR archive (sktime's bundled copy)",
    ),
    "italypowerdemand": (
        "ItalyPowerDemand",
        "ItalyPowerDemand: 67 train / 1,029 test series, 1 channel x 24 steps "
        "(hourly demand of a day), 2 classes (Oct-Mar, Apr-Sep); UCR archive "
        "(sktime's bundled copy)",
    ),
    "basicmotions": (
        "BasicMotions",
        "BasicMotions: 40 train / 40 test series, 6 channels (3-D accelerometer + "
        "gyroscope) x 100 steps, 4 classes (badminton, running, standing, walking); "
        "UEA archive (sktime's bundled copy)",
    ),
    "arrowhead": (
        "ArrowHead",
        "ArrowHead: 36 train / 175 test series, 1 channel x 251 steps (outline angles), "
        "3 classes (Avonlea, Clovis, Mix); UCR archive (sktime's bundled copy)",
    ),
    "japanesevowels": (
        "JapaneseVowels",
        "JapaneseVowels: 270 train / 370 test series, 12 channels (LPC cepstra) x "
        "7-29 steps (ragged, NaN-padded to 29), 9 classes (speakers); UEA archive "
        "(sktime's bundled copy)",
    ),
}


def sktime_data_folder(purpose: str = "the built-in UCR/UEA series") -> Path:
    """The folder holding sktime's bundled datasets (located without importing sktime; the ``[timeseries]``
    extra installs it)."""
    return locate("sktime", "timeseries", purpose) / "datasets" / "data"


def load_ucr(name: str, preprocessing: Preprocessing | None = None) -> Splits:
    """A bundled UCR/UEA set by its builtin name (lower case), with its official train/test split; with an
    encoder's preprocessing, series with another channel count are refused."""
    from selfsup.modalities.timeseries import load_files

    if name not in _SETS:
        from selfsup.errors import unknown_name

        raise unknown_name("UCR/UEA dataset", name, _SETS)
    archive = _SETS[name][0]
    folder = sktime_data_folder(f"builtin:{name}") / archive
    train, test = folder / f"{archive}_TRAIN.ts", folder / f"{archive}_TEST.ts"
    if not train.is_file() or not test.is_file():
        raise SelfsupError(
            f"the installed sktime has no {archive} files in '{folder}'; reinstall sktime "
            "('pip install --force-reinstall sktime') or pass a .ts file."
        )
    return load_files(train, test, preprocessing=preprocessing, name=f"builtin:{name}")


SERIES: dict[str, tuple[str, Callable[[Preprocessing | None], Splits]]] = {
    name: (description, partial(load_ucr, name)) for name, (_, description) in _SETS.items()
}
