"""Label-free quality of an encoder on a dataset: the monitors of ``selfsup.monitors`` over its embeddings.

RankMe (higher: more dimensions used), uniformity and alignment (lower is better for both) read no labels, so
they can rank encoders where none exist (Garrido et al. 2023; Wang & Isola 2020). ``evaluate`` reports them for
every encoder it probes, on a fixed random subset of at most ``MONITOR_SAMPLES`` training samples, alignment on
``ALIGNMENT_PAIRS`` of them: enough for a stable mean, cheap next to the probes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sized
from typing import cast

import numpy as np
import torch
from torch.utils.data import Dataset

from selfsup.data import Splits
from selfsup.evaluation.embed import embed
from selfsup.modalities import get_modality
from selfsup.monitors import alignment, embedding_spread, rankme, uniformity
from selfsup.views import ViewSpec

MONITOR_SAMPLES = 2048  # RankMe's rank is at most min(samples, dimensions)
ALIGNMENT_PAIRS = 128  # a mean of squared distances (standard error: their spread / 11), at 4 x 128 embeddings


def subset(n: int, size: int, seed: int) -> np.ndarray:
    """At most ``size`` of ``n`` row indices, a sorted random choice fixed by ``seed`` (all of them when fewer)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def embedding_monitors(embedding: np.ndarray | torch.Tensor) -> dict[str, float]:
    """RankMe, uniformity and spread of ``(N, D)`` embeddings (flattened when they have more axes)."""
    z = torch.as_tensor(np.asarray(embedding, dtype=np.float32)).reshape(len(embedding), -1)
    return {"rankme": rankme(z), "uniformity": uniformity(z), "embedding_spread": embedding_spread(z)}


@torch.no_grad()
def view_alignment(
    encoder: torch.nn.Module, x: torch.Tensor, views: torch.nn.Module, seed: int = 0, batch_size: int = 512
) -> float | None:
    """Alignment of ``encoder`` over two augmented views of each sample of ``x`` (the positive pairs); None when
    the two views are the very same tensor (text: its views differ only by the encoder's dropout, off here)."""
    first, second = views(x, generator=torch.Generator().manual_seed(seed))[:2]
    if first.shape == second.shape and torch.equal(first, second):
        return None
    return alignment(
        torch.from_numpy(embed(encoder, first, batch_size=batch_size)),
        torch.from_numpy(embed(encoder, second, batch_size=batch_size)),
    )


def default_views(splits: Splits, encoder_config: dict) -> torch.nn.Module:
    """Two global views by the modality's default augmentations (with the data's own view defaults): the positive
    pairs alignment is measured on, the same for every encoder of the report (not a method's own views)."""
    with warnings.catch_warnings():  # e.g. "rasters: colour jitter is off", a training concern
        warnings.simplefilter("ignore", UserWarning)
        return get_modality(splits.modality).make_views(
            ViewSpec(n_global=2), splits, encoder_config, dict(splits.view_defaults)
        )


def encoder_monitors(
    train_features: dict[str, np.ndarray],
    encoders: Mapping[str, torch.nn.Module],
    x: torch.Tensor | Dataset,
    views: torch.nn.Module | None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Each encoder's monitors on the training split: RankMe, uniformity and spread of its training embeddings
    ``train_features[name]`` (the rows ``subset`` picks), and alignment for the names in ``encoders`` (their two views
    of the samples ``x``, the same rows; a tensor, or a Dataset of ``(sample, label)``) when ``views`` is given and
    its views differ."""
    rows = subset(len(cast(Sized, x)), MONITOR_SAMPLES, seed)
    result = {name: embedding_monitors(np.asarray(z)[rows]) for name, z in train_features.items()}
    if views is not None:
        picked = rows[subset(len(rows), ALIGNMENT_PAIRS, seed)]
        # a Dataset (a lazily read split): only these samples are decoded
        pairs = x[picked] if isinstance(x, torch.Tensor) else torch.stack([x[int(i)][0] for i in picked])
        for name, encoder in encoders.items():
            aligned = view_alignment(encoder, pairs, views, seed)
            if aligned is not None:
                result[name]["alignment"] = aligned
    return result


@torch.no_grad()
def label_free(
    encoder: torch.nn.Module, x: torch.Tensor, views: torch.nn.Module | None = None, batch_size: int = 512
) -> dict[str, float]:
    """All monitors for ``encoder`` on samples ``x``; alignment only with ``views`` (a modality's views
    module with two global views), whose two views of each sample are the positive pair."""
    x = x[subset(len(x), MONITOR_SAMPLES, 0)]
    result = embedding_monitors(embed(encoder, x, batch_size=batch_size))
    if views is not None:
        aligned = view_alignment(encoder, x, views, batch_size=batch_size)
        if aligned is not None:
            result["alignment"] = aligned
    return result
