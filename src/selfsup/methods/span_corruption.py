"""Span corruption and prefix splitting of one token sequence: the denoisers of T5 and UL2, as pure functions.

* :func:`random_spans_noise_mask`: which tokens to corrupt, as T5's ``random_spans_noise_mask`` (Raffel et
  al. 2020, section 3.1.4): ``round(length * rate)`` noise tokens (at least 1, at most ``length - 1``) in
  ``round(noise / mean_span)`` spans (at least 1); the noise tokens and the kept tokens are each cut into that
  many non-empty runs at uniformly random places, and the runs alternate, a kept run first; with
  ``random_roll`` (T5's option of that name, on by default here) the mask is then rotated by a uniformly random
  offset, so that a single span is not always the text's end. Span lengths are ``mean_span`` on average;
  UL2's paper describes span lengths drawn around the mean, T5's code draws them this way.
* :func:`corrupt_spans`: T5's inputs and targets for a noise mask: each run of noise tokens becomes one
  sentinel in the inputs, and the targets are each sentinel followed by the tokens it replaced.
* :func:`prefix_split`: UL2's S-denoiser (prefix LM): where the prefix (inputs) ends and the suffix (targets)
  begins, uniform over the places that leave both non-empty.

Each is deterministic given its ``torch.Generator``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch


def _segments(items: int, segments: int, generator: torch.Generator | None) -> list[int]:
    """``items`` cut into ``segments`` non-empty runs at uniformly random places: their lengths, in order."""
    cuts = sorted((torch.randperm(items - 1, generator=generator)[: segments - 1] + 1).tolist())
    bounds = [0, *cuts, items]
    return [b - a for a, b in itertools.pairwise(bounds)]


def random_spans_noise_mask(
    length: int,
    rate: float,
    mean_span: float,
    generator: torch.Generator | None = None,
    random_roll: bool = True,
) -> list[bool]:
    """Which of ``length`` tokens to corrupt: ``rate`` of them in spans of mean length ``mean_span`` (T5's
    way, see the module docstring); a sequence of fewer than 2 tokens is left whole."""
    if length < 2:
        return [False] * length
    noise = min(max(round(length * rate), 1), length - 1)
    spans = max(min(round(noise / mean_span), noise, length - noise), 1)
    mask: list[bool] = []
    for kept, corrupted in zip(_segments(length - noise, spans, generator), _segments(noise, spans, generator)):
        mask += [False] * kept + [True] * corrupted
    if random_roll:
        offset = int(torch.randint(length, (), generator=generator))
        mask = mask[-offset:] + mask[:-offset] if offset else mask
    return mask


def corrupt_spans(
    tokens: Sequence[int], noise: Sequence[bool], sentinels: Sequence[int]
) -> tuple[list[int], list[int]]:
    """T5's span corruption of ``tokens`` where ``noise`` is True: ``(inputs, targets)``.

    The ``i``-th run of noise tokens is replaced in the inputs by ``sentinels[i]``; the targets are, for each
    run, its sentinel followed by the run's tokens. ``[a, b, c, d, e]`` with ``b, c`` and ``e`` corrupted gives
    inputs ``[a, s0, d, s1]`` and targets ``[s0, b, c, s1, e]``.
    """
    if len(tokens) != len(noise):
        raise ValueError(f"{len(tokens)} tokens but a noise mask of {len(noise)}")
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    for i, (token, corrupted) in enumerate(zip(tokens, noise)):
        if not corrupted:
            inputs.append(int(token))
            continue
        if i == 0 or not noise[i - 1]:  # a new run
            span += 1
            if span >= len(sentinels):
                raise ValueError(f"more corrupted spans than the {len(sentinels)} sentinels")
            inputs.append(int(sentinels[span]))
            targets.append(int(sentinels[span]))
        targets.append(int(token))
    return inputs, targets


def prefix_split(length: int, generator: torch.Generator | None = None) -> int:
    """UL2's S-denoiser: the prefix's length, uniform in ``[1, length - 1]`` (``length`` below 2: 0, all
    suffix)."""
    if length < 2:
        return 0
    return 1 + int(torch.randint(length - 1, (), generator=generator))
