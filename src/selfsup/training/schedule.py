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


def lr_multiplier(schedule: str, step: int, warmup_steps: int, total_steps: int, decay_fraction: float = 0.2) -> float:
    """The multiplier of the peak LR at ``step`` for a recipe's ``schedule``: cosine, wsd or constant."""
    if schedule == "wsd":
        return warmup_stable_decay(step, warmup_steps, total_steps, decay_fraction)
    if schedule == "constant":
        return (step + 1) / warmup_steps if warmup_steps > 0 and step < warmup_steps else 1.0
    return warmup_cosine(step, warmup_steps, total_steps)
