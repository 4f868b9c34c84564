"""When ``selfsup unlearn`` stops: ``--stop at-heldout-loss`` (the default) or ``--stop steps``.

An ideal unlearner leaves the forget set scored like data the model never trained on: a model retrained without
it gives the forget samples the loss of unseen samples, so a loss-threshold membership-inference attack cannot tell
them apart (AUC 0.5). Unlearning further than that (the forget set scored worse than unseen data) is itself
detectable, and costs retain accuracy. So ``at-heldout-loss`` checks, before the first step and after every one,
the current model's per-sample losses on the forget set against those on a held-out part of the training split
that the model never trained on (never the test split), and stops at the first check where they are no longer
lower: where the loss-threshold attack telling forget from held-out samples has ROC AUC at most 0.5 (the forget
losses have reached the held-out losses in rank; matching the mean instead stops too early when a few held-out
samples with a large loss dominate it: the forget set is then still scored better than most unseen samples);
``steps`` (the maximum either way) is a hard cap. Forget and held-out parts are scored whole (at most 512
samples each, a fixed random subset beyond that). The held-out part takes no part in the unlearning's retain
batches, so its losses stay an unseen sample's.

The loss: a classifier's cross-entropy on the labels (``gradient-ascent``, ``npo``); for ``label-agnostic`` on a
classifier, which must not use labels, ``-log`` of its top softmax probability (a confidence loss: members are
predicted more confidently). An encoder has no loss an unseen sample can be told by without labels or a
re-fitted probe, so ``label-agnostic`` on an encoder runs its fixed ``steps`` (the record says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

STOP_RULES = ("at-heldout-loss", "steps")
MAX_SCORED = 512  # forget and held-out samples scored at each check (a fixed random subset beyond that)


def sample_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, batch_size: int = 256) -> torch.Tensor:
    """``model``'s per-sample cross-entropy on ``(x, y)``; without labels, ``-log max softmax``."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logp = F.log_softmax(model(x[i : i + batch_size].float()), dim=1)
            if y is None:
                out.append(-logp.max(dim=1).values)
            else:
                out.append(-logp.gather(1, y[i : i + batch_size, None]).squeeze(1))
    return torch.cat(out)


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> float:
    """The mean of :func:`sample_losses`."""
    return float(sample_losses(model, x, y).mean())


def member_auc(forget: torch.Tensor, heldout: torch.Tensor) -> float:
    """The loss-threshold attack's ROC AUC on forget (members) vs held-out (non-members) losses: the chance that a
    forget sample's loss is below a held-out sample's (ties count half). 0.5: it cannot tell them apart."""
    below = (forget[:, None] < heldout[None, :]).double().mean()
    ties = (forget[:, None] == heldout[None, :]).double().mean()
    return float(below + 0.5 * ties)


@dataclass
class HeldoutStop:
    """Checks ``at-heldout-loss`` on ``model`` (a classifier) and keeps the trace of its checks."""

    x_forget: torch.Tensor
    y_forget: torch.Tensor | None
    x_heldout: torch.Tensor
    y_heldout: torch.Tensor | None
    trace: list[dict[str, float]] = field(default_factory=list)

    def reached(self, model: nn.Module, step: int) -> bool:
        """Whether, after ``step`` steps, the forget losses are no longer lower than the held-out ones: the attack
        AUC of forget vs held-out losses is at most 0.5 (their means are recorded too)."""
        forget = sample_losses(model, self.x_forget, self.y_forget)
        heldout = sample_losses(model, self.x_heldout, self.y_heldout)
        auc = member_auc(forget, heldout)
        self.trace.append(
            {"step": step, "forget_loss": float(forget.mean()), "heldout_loss": float(heldout.mean()), "auc": auc}
        )
        return auc <= 0.5


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s floating-point weights and buffers (what a step moves)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def bisect_last_step(model: nn.Module, before: dict[str, torch.Tensor], stop: HeldoutStop, rounds: int = 8) -> float:
    """The last step overshot (Adam's steps are coarse: the first moves every weight by about the learning rate):
    move ``model`` back to the first point ``before + t (after - before)`` of that step, ``t`` in (0, 1] found by
    ``rounds`` bisections, where the forget losses reach the held-out ones (attack AUC <= 0.5); returns ``t``."""
    after = snapshot(model)
    state = model.state_dict()

    def place(t: float) -> None:
        with torch.no_grad():
            for k, v in before.items():
                state[k].copy_(v + t * (after[k] - v))

    low, high = 0.0, 1.0  # at low the rule has not stopped; at high it has
    for _ in range(rounds):
        mid = (low + high) / 2
        place(mid)
        forget = sample_losses(model, stop.x_forget, stop.y_forget)
        heldout = sample_losses(model, stop.x_heldout, stop.y_heldout)
        if member_auc(forget, heldout) <= 0.5:
            high = mid
        else:
            low = mid
    place(high)
    stop.reached(model, -1)  # the trace's last entry: where it stopped (step -1: inside the last step)
    return high


def stop_record(rule: str, steps_run: int, max_steps: int, reason: str, stop: HeldoutStop | None) -> dict[str, Any]:
    """``audit.json``'s ``stopping`` entry."""
    record: dict[str, Any] = {"rule": rule, "step": steps_run, "max_steps": max_steps, "reason": reason}
    if stop is not None:
        record["heldout_samples"] = len(stop.x_heldout)
        record["loss"] = "cross-entropy" if stop.y_forget is not None else "-log max softmax (no labels)"
        record["trace"] = [{k: round(v, 6) for k, v in t.items()} for t in stop.trace]
    return record
