"""User-facing errors: one line that says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SelfsupError(Exception):
    """An error caused by the user's input. The CLI prints it as one line and exits with code 2."""


def unknown_name(kind: str, name: str, choices: Iterable[str], hint: str = "") -> SelfsupError:
    """Build the error for an unknown registry name, suggesting the closest valid one."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    suggestion = f" Did you mean '{close[0]}'?" if close else ""
    listing = ", ".join(choices) if len(choices) <= 12 else f"{len(choices)} names"
    tail = f" {hint}" if hint else ""
    return SelfsupError(f"unknown {kind} '{name}'.{suggestion} Choose from: {listing}.{tail}")
