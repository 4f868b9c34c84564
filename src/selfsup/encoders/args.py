"""Encoder arguments (``--encoder-arg KEY=VALUE``, the recipe's ``encoder_args``): known names, and each
value with the type of its default. Values may arrive as text; numbers must be finite."""

from __future__ import annotations

import math
from typing import Any

from selfsup.errors import SelfsupError

TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def coerce(owner: str, key: str, value: Any, default: Any) -> Any:
    """``value`` with the type of ``default`` (bool, int, float or str); ``owner`` names the encoder in the error
    (``"audio encoder 'audio_cnn'"``)."""
    if isinstance(default, str):
        return str(value)
    if isinstance(default, bool):
        word = value.strip().lower() if isinstance(value, str) else None
        if word in TRUE | FALSE:
            return word in TRUE
        if word is None and value in (True, False, 0, 1):
            return bool(value)
        raise SelfsupError(f"encoder argument {key}={value!r} of {owner} must be true or false (default {default}).")
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    whole = isinstance(default, int)
    if not math.isfinite(number) or (whole and not number.is_integer()):
        kind = "a whole number" if whole else "a finite number"
        raise SelfsupError(f"encoder argument {key}={value!r} of {owner} must be {kind} (default {default}).")
    return int(number) if whole else number


def checked_args(owner: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Every argument of ``defaults``, ``given`` ones coerced to the default's type; unknown names are refused."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SelfsupError(
            f"unknown encoder argument(s) {', '.join(unknown)} for {owner}; known: {', '.join(defaults)}."
        )
    return {key: coerce(owner, key, given.get(key, default), default) for key, default in defaults.items()}
