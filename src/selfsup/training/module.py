"""The one generic LightningModule: views on the training device, the method's loss.

Methods never write training loops. Each training step returns the detached embeddings of the first view, which
the label-free monitors (``training/callbacks.py``) and the online linear probe (``training/probe.py``, trained
on them and scored on the embeddings ``validation_step`` returns for a held-out labeled split) read.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn

from selfsup.methods.base import Method
from selfsup.methods.ema import frozen_copy
from selfsup.training.schedule import lr_multiplier
from selfsup.training.upsample import DomainUpsampling


class PretrainModule(L.LightningModule):
    def __init__(
        self,
        method: Method,
        views: nn.Module,
        lr: float,
        weight_decay: float,
        warmup_fraction: float,
        *,
        schedule: str = "cosine",
        decay_fraction: float = 0.2,
        cooldown_steps: int | None = None,
        constant_fraction: float = 1.0,
        anneal_steps: int = 0,
        freeze_encoder_steps: int = 0,
        warmup_steps: int | None = None,
        distill_teacher: nn.Module | None = None,
        distill_weight: float = 1.0,
        upsample: DomainUpsampling | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.seed = seed  # the run's; several processes draw their views from their own seeds derived from it
        self.method = method
        self.views = views
        self.lr, self.weight_decay, self.warmup_fraction = lr, weight_decay, warmup_fraction
        self.schedule, self.decay_fraction = schedule, decay_fraction
        self.cooldown_steps, self.constant_fraction = cooldown_steps, constant_fraction
        self.anneal_steps = anneal_steps  # the last steps of the run: decayed from the constant LR to 0
        self.freeze_encoder_steps = freeze_encoder_steps
        self.warmup_steps = warmup_steps  # when given, instead of ``warmup_fraction`` of the steps
        self.distill_teacher = frozen_copy(distill_teacher).eval() if distill_teacher is not None else None
        self.distill_weight = distill_weight
        self._warming_up = False  # the backbone is in eval mode for head warm-up
        self.upsample = upsample  # --upsample-at-end: target samples in the last steps' batches
        self._target_count = 0  # how many of this step's samples are the target's

    def on_train_start(self) -> None:
        """Several processes: each reseeds torch's generators (CPU and GPU, which the views and masks draw from) from
        the run's seed, its global rank and the step it starts at, so that processes draw different augmentations
        (``seed_everything`` seeds them all alike, for identical initial weights) and a resumed run does not replay
        the draws of the run's first steps. One process keeps the generator as seeded, as before."""
        if self.trainer.world_size > 1:
            torch.manual_seed(process_seed(self.seed, self.global_rank, self.global_step))
        self._updated_at = self.global_step

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        x = batch[0]  # the labels are the online probe's (``training/probe.py``)
        with torch.no_grad():
            views = self.views(x)
        out = self.method.training_loss(views)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(
                f"the {self.method.name} loss became {out.loss.item()} at step {self.global_step} (peak learning "
                f"rate {self.lr:g}); lower --lr, or use --precision 32-true."
            )
        loss = out.loss
        if self.distill_teacher is not None:
            distill_loss = self._distill_loss(views[0])
            loss = loss + self.distill_weight * distill_loss
            self.log("distill_loss", distill_loss, on_step=True, on_epoch=False)
        self.log("loss", out.loss, prog_bar=True, on_step=True, on_epoch=True)
        if self.upsample is not None:
            self.log("target_share", self._target_count / len(batch[1]), on_step=True, on_epoch=False)
        for key, value in out.logs.items():
            self.log(key, value, on_step=True, on_epoch=False)
        return {"loss": loss, "embedding": out.embedding.detach()}  # the embeddings: for the callbacks

    def _distill_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Self-distillation (Lee et al. 2022): squared distance between the student's and the frozen
        stage-1 teacher's embeddings of the same input, summed over dimensions, averaged over the batch."""
        assert self.distill_teacher is not None  # called only with a teacher
        with torch.no_grad():
            self.distill_teacher.eval()
            target = self.distill_teacher(x)
        return (self.method.encoder(x) - target).square().sum(dim=1).mean()

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Domain upsampling (``training/upsample.py``): in the run's last steps, part of the training batch is
        replaced by target samples, chosen by the step this batch trains (the global step, resume-proof)."""
        if self.upsample is None or not self.trainer.training:
            return batch
        batch, self._target_count = self.upsample.mix(
            batch, self.global_step, self._total_steps(), self.global_rank, self.trainer.world_size
        )
        return batch

    def _encoder_frozen(self) -> bool:
        return self.global_step < self.freeze_encoder_steps

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        """Head warm-up: while the encoder is frozen it also runs in eval mode (no batch-norm statistics
        or dropout), so new heads learn on the checkpoint's features as they are."""
        if self._encoder_frozen():
            self.method.backbone().eval()
            self._warming_up = True
        elif self._warming_up and self.training:
            self.method.backbone().train()
            self._warming_up = False

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._encoder_frozen():  # no gradient: AdamW neither steps nor decays these weights
            for p in self.method.backbone().parameters():
                p.grad = None

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """The method's per-step updates (EMA teachers), once per optimiser step, with the run's progress; under the infinite schedule, which
        has no end to measure progress by, always 0 (an EMA teacher keeps its base momentum, however long the run
        is extended or wherever it is annealed)."""
        if self.global_step == getattr(self, "_updated_at", -1):  # --accumulate-grad-batches: no optimiser step yet
            return
        self._updated_at = self.global_step
        progress = 0.0 if self.schedule == "infinite" else self.global_step / max(1, self._total_steps())
        self.method.on_train_batch_end(progress=progress)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """The held-out batch's embeddings, which the online probe (``training/probe.py``) scores."""
        x = batch[0]
        if isinstance(x, (list, tuple)) and not self.method.paired:  # a sample and its pair: probe the sample
            x = x[0]
        return {"embedding": self.method.encoder(x)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint of an older selfsup holds the online probe in the module (``probe.*``): dropped, so that
        resuming it ends in the workflow's message on its optimiser state of another shape, not a key error."""
        for key in [k for k in checkpoint["state_dict"] if k.startswith("probe.")]:
            del checkpoint["state_dict"][key]

    def _total_steps(self) -> int:
        return int(self.trainer.estimated_stepping_batches)

    def configure_optimizers(self):
        """AdamW, one LR schedule. With head warm-up the encoder's groups have their own schedule (warm-up
        included) that starts when it is unfrozen, so it does not meet the full LR with empty optimiser moments.
        Encoder and heads are each split by ``decays``: weight decay on matrices and kernels, none on biases,
        norm weights and learned scalars."""
        encoder_ids = {id(p) for p in self.method.backbone().parameters()}
        trainable = [p for p in self.method.parameters() if p.requires_grad]
        groups: list[dict] = []
        in_encoder: list[bool] = []  # in_encoder[i]: group i holds encoder weights
        for encoder in (True, False):
            for decayed in (True, False):
                params = [p for p in trainable if (id(p) in encoder_ids) == encoder and decays(p) == decayed]
                if params:
                    groups.append({"params": params, "weight_decay": self.weight_decay if decayed else 0.0})
                    in_encoder.append(encoder)
        optimizer = torch.optim.AdamW(groups, lr=self.lr)
        total = self._total_steps()
        freeze = self.freeze_encoder_steps

        def warmup_of(steps: int) -> int:
            return min(steps, self.warmup_steps) if self.warmup_steps is not None else int(self.warmup_fraction * steps)

        warmup = warmup_of(total)

        def multiplier(step: int, warmup: int, total: int) -> float:
            cooldown = self.cooldown_steps  # none given: decay_fraction of the steps after warm-up
            if cooldown is None:
                cooldown = max(1, round(self.decay_fraction * max(1, total - warmup)))
            return lr_multiplier(
                self.schedule,
                step,
                warmup,
                total,
                self.decay_fraction,
                cooldown_steps=cooldown,
                constant_fraction=self.constant_fraction,
                anneal_steps=self.anneal_steps,
            )

        def whole(step: int) -> float:
            return multiplier(step, warmup, total)

        def after_freeze(step: int) -> float:  # the anneal, counted from the end, stays where it is
            if step < freeze:
                return 0.0
            rest = max(1, total - freeze)
            return multiplier(step - freeze, warmup_of(rest), rest)

        # LambdaLR takes one multiplier per parameter group, in the optimiser's order
        lambdas = [after_freeze if freeze and encoder else whole for encoder in in_encoder]
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def process_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of process ``rank`` of a run seeded ``seed``, starting at ``step``: independent streams for every
    (seed, rank, step), through NumPy's ``SeedSequence`` (unlike ``seed + rank``, seed 0's rank 1 is not seed 1's
    rank 0)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0] % 2**63)


def decays(param: torch.Tensor) -> bool:
    """Whether AdamW's weight decay applies to ``param``: only to tensors of 2+ dimensions (weight matrices,
    convolution kernels, embeddings), never to biases, norm weights and biases or learned scalars such as
    temperatures, which decay would pull towards 0 rather than regularise. The rule of nanoGPT
    (``configure_optimizers``: ``p.dim() >= 2``) and of timm's ``param_groups_weight_decay``
    (``param.ndim <= 1`` or a ``.bias`` goes undecayed)."""
    return param.ndim >= 2
