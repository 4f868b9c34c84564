"""Encoder arguments, one checker for every modality: text values take their default's type, non-finite
numbers and unknown names are refused in one line."""

from __future__ import annotations

import pytest

from selfsup.encoders.args import checked_args, coerce
from selfsup.encoders.audio import audio_encoder_config
from selfsup.encoders.image import image_encoder_config
from selfsup.encoders.series import series_encoder_config
from selfsup.encoders.text import text_encoder_config
from selfsup.errors import SelfsupError


def test_values_take_the_type_of_their_default():
    assert coerce("x", "width", "16", 32) == 16 and type(coerce("x", "width", 16.0, 32)) is int
    assert coerce("x", "rate", "0.5", 0.1) == 0.5 and coerce("x", "rate", 1, 0.1) == 1.0
    assert coerce("x", "causal", "Yes", False) is True and coerce("x", "causal", 0, True) is False
    assert coerce("x", "pooling", "cls", "mean") == "cls"


@pytest.mark.parametrize(
    "value, default, message",
    [
        ("inf", 32, "whole number"),
        (float("nan"), 32, "whole number"),
        ("2.5", 32, "whole number"),
        (True, 32, "whole number"),
        ("nan", 25.0, "finite number"),
        ("-inf", 25.0, "finite number"),
        ("wide", 25.0, "finite number"),
        ([1], 25.0, "finite number"),
        ("maybe", False, "true or false"),
        (2, False, "true or false"),
    ],
)
def test_bad_values_are_one_line(value, default, message):
    with pytest.raises(
        SelfsupError, match=f"encoder argument k=.* of audio encoder 'a' must be (a )?{message}"
    ) as info:
        coerce("audio encoder 'a'", "k", value, default)
    assert "\n" not in str(info.value)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(SelfsupError, match="unknown encoder argument.*depht for x; known: depth, width"):
        checked_args("x", {"depth": 2, "width": 8}, {"depht": 3})
    assert checked_args("x", {"depth": 2, "width": 8}, {"width": "4"}) == {"depth": 2, "width": 4}


def test_every_encoder_refuses_non_finite_numbers():
    for make, message in [
        (lambda: audio_encoder_config("audio_cnn", 16000, 1.0, width="inf"), "width='inf' of audio encoder"),
        (lambda: audio_encoder_config("audio_cnn", 16000, 1.0, window_ms="nan"), "window_ms='nan' of audio"),
        (lambda: series_encoder_config("dilated_conv", 1, 10, [0.0], [1.0], dropout=float("inf")), "dropout=inf"),
        (lambda: text_encoder_config("small_bert", depth="inf"), "depth='inf' of text encoder 'small_bert'"),
        (lambda: image_encoder_config("vit", 1, 16, [0.0], [1.0], patch_size="inf"), "patch_size='inf' of image"),
    ]:
        with pytest.raises(SelfsupError, match=message):
            make()
