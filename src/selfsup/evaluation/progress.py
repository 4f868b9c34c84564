"""Naming each probe as it starts, so that a long evaluation never looks hung: a redrawn bar in a terminal, one
plain line per probe on stderr elsewhere (logs, pipes, CI)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def probe_steps(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A function to call with each probe's name as it starts (``total`` of them); silent unless ``enabled``."""
    if not enabled:
        yield lambda name: None
        return
    if not sys.stderr.isatty():
        done = 0

        def line(name: str) -> None:
            nonlocal done
            done += 1
            print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)

        yield line
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task("probes", total=total)
        started = False

        def step(name: str) -> None:
            nonlocal started
            if started:  # the previous probe has finished
                bar.advance(task)
            started = True
            bar.update(task, description=name)

        yield step
