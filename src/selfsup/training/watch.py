"""Watching forgetting while it happens (``--watch DATA``, and a labelled ``--replay`` source): every ``every`` steps
the encoder's nearest-class-mean accuracy on each watched set, so that the stability gap (De Lange et al. 2023,
"Continual evaluation for lifelong learning: identifying the stability gap"; Guo et al. 2024, "Efficient Continual
Pre-training by Mitigating the Stability Gap"), the dip of source-domain accuracy early in continued pre-training
and its recovery, shows in the run's metrics (``watch_NAME``) and in ``watch.csv`` and ``watch.png``."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader

from selfsup.data import ArrayDataset
from selfsup.files import write_atomic
from selfsup.monitors import nearest_class_mean_accuracy

CSV_FILE, PLOT_FILE = "watch.csv", "watch.png"


@dataclass
class WatchedSet:
    """A labelled set to score: class means from ``fit``, accuracy on ``test`` (fixed for the whole run)."""

    name: str
    fit: ArrayDataset
    test: ArrayDataset


def _embed(encoder: nn.Module, data: ArrayDataset, device: torch.device) -> torch.Tensor:
    loader = DataLoader(data, batch_size=256)  # the dataset's own sample conversion (uint8 images to [0, 1])
    return torch.cat([encoder(x.to(device)).float().cpu() for x, _ in loader])


class Watch(Callback):
    """Scores every watched set at the start, every ``every`` steps and at the end, on the first process only. The
    scores go into Lightning's checkpoints (under ``callbacks``), so a resumed run, and an anneal of it, continue
    the same curve; ``watch.csv`` and ``watch.png`` are written into ``out`` at the end of training."""

    def __init__(self, sets: list[WatchedSet], every: int, out: Path) -> None:
        self.sets, self.every, self.out = sets, every, out
        self.history: list[tuple[int, str, float]] = []  # (step, set, accuracy)

    @property
    def state_key(self) -> str:  # one curve per set of watched sets, whatever the folder
        return f"Watch[{','.join(s.name for s in self.sets)}]"

    def _score(self, trainer: L.Trainer, pl_module: L.LightningModule, log: bool) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or any(done == step for done, _, _ in self.history):
            return
        encoder: nn.Module = pl_module.method.encoder  # type: ignore[union-attr,assignment]  # a PretrainModule's
        modes = {module: module.training for module in encoder.modules()}  # head warm-up keeps parts in eval
        encoder.eval()
        try:
            with torch.no_grad():
                for watched in self.sets:
                    fit, test = (
                        _embed(encoder, watched.fit, pl_module.device),
                        _embed(encoder, watched.test, pl_module.device),
                    )
                    accuracy = nearest_class_mean_accuracy(fit, watched.fit.y, test, watched.test.y)
                    self.history.append((step, watched.name, accuracy))
                    if log:  # straight to the loggers: Lightning's own logging keeps one step in log_every_n_steps
                        for logger in trainer.loggers:
                            logger.log_metrics({f"watch_{watched.name}": accuracy}, step=step)
        finally:
            for module, mode in modes.items():
                module.train(mode)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._score(trainer, pl_module, log=False)  # the starting point (Lightning logs nothing before a step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.every == 0:
            self._score(trainer, pl_module, log=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._score(trainer, pl_module, log=False)
        if trainer.is_global_zero:
            self.write()

    def state_dict(self) -> dict[str, Any]:
        return {"history": [list(row) for row in self.history]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [(int(step), str(name), float(accuracy)) for step, name, accuracy in state_dict["history"]]

    def write(self) -> None:
        """``watch.csv`` (step, set, nearest-class-mean accuracy) and its curve, ``watch.png``."""
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["step", "set", "ncm_accuracy"])
        writer.writerows(sorted(self.history, key=lambda row: (row[1], row[0])))  # type: ignore[index]
        write_atomic(self.out / CSV_FILE, text.getvalue())
        write_atomic(self.out / PLOT_FILE, self._plot())

    def _plot(self) -> bytes:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 3.5), layout="constrained")
        ax = figure.add_subplot()
        for watched in self.sets:
            points = sorted((step, accuracy) for step, name, accuracy in self.history if name == watched.name)
            ax.plot([s for s, _ in points], [100 * a for _, a in points], marker=".", label=watched.name)
        ax.set_xlabel("step")
        ax.set_ylabel("nearest-class-mean accuracy (%)")
        ax.set_title("watched sets while training (--watch)")
        ax.legend(fontsize="small")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
        return buffer.getvalue()
