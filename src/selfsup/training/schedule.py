"""Learning-rate schedules."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, final_fraction: float = 0.0) -> float:
    """Multiplier of the peak LR: linear warm-up, then cosine decay to ``final_fraction`` (Loshchilov & Hutter 2017)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_stable_decay(
    step: int, warmup_steps: int, total_steps: int, decay_fraction: float = 0.2, final_fraction: float = 0.0
) -> float:
    """Multiplier of the peak LR: linear warm-up, constant, then a linear decay to ``final_fraction`` over
    the last ``decay_fraction`` of the steps after warm-up (the "infinite" / WSD schedule, Ibrahim et al.
    2024, Hu et al. 2024). Training can stop or be extended anywhere in the stable phase; resuming
    with more ``--max-steps`` moves the decay to the new end."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, round(decay_fraction * max(1, total_steps - warmup_steps)))
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / decay_steps)
    return final_fraction + (1.0 - final_fraction) * (1.0 - progress)


def infinite(step: int, warmup_steps: int, cooldown_steps: int, constant_fraction: float) -> float:
    """Multiplier of the peak LR: linear warm-up, a cosine cool-down over ``cooldown_steps`` to
    ``constant_fraction``, then constant for as long as training goes on (the "infinite" schedule of continual
    pre-training, Ibrahim et al. 2024 "Simple and Scalable Strategies to Continually Pre-train Large Language
    Models"; for self-supervised MAE pre-training: "Beyond Cosine Decay"). No re-warming when the run is extended;
    a deployable model is a short anneal branched off the constant phase (``anneal`` in :func:`lr_multiplier`)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if cooldown_steps <= 0:
        return constant_fraction
    progress = min(1.0, (step - warmup_steps) / cooldown_steps)
    return constant_fraction + (1.0 - constant_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_multiplier(
    schedule: str,
    step: int,
    warmup_steps: int,
    total_steps: int,
    decay_fraction: float = 0.2,
    *,
    cooldown_steps: int = 0,
    constant_fraction: float = 1.0,
    anneal_steps: int = 0,
) -> float:
    """The multiplier of the peak LR at ``step`` for a recipe's ``schedule``: cosine, wsd, constant or infinite.
    With ``anneal_steps`` (constant and infinite only) the last ``anneal_steps`` of the ``total_steps`` decay
    linearly from the constant phase's LR to 0 (the anneal of a branch off the constant phase)."""
    if schedule == "wsd":
        return warmup_stable_decay(step, warmup_steps, total_steps, decay_fraction)
    if schedule == "cosine":
        return warmup_cosine(step, warmup_steps, total_steps)
    level = constant_fraction if schedule == "infinite" else 1.0
    anneal_start = total_steps - anneal_steps
    if anneal_steps > 0 and step >= anneal_start:
        return level * max(0.0, (total_steps - step) / anneal_steps)
    if schedule == "infinite":
        return infinite(step, warmup_steps, cooldown_steps, constant_fraction)
    return (step + 1) / warmup_steps if warmup_steps > 0 and step < warmup_steps else 1.0
