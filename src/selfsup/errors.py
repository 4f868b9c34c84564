"""User-facing errors: one line that says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class SelfsupError(Exception):
    """An error caused by the user's input. The CLI prints it as one line and exits with code 2."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (or its type's name): libraries' messages run over many lines."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class RunInterrupted(Exception):
    """The user stopped a run (Ctrl-C) and its state is saved: the CLI says how to resume and exits 130."""

    def __init__(self, out: Path, step: int) -> None:
        super().__init__(
            f"interrupted at step {step}; its checkpoint is saved, continue with "
            f"'selfsup pretrain --resume --out {out}'"
        )
        self.out, self.step = out, step


def unknown_name(kind: str, name: str, choices: Iterable[str], hint: str = "") -> SelfsupError:
    """Build the error for an unknown registry name, suggesting the closest valid one."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    suggestion = f" Did you mean '{close[0]}'?" if close else ""
    listing = ", ".join(choices) if len(choices) <= 12 else f"{len(choices)} names"
    tail = f" {hint}" if hint else ""
    return SelfsupError(f"unknown {kind} '{name}'.{suggestion} Choose from: {listing}.{tail}")
