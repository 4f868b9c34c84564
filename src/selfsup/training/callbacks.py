"""Label-free monitors of pre-training as Lightning callbacks (as stable-pretraining does): they read the
embeddings ``PretrainModule.training_step`` returns and never touch the loss."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from selfsup.monitors import embedding_spread, rankme


class CollapseWarning(UserWarning):
    """Training embeddings have collapsed to (nearly) one point."""


# Spread at which the embeddings count as collapsed: random-init encoders measure 0.09-0.8 on the
# built-in data, a collapsed one ~0.
COLLAPSE_SPREAD = 0.01


class EmbeddingMonitors(Callback):
    """Every ``every`` steps (a host sync, so not every step): RankMe (Garrido et al. 2023) and the spread of the
    batch's embeddings are logged, and a collapse to one point is warned about once."""

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.reported = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        embedding, step = outputs["embedding"], pl_module.global_step - 1  # the step just trained
        if len(embedding) < 2 or step % self.every:
            return
        pl_module.log("rankme", rankme(embedding), on_step=True, on_epoch=False)
        spread = embedding_spread(embedding)
        pl_module.log("embedding_spread", spread, on_step=True, on_epoch=False)
        if spread < COLLAPSE_SPREAD and not self.reported:
            self.reported = True
            rank_zero_warn(
                f"representation collapse at step {step}: the embeddings' spread fell to "
                f"{spread:.4f} (spread-out embeddings measure ~1), so every input maps to nearly the same point; "
                "lower --lr, raise the EMA momentum, or use another method.",
                category=CollapseWarning,
            )


class Throughput(Callback):
    """Training samples per second, on the progress bar."""

    def __init__(self) -> None:
        self.last: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last = None  # not across the epoch's end (validation, checkpoints)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self.last is not None:
            pl_module.log(
                "samples_per_s", len(batch[1]) / (now - self.last), prog_bar=True, on_step=True, on_epoch=False
            )
        self.last = now
