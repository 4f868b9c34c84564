"""Checks of ``view_args`` shared by the modalities: unknown names, crop-scale pairs and bounded numbers.

Values may arrive as text (``--view-arg KEY=VALUE``); every check raises a one-line ``SelfsupError``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from selfsup.errors import SelfsupError


def check_known(view_args: dict | None, known: tuple[str, ...], kind: str) -> dict:
    """A copy of ``view_args``; names outside ``known`` are refused (``kind``: "audio", "time-series", ...)."""
    view_args = dict(view_args or {})
    unknown = sorted(set(view_args) - set(known))
    if unknown:
        raise SelfsupError(f"unknown {kind} view argument(s) {', '.join(unknown)}; known: {', '.join(known)}.")
    return view_args


def crop_pair(key: str, value: Any) -> tuple[float, float]:
    """A ``(low, high)`` crop scale with ``0 < low <= high <= 1``."""
    numbers = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not numbers or not 0 < value[0] <= value[1] <= 1:
        raise SelfsupError(f"view argument {key} must be two numbers 0 < low <= high <= 1, got {value!r}.")
    return float(value[0]), float(value[1])


def bounded_number(
    key: str, value: Any, low: float = 0.0, high: float | None = None, below: float | None = None, integer: bool = False
) -> float | int:
    """A finite number ``>= low`` and ``<= high`` / ``< below`` when given; a whole one with ``integer``."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer()) and value >= low
    ok = ok and (high is None or value <= high) and (below is None or value < below)
    if not ok:
        kind = "a whole number" if integer else "a number"
        bound = (
            f">= {low:g}"
            + (f" and <= {high:g}" if high is not None else "")
            + (f" and < {below:g}" if below is not None else "")
        )
        raise SelfsupError(f"view argument {key} must be {kind} {bound}, got {value!r}.")
    return int(value) if integer else float(value)
