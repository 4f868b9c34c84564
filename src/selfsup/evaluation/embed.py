"""Batched, gradient-free embedding of samples with a frozen encoder."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sized
from contextlib import AbstractContextManager, nullcontext
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.data import DataLoader, Dataset

from selfsup.data import ArrayDataset, loader_workers
from selfsup.errors import SelfsupError

CHUNK_ROWS = 16384  # embeddings held at once when they are written to disk block by block (128 MiB at 2048 dims)


def _conv_then_norm(module: nn.Module) -> list[tuple[nn.Sequential, int]]:
    """Where a Sequential runs a convolution straight into a batch norm with running statistics: ``(it, index)``."""
    return [
        (seq, i)
        for seq in module.modules()
        if isinstance(seq, nn.Sequential)
        for i in range(len(seq) - 1)
        if isinstance(seq[i], nn.modules.conv._ConvNd)
        and not isinstance(seq[i], nn.modules.conv._ConvTransposeNd)  # their kernels are laid out otherwise
        and isinstance(seq[i + 1], nn.modules.batchnorm._BatchNorm)
        and seq[i + 1].running_mean is not None
    ]


def folded_batch_norms(encoder: nn.Module) -> nn.Module:
    """An eval-mode ``encoder`` itself, or a copy of it with every batch norm that follows a convolution folded into
    the convolution's weights (the same function, one pass over the activations fewer: ``small_cnn`` embeds about
    20% faster on a CPU)."""
    if not _conv_then_norm(encoder):
        return encoder
    folded = copy.deepcopy(encoder)
    for seq, i in _conv_then_norm(folded):
        conv, norm = cast(nn.modules.conv._ConvNd, seq[i]), cast(nn.modules.batchnorm._BatchNorm, seq[i + 1])
        seq[i] = fuse_conv_bn_eval(conv, norm)
        seq[i + 1] = nn.Identity()
    return folded


def _default_device(encoder: torch.nn.Module) -> torch.device:
    for tensor in encoder.parameters():
        return tensor.device
    for buffer in encoder.buffers():
        return buffer.device
    return torch.device("cpu")


def _batches(samples: torch.Tensor | Dataset, batch_size: int, workers: int, pin: bool) -> Iterator[torch.Tensor]:
    if isinstance(samples, torch.Tensor):
        for start in range(0, len(samples), batch_size):
            yield samples[start : start + batch_size]
        return
    loader = DataLoader(
        samples, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin, persistent_workers=False
    )
    for batch in loader:  # a SelfsupError a worker raises keeps its own line (selfsup.errors.SelfsupError)
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _series_lengths(x: torch.Tensor) -> torch.Tensor | None:
    """For ragged series ``(N, C, T)`` (NaN after each one's end, as the readers pad them): each one's length up to
    its last step that holds a value. None for other samples."""
    if x.ndim != 3 or not x.is_floating_point():
        return None
    held = ~torch.isnan(x).all(dim=1)  # (N, T)
    if bool(held.all()):
        return None
    steps = torch.arange(1, x.shape[-1] + 1, device=x.device)
    return (held * steps).amax(dim=1)


def _trimmed(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A batch of ragged series without the steps where none of them holds a value any more, for an encoder that
    masks them (``trims_padding``: the same embeddings, at the cost of the batch's own longest series)."""
    lengths = _series_lengths(x) if getattr(encoder, "trims_padding", False) else None
    return x if lengths is None else x[..., : max(1, int(lengths.max()))]


def _by_length(encoder: torch.nn.Module, samples: torch.Tensor | Dataset) -> torch.Tensor | None:
    """The order of the samples from shortest to longest, on their device, for token ids ``(N, L)`` (int, or float
    as ``float_samples`` gives them) of an encoder whose config names a ``pad_id`` (text), and for ragged series of an
    encoder that ``trims_padding``:
    batched in that order, each batch is cut after its own longest sample instead of carrying the padding of the
    longest in the set. None for other samples."""
    if not isinstance(samples, torch.Tensor):
        return None
    lengths = _series_lengths(samples) if getattr(encoder, "trims_padding", False) else None
    if lengths is not None:
        return torch.argsort(lengths, stable=True)
    config = getattr(encoder, "config", None)
    pad = config.get("pad_id") if isinstance(config, dict) else None
    if pad is None or samples.ndim != 2:
        return None
    ids = samples.round() if samples.is_floating_point() else samples
    return torch.argsort((ids != int(pad)).sum(dim=1), stable=True)


def _autocast(device: torch.device, precision: str | None) -> AbstractContextManager:
    """Mixed precision for the forward pass: ``bf16-mixed`` or ``16-mixed`` (Lightning's names) under
    ``torch.autocast``; full float32 for None, ``32`` and ``32-true``. Embeddings come back as float32 either way."""
    if precision in (None, "32", "32-true"):
        return nullcontext()
    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision not in dtypes:
        raise SelfsupError(f"--precision {precision}: embedding takes 32, bf16-mixed or 16-mixed.")
    return torch.autocast(device_type=device.type, dtype=dtypes[precision])


def _on_device(encoder: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``encoder`` with batch norms folded (eval mode), on ``device``: a copy when it lives elsewhere, so the
    caller's encoder stays where it is."""
    model = folded_batch_norms(encoder)
    if _default_device(model) != device:
        model = copy.deepcopy(model).to(device)
    return model


def embed_chunks(
    encoder: torch.nn.Module,
    samples: torch.Tensor | Dataset,
    chunk_rows: int | None = CHUNK_ROWS,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    progress: bool = False,
    precision: str | None = None,
    workers: int | None = None,
) -> Iterator[np.ndarray]:
    """The embeddings of ``samples`` as :func:`embed` gives them, in consecutive float32 blocks of ``chunk_rows``
    rows (the last one shorter; None: one block), in the samples' order: memory holds one block, not all of them
    (``embed`` writes them to disk block by block). ``workers`` DataLoader processes decode a Dataset (default:
    ``loader_workers``); ``precision`` ``bf16-mixed`` runs the encoder under ``torch.autocast`` (GPUs)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if chunk_rows is not None and chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    device = torch.device(device) if device is not None else _default_device(encoder)
    n = len(cast(Sized, samples))  # tensors, and the map-style datasets the readers build
    workers = loader_workers(samples) if workers is None else workers
    was_training = encoder.training
    bar = None
    try:
        encoder.eval()
        model = _on_device(encoder, device)
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task("embedding", total=n)

        # an in-memory dataset's stored samples, each batch made float as ``float_samples`` does (pictures: / 255)
        stored = samples.x if isinstance(samples, ArrayDataset) else samples
        scale = isinstance(samples, ArrayDataset) and samples.x.dtype == torch.uint8

        def run(part: torch.Tensor | Dataset) -> Iterator[np.ndarray]:
            with torch.inference_mode(), _autocast(device, precision):
                for x in _batches(part, batch_size, workers, pin=device.type == "cuda"):
                    x = x.to(device=device, dtype=torch.float32, non_blocking=True)
                    x = _trimmed(encoder, x.div_(255.0) if scale else x)
                    if x.ndim == 4:  # images: oneDNN's convolutions run about 1.5x faster on channels-last tensors
                        x = x.contiguous(memory_format=torch.channels_last)
                        model.to(memory_format=torch.channels_last)
                    out = model(x)
                    yield out.reshape(len(x), -1).float().cpu().numpy()
                    if bar is not None:
                        bar.advance(task, len(x))

        if isinstance(stored, torch.Tensor):  # in memory: each block on its own, shortest first
            step = chunk_rows or max(n, 1)
            for start in range(0, n, step):
                part = stored[start : start + step]
                order = _by_length(encoder, part)
                block = np.concatenate(list(run(part if order is None else part[order])))
                if order is not None:
                    block[order.cpu().numpy()] = block.copy()
                yield np.ascontiguousarray(block, dtype=np.float32)
            return
        pending: list[np.ndarray] = []
        held = 0
        for out in run(samples):  # one loader over the whole set: its workers start once
            pending.append(out)
            held += len(out)
            while chunk_rows is not None and held >= chunk_rows:
                block = np.concatenate(pending)
                yield np.ascontiguousarray(block[:chunk_rows], dtype=np.float32)
                pending, held = [block[chunk_rows:]], held - chunk_rows
        if held:
            yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)
    finally:
        if bar is not None:
            bar.stop()
        encoder.to(memory_format=torch.contiguous_format)  # as it came (a no-op unless images made it channels-last)
        encoder.train(was_training)


def embed(
    encoder: torch.nn.Module,
    samples: torch.Tensor | Dataset,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    progress: bool = False,
    precision: str | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Embed ``samples`` with ``encoder`` in eval mode; returns float32 ``(N, D)``.

    ``samples`` is a tensor ``(N, ...)`` (float, or int token ids), an in-memory ``ArrayDataset`` (its float
    samples), or a Dataset yielding ``(x, y)`` (a lazily read source is decoded by ``workers`` DataLoader
    processes). ``device`` (default: the encoder's) runs a copy of the
    encoder there when it lives elsewhere. Dropout and batch-norm statistics are frozen during embedding; the
    encoder's previous train/eval mode is restored afterwards. Outputs with more than two dimensions are flattened
    per sample. Token ids of a text encoder, and ragged series (NaN after their end) of a series encoder, are
    embedded shortest first, each batch cut after its own longest sample, and returned in their own order.
    """
    blocks = list(embed_chunks(encoder, samples, None, batch_size, device, progress, precision, workers))
    if not blocks:
        return np.zeros((0, 0), dtype=np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
