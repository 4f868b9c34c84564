"""User-facing errors: one line that says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType


class SelfsupError(Exception):
    """An error caused by the user's input. The CLI prints it as one line and exits with code 2.

    One raised in a DataLoader worker (a lazily read file that cannot be decoded) comes back from torch as a new
    SelfsupError of "Caught SelfsupError in DataLoader worker process N." and the worker's traceback: it keeps
    only the original message.
    """

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if text.startswith("Caught SelfsupError in DataLoader worker") and WORKER_MARK in text:
            text = text.rsplit(WORKER_MARK, 1)[1].strip()
        super().__init__(text)


WORKER_MARK = "SelfsupError: "  # where the original message starts in a worker's traceback


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


def missing_extra(package: str, extra: str, purpose: str) -> SelfsupError:
    """The one-line error for an optional package that is not installed, with the pip command of its extra."""
    return SelfsupError(f"{purpose} needs the optional package '{package}': pip install 'selfsup[{extra}]'")


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` of selfsup's optional ``extra`` (``[text]``, ``[audio]``, ...), or raise the one-line
    error that says how to install it. ``purpose``: what needs it, the subject of that line."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module.partition(".")[0], extra, purpose) from None


def locate(package: str, extra: str, purpose: str) -> Path:
    """The folder of an installed top-level ``package`` of the optional ``extra``, found without importing it
    (for the data files it ships, or to check it is there when importing it takes seconds); the one-line error
    of :func:`require` when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise missing_extra(package, extra, purpose)
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(str(spec.origin)).parent
