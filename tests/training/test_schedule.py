"""Learning-rate schedules against hand-computed values."""

from __future__ import annotations

import math

from selfsup.training.schedule import lr_multiplier, warmup_stable_decay


def test_warmup_stable_decay() -> None:
    # 10 warm-up steps, 110 in all: 100 after warm-up, the last 20 decay linearly to 0
    assert warmup_stable_decay(0, 10, 110) == 0.1
    assert warmup_stable_decay(9, 10, 110) == 1.0
    assert warmup_stable_decay(50, 10, 110) == 1.0
    assert warmup_stable_decay(89, 10, 110) == 1.0  # the stable phase ends at step 90
    assert math.isclose(warmup_stable_decay(100, 10, 110), 0.5)
    assert warmup_stable_decay(110, 10, 110) == 0.0
    # resumed with more steps, the decay moves to the new end: step 100 is stable again
    assert warmup_stable_decay(100, 10, 210) == 1.0
    assert math.isclose(warmup_stable_decay(100, 10, 110, decay_fraction=0.5), 0.2)


def test_lr_multiplier_by_schedule() -> None:
    assert math.isclose(lr_multiplier("cosine", 60, 10, 110), 0.5)
    assert lr_multiplier("constant", 60, 10, 110) == 1.0 and lr_multiplier("constant", 4, 10, 110) == 0.5
    assert math.isclose(lr_multiplier("wsd", 100, 10, 110, 0.2), 0.5)
