"""Training checkpoints a killed run resumes from, and a Ctrl-C that saves one before stopping.

Lightning's ``ModelCheckpoint`` (>= 2.6) writes ``last.ckpt`` only alongside a top-k checkpoint, so selfsup
writes its own: every ``--checkpoint-every`` epochs, every ``--checkpoint-every-steps`` steps, at the end of
training and when the user presses Ctrl-C. Each is written to a temporary name and renamed, and the one
before it is kept as ``previous.ckpt``, so a full disk or a kill mid-write never leaves a run without a good
checkpoint; :func:`resume_checkpoint` picks the newest one that loads.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from selfsup.errors import SelfsupError, first_line

FOLDER = "checkpoints"
LAST = "last.ckpt"
PREVIOUS = "previous.ckpt"


def checkpoint_progress(path: Path) -> tuple[int, int]:
    """The epoch and the global step a training checkpoint was saved at; a :class:`SelfsupError` when it does
    not load."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return int(state["epoch"]), int(state["global_step"])
    except Exception as err:
        reason = first_line(err).split(". ")[0]  # torch adds a paragraph of advice
        raise SelfsupError(f"checkpoint '{path}' is corrupted or truncated ({reason})") from None


def has_checkpoint(out: Path) -> bool:
    """Whether the run in ``out`` has a checkpoint to resume from (good or not: :func:`resume_checkpoint` says)."""
    return any((out / FOLDER / name).is_file() for name in (LAST, PREVIOUS))


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a run resumes from, and the epoch and global step it was saved at."""

    path: Path
    epoch: int
    step: int


def resume_checkpoint(out: Path, set_aside: bool = True) -> ResumePoint:
    """The newest good checkpoint of the run in ``out``: ``last.ckpt``, else ``previous.ckpt`` (with a warning
    naming what was wrong with the newer one, which is set aside as ``last.ckpt.corrupt`` unless ``set_aside`` is
    False: a run that is only read, as ``--anneal`` reads one, is left as it is)."""
    last, previous = out / FOLDER / LAST, out / FOLDER / PREVIOUS
    if not last.is_file() and not previous.is_file():
        raise SelfsupError(
            f"cannot resume: '{last}' does not exist (the run saved no checkpoint); start a new run instead."
        )
    problem = f"'{last}' does not exist"
    if last.is_file():
        try:
            return ResumePoint(last, *checkpoint_progress(last))
        except SelfsupError as err:
            problem = str(err)
    if not previous.is_file():
        raise SelfsupError(
            f"cannot resume: {problem}, and no earlier checkpoint is kept; start the run again with --overwrite."
        )
    try:
        point = ResumePoint(previous, *checkpoint_progress(previous))
    except SelfsupError as err:
        raise SelfsupError(
            f"cannot resume: {problem}, and so is the earlier one ({err}); start the run again with --overwrite."
        ) from None
    if last.is_file() and set_aside:  # so that the next checkpoint does not rotate it into previous.ckpt
        os.replace(last, last.with_name(LAST + ".corrupt"))
    kept = f", the broken one kept as {LAST}.corrupt" if set_aside else ""
    warnings.warn(f"{problem}; resuming from the earlier '{previous}' (step {point.step}){kept}.", stacklevel=2)
    return point


class RunCheckpoints(Callback):
    """Saves ``OUT/checkpoints/last.ckpt`` on the run's schedule, at the end, and when a stop is requested.

    ``after_first_save`` runs once, after this process's first checkpoint is on disk: a resumed run updates its
    recipe and description only then, so a resume that fails leaves the run folder as it was.
    """

    def __init__(
        self,
        out: Path,
        every_epochs: int,
        every_steps: int | None = None,
        after_first_save: Callable[[], None] | None = None,
    ) -> None:
        self.folder = Path(out) / FOLDER
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self.after_first_save = after_first_save
        self.saved_step: int | None = None  # the step of this process's latest checkpoint
        self.stop_requested = False

    def save(self, trainer: L.Trainer) -> None:
        last, tmp = self.folder / LAST, self.folder / (LAST + ".tmp")
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                if last.is_file():
                    os.replace(last, self.folder / PREVIOUS)
                os.replace(tmp, last)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            kept = (
                f"the last good one, '{last}', is kept. Free some space, then continue with --resume"
                if last.is_file()
                else "no earlier one is kept. Free some space, then start again"
            )
            raise SelfsupError(
                f"could not write the checkpoint at step {trainer.global_step} to '{self.folder}' "
                f"({err.strerror or err}); {kept}."
            ) from None
        self.saved_step = trainer.global_step
        if self.after_first_save is not None:
            self.after_first_save()
            self.after_first_save = None

    def _due(self, trainer: L.Trainer) -> bool:
        return trainer.global_step != self.saved_step and trainer.global_step > 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = self.stop_requested
        if trainer.world_size > 1:  # every process stops at the same step, or the save (collective) would hang
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self.stop_requested = True
            if self._due(trainer):
                self.save(trainer)
            trainer.should_stop = True
        elif self.every_steps and trainer.global_step % self.every_steps == 0 and self._due(trainer):
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scheduled = (trainer.current_epoch + 1) % self.every_epochs == 0
        if (scheduled or _last_epoch(trainer)) and self._due(trainer):
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._due(trainer):
            self.save(trainer)


def _last_epoch(trainer: L.Trainer) -> bool:
    max_steps = trainer.max_steps if trainer.max_steps is not None else -1
    return (
        trainer.should_stop
        or (max_steps > 0 and trainer.global_step >= max_steps)
        or (trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs)
    )


@contextmanager
def stop_on_interrupt(checkpoints: RunCheckpoints) -> Iterator[None]:
    """While training: the first Ctrl-C finishes the current step, saves a checkpoint and stops; a second one
    stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def request_stop(signum: int, frame: Any) -> None:
        checkpoints.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
