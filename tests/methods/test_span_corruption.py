"""T5's span corruption and UL2's prefix split as pure functions: hand-written cases with exact answers, and
the counts T5's noise mask must hit."""

from __future__ import annotations

import pytest
import torch

from selfsup.methods.span_corruption import corrupt_spans, prefix_split, random_spans_noise_mask

S0, S1, S2 = 900, 901, 902


def test_corrupt_spans_on_a_hand_written_example():
    tokens = [10, 11, 12, 13, 14, 15, 16, 17]
    noise = [False, True, True, False, False, True, False, True]  # spans [11, 12], [15], [17]
    inputs, targets = corrupt_spans(tokens, noise, [S0, S1, S2])
    assert inputs == [10, S0, 13, 14, S1, 16, S2]
    assert targets == [S0, 11, 12, S1, 15, S2, 17]
    # T5 paper's figure 2: "Thank you <X> me to your party <Y> week." / "<X> for inviting <Y> last <Z>" is the
    # same rule with a final sentinel T5 adds when text follows the last span; a span at the start:
    assert corrupt_spans([1, 2, 3], [True, False, True], [S0, S1]) == ([S0, 2, S1], [S0, 1, S1, 3])
    assert corrupt_spans([1, 2, 3], [False] * 3, [S0]) == ([1, 2, 3], [])


def test_corrupt_spans_refuses_too_few_sentinels_and_a_mask_of_another_length():
    with pytest.raises(ValueError, match="sentinels"):
        corrupt_spans([1, 2, 3], [True, False, True], [S0])
    with pytest.raises(ValueError, match="noise mask"):
        corrupt_spans([1, 2, 3], [True], [S0])


def test_noise_mask_counts_follow_t5():
    g = torch.Generator().manual_seed(0)
    for length, rate, span, noise, spans in [(100, 0.15, 3, 15, 5), (100, 0.5, 8, 50, 6), (20, 0.15, 64, 3, 1)]:
        for _ in range(20):
            mask = random_spans_noise_mask(length, rate, span, g)
            runs = sum(m and (i == 0 or not mask[i - 1]) for i, m in enumerate(mask))
            wrapped = mask[0] and mask[-1]  # the roll may cut one span across the end
            assert len(mask) == length and sum(mask) == noise and runs - wrapped == spans
    # 4 tokens, 50%, mean span 1: 2 spans of 1 and 2 kept runs of 1, a kept run first; rolled: a rotation
    assert random_spans_noise_mask(4, 0.5, 1, g, random_roll=False) == [False, True, False, True]
    assert random_spans_noise_mask(4, 0.5, 1, g) in ([False, True, False, True], [True, False, True, False])
    # one span without the roll is always the text's end (why T5 added random_roll)
    assert random_spans_noise_mask(6, 0.5, 64, g, random_roll=False) == [False] * 3 + [True] * 3
    assert random_spans_noise_mask(1, 0.5, 3, g) == [False]


def test_noise_mask_is_deterministic_given_a_generator_and_covers_every_place():
    def draw(seed: int) -> list[list[bool]]:
        g = torch.Generator().manual_seed(seed)
        return [random_spans_noise_mask(30, 0.15, 3, g) for _ in range(200)]

    assert draw(1) == draw(1) and draw(1) != draw(2)
    hits = torch.tensor(draw(1), dtype=torch.float).mean(0)
    assert hits.min() > 0.03  # the roll spreads spans over every place
    assert abs(float(hits.mean()) - 4 / 30) < 1e-6  # round(30 * 0.15) = 4 tokens: round half to even, as T5's


def test_prefix_split_is_uniform_and_leaves_both_sides_non_empty():
    g = torch.Generator().manual_seed(0)
    cuts = torch.tensor([prefix_split(5, g) for _ in range(4000)])
    assert set(cuts.tolist()) == {1, 2, 3, 4}
    assert (torch.bincount(cuts, minlength=5)[1:].float() / 4000 - 0.25).abs().max() < 0.03
    assert prefix_split(1, g) == 0 and prefix_split(2, g) == 1
