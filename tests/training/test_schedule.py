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


def test_infinite_warms_up_cools_down_and_stays_constant() -> None:
    # 10 warm-up steps, a cosine cool-down over 20 steps from the peak to half of it, then constant for ever
    assert lr_multiplier("infinite", 0, 10, 100, cooldown_steps=20, constant_fraction=0.5) == 0.1
    assert lr_multiplier("infinite", 10, 10, 100, cooldown_steps=20, constant_fraction=0.5) == 1.0
    # half-way through the cool-down: 0.5 + 0.5 * (1 + cos(pi / 2)) / 2
    assert math.isclose(lr_multiplier("infinite", 20, 10, 100, cooldown_steps=20, constant_fraction=0.5), 0.75)
    for step in (30, 99, 10_000):  # the run's length does not move it: no decay at the end
        assert lr_multiplier("infinite", step, 10, 100, cooldown_steps=20, constant_fraction=0.5) == 0.5


def test_an_anneal_decays_the_constant_phase_linearly_to_zero_over_the_last_steps() -> None:
    infinite = {"cooldown_steps": 20, "constant_fraction": 0.5, "anneal_steps": 10}
    assert lr_multiplier("infinite", 89, 10, 100, **infinite) == 0.5  # the anneal starts at step 90
    assert lr_multiplier("infinite", 90, 10, 100, **infinite) == 0.5
    assert math.isclose(lr_multiplier("infinite", 95, 10, 100, **infinite), 0.25)
    assert lr_multiplier("infinite", 100, 10, 100, **infinite) == 0.0
    assert math.isclose(lr_multiplier("constant", 95, 10, 100, anneal_steps=10), 0.5)  # from the peak
    assert lr_multiplier("constant", 89, 10, 100, anneal_steps=10) == 1.0
