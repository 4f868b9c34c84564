"""Batched, gradient-free embedding of samples with a frozen encoder."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def _default_device(encoder: torch.nn.Module) -> torch.device:
    for tensor in encoder.parameters():
        return tensor.device
    for buffer in encoder.buffers():
        return buffer.device
    return torch.device("cpu")


def _batches(samples: torch.Tensor | Dataset, batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(samples, torch.Tensor):
        for start in range(0, len(samples), batch_size):
            yield samples[start : start + batch_size]
        return
    loader = DataLoader(samples, batch_size=batch_size, shuffle=False, num_workers=0)
    for batch in loader:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _by_length(encoder: torch.nn.Module, samples: torch.Tensor | Dataset) -> torch.Tensor | None:
    """For token ids ``(N, L)`` (int, or float as ``float_samples`` gives them) of an encoder whose config names a
    ``pad_id`` (text), the order of the rows from the fewest real tokens to the most, on the samples' device:
    batched in that order, each batch is cut after its own longest text instead of carrying the padding of the
    longest text in the set. None for other samples."""
    config = getattr(encoder, "config", None)
    pad = config.get("pad_id") if isinstance(config, dict) else None
    if pad is None or not isinstance(samples, torch.Tensor) or samples.ndim != 2:
        return None
    ids = samples.round() if samples.is_floating_point() else samples
    return torch.argsort((ids != int(pad)).sum(dim=1), stable=True)


def embed(
    encoder: torch.nn.Module,
    samples: torch.Tensor | Dataset,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Embed ``samples`` with ``encoder`` in eval mode; returns float32 ``(N, D)``.

    ``samples`` is a tensor ``(N, ...)`` (float, or int token ids) or a Dataset yielding ``(x, y)``. Dropout and
    batch-norm statistics are frozen during embedding; the encoder's previous train/eval mode
    is restored afterwards. Outputs with more than two dimensions are flattened per sample. Token ids of a
    text encoder are embedded shortest first (less padding per batch) and returned in their own order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else _default_device(encoder)
    n = len(cast(Sized, samples))  # tensors, and the map-style datasets the readers build
    order = _by_length(encoder, samples)
    if order is not None:
        samples = samples[order]
    was_training = encoder.training
    chunks: list[np.ndarray] = []
    bar = None
    try:
        encoder.eval()
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task("embedding", total=n)
        with torch.inference_mode():
            for x in _batches(samples, batch_size):
                x = x.to(device=device, dtype=torch.float32)
                if x.ndim == 4:  # images: oneDNN's convolutions run about 1.5x faster on channels-last tensors
                    x = x.contiguous(memory_format=torch.channels_last)
                    encoder.to(memory_format=torch.channels_last)
                out = encoder(x)
                chunks.append(out.reshape(len(x), -1).float().cpu().numpy())
                if bar is not None:
                    bar.advance(task, len(x))
    finally:
        if bar is not None:
            bar.stop()
        encoder.to(memory_format=torch.contiguous_format)  # as it came (a no-op unless images made it channels-last)
        encoder.train(was_training)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.concatenate(chunks)
    if order is not None:
        out[order.cpu().numpy()] = out.copy()
    return np.ascontiguousarray(out, dtype=np.float32)
