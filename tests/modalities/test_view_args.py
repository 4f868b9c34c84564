"""The view-argument checks every modality shares: unknown names, crop-scale pairs, bounded numbers."""

from __future__ import annotations

import pytest

from selfsup.errors import SelfsupError
from selfsup.modalities.view_args import bounded_number, check_known, crop_pair


def _error(match: str, fn, *args, **kwargs) -> None:
    with pytest.raises(SelfsupError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_unknown_names_list_the_known_ones():
    given = {"mix": 0.1}
    checked = check_known(given, ("mix", "gain_db"), "audio")
    assert checked == given and checked is not given and check_known(None, ("mix",), "audio") == {}
    _error(
        r"unknown audio view argument\(s\) flip, rot; known: mix, gain_db",
        check_known,
        {"flip": 1, "rot": 2},
        ("mix", "gain_db"),
        "audio",
    )


def test_crop_pairs():
    assert crop_pair("crop_scale", [0.5, 1]) == (0.5, 1.0)
    for bad in [(0.8, 0.2), (0, 1), (0.5, 1.5), "0.5,1", (0.5,), (True, 1)]:
        _error("crop_scale must be two numbers 0 < low <= high <= 1", crop_pair, "crop_scale", bad)


def test_bounded_numbers_inclusive_and_exclusive_upper_bounds():
    assert bounded_number("mix", "1", high=1.0) == 1.0  # text from --view-arg
    _error("mix must be a number >= 0 and <= 1, got 1.5", bounded_number, "mix", 1.5, high=1.0)
    assert bounded_number("mask_ratio", 0.99, below=1.0) == 0.99
    _error("mask_ratio must be a number >= 0 and < 1", bounded_number, "mask_ratio", 1, below=1.0)
    assert bounded_number("knots", "4", low=1, integer=True) == 4
    _error("knots must be a whole number >= 1", bounded_number, "knots", 2.5, low=1, integer=True)
    for bad in ["inf", float("nan"), -1, True, "lots", None]:
        _error("gain_db must be a number >= 0", bounded_number, "gain_db", bad)
