"""The online linear probe (as in solo-learn and stable-pretraining) as a Lightning callback: it watches how well
the embeddings separate the labels while pre-training runs, and never touches the encoder or its loss."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn


class OnlineProbe(Callback):
    """A linear classifier trained on the detached embeddings ``PretrainModule.training_step`` returns (labeled
    samples only: replayed ones carry label -1) and scored on the validation embeddings ``validation_step``
    returns: ``probe_loss`` every step, ``probe_acc`` per validation epoch.

    It has its own AdamW without weight decay. Inside the module's optimiser the probe had the run's peak LR
    under its warm-up and decay; here it keeps that peak LR ``lr`` constant, as stable-pretraining's probe
    does: a convex probe on moving features needs no schedule. Its weights and optimiser state go into
    Lightning's checkpoints (under ``callbacks``), so a resumed run continues the probe.
    """

    def __init__(self, embed_dim: int, num_classes: int, lr: float = 1e-3) -> None:
        self.probe = nn.Linear(embed_dim, num_classes)
        self.optimizer = torch.optim.AdamW(self.probe.parameters(), lr=lr, weight_decay=0.0)

    def _to(self, device: torch.device) -> None:
        self.probe.to(device)
        self.optimizer.load_state_dict(self.optimizer.state_dict())  # moves the moments to the weights' device

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._to(pl_module.device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        y = batch[1]
        labeled = y >= 0
        several = trainer.world_size > 1  # every process takes part in the gradient average, labels or not
        if not labeled.any() and not several:
            return
        embedding = outputs["embedding"].detach()[labeled].to(self.probe.weight.dtype)
        with torch.enable_grad():
            loss = F.cross_entropy(self.probe(embedding), y[labeled], reduction="sum") / labeled.sum().clamp(min=1)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if several:  # one probe on every process, as DDP keeps the module's weights
            for p in self.probe.parameters():
                p.grad = trainer.strategy.reduce(p.grad, reduce_op="mean")
        self.optimizer.step()
        if labeled.any():
            pl_module.log("probe_loss", loss.detach(), on_step=True, on_epoch=False)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        y = batch[1]
        logits = self.probe(outputs["embedding"].to(self.probe.weight.dtype))
        accuracy = (logits.argmax(-1) == y).float().mean()
        pl_module.log("probe_acc", accuracy, prog_bar=True, on_epoch=True, batch_size=len(y))

    def state_dict(self) -> dict[str, Any]:
        return {"probe": self.probe.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.probe.load_state_dict(state_dict["probe"])
        self.optimizer.load_state_dict(state_dict["optimizer"])  # onto the weights' device
