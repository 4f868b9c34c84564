"""Throughput of view generation: batched ``ImageViews`` against per-sample PIL transforms.

Run as a script (``python3 benchmarks/views_throughput.py [--out figures.json]``): with
``torch.set_num_threads(2)`` it measures

(a) images/s of :class:`selfsup.modalities.image_views.ImageViews` (SimCLR spec: 2 global views,
    3 x 32 x 32 inputs stored as uint8 and converted to float per batch, batch 128), and
(b) images/s of the reference pipeline it replaces: a Dataset of 32 x 32 RGB PIL images with
    torchvision.transforms.v2 RandomResizedCrop(32), RandomHorizontalFlip, RandomApply(ColorJitter(
    0.4, 0.4, 0.2, 0.1), p=0.8), RandomGrayscale(0.2), RandomApply(GaussianBlur(3), p=0.5),
    ToImage/ToDtype(float32), 2 views per image, in a DataLoader with 2 workers and batch 128,

and the speed-up (a) / (b). One "image" is one input image turned into its 2 global views.

``measure_view_pipeline`` and ``measure_pil_pipeline`` are importable (the training-step benchmark
reuses them); they leave torch's thread settings alone, the caller sets them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    from selfsup.methods.base import ViewSpec
    from selfsup.modalities.image_views import ImageViews
except ModuleNotFoundError:  # running from a checkout without PYTHONPATH=src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from selfsup.methods.base import ViewSpec
    from selfsup.modalities.image_views import ImageViews

POOL = 2048  # distinct random images the batches are drawn from


def _random_uint8_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_view_pipeline(
    batch_size: int = 128,
    size: int = 32,
    seconds: float = 3.0,
    *,
    spec: ViewSpec | None = None,
    device: str | torch.device = "cpu",
    warmup: float = 0.5,
) -> float:
    """Images/s of ``ImageViews`` (SimCLR spec unless ``spec``): uint8 batch -> float -> views.

    Batches of ``batch_size`` 3 x ``size`` x ``size`` random uint8 images (already on ``device``)
    are converted to float in [0, 1] and turned into their views; timed for ``seconds`` after
    ``warmup`` seconds of the same work.
    """
    device = torch.device(device)
    spec = spec or ViewSpec()
    views = ImageViews(spec, size, 3).to(device)
    pool = _random_uint8_images(max(POOL, batch_size), size).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    starts = list(range(0, len(pool) - batch_size + 1, batch_size))

    def step(i: int) -> None:
        start = starts[i % len(starts)]
        x = pool[start : start + batch_size].float().div_(255.0)
        views(x, generator)

    i = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup or i < 3:
        step(i)
        i += 1
    _sync(device)
    done = 0
    t0 = time.perf_counter()
    while True:
        step(i)
        i += 1
        done += 1
        if done % 4 == 0:
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return done * batch_size / elapsed


class _PILTwoViews(torch.utils.data.Dataset):
    """32 x 32 RGB PIL images, each returned as two independently augmented views."""

    def __init__(self, images: np.ndarray, transform, length: int) -> None:
        from PIL import Image

        self.images = [Image.fromarray(a) for a in images]  # (H, W, 3) uint8 each
        self.transform = transform
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        img = self.images[index % len(self.images)]
        return self.transform(img), self.transform(img)


def pil_transform(size: int = 32):
    """The per-sample torchvision (v2) SimCLR-style pipeline used as the reference."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomResizedCrop(size),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            v2.RandomGrayscale(0.2),
            v2.RandomApply([v2.GaussianBlur(3)], p=0.5),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def pil_loader(batch_size: int, size: int, workers: int, length: int, prefetch: int = 2) -> torch.utils.data.DataLoader:
    """Two-view batches from the per-sample PIL reference pipeline in ``workers`` DataLoader processes."""
    images = _random_uint8_images(POOL, size).permute(0, 2, 3, 1).contiguous().numpy()
    dataset = _PILTwoViews(images, pil_transform(size), length=length)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        prefetch_factor=prefetch if workers > 0 else None,
        persistent_workers=False,
        drop_last=True,
    )


def measure_pil_pipeline(batch_size: int = 128, size: int = 32, workers: int = 2, seconds: float = 3.0) -> float:
    """Images/s of the per-sample PIL pipeline in a DataLoader with ``workers`` processes.

    Warm-up: worker start-up plus ``2 * workers * prefetch_factor`` batches, so that the batches
    prefetched during start-up are consumed before the clock starts; then timed for ``seconds``.
    """
    batches_needed = int(seconds * 4000 / batch_size) + 64  # generous: never run out
    prefetch = 2
    it = iter(pil_loader(batch_size, size, workers, batches_needed * batch_size, prefetch))
    try:
        for _ in range(2 * max(workers, 1) * prefetch):
            next(it)
        done = 0
        t0 = time.perf_counter()
        while True:
            next(it)
            done += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return done * batch_size / elapsed
    finally:
        del it


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per pipeline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="device of the batched pipeline (cpu, cuda)")
    parser.add_argument("--skip-pil", action="store_true", help="only measure the batched pipeline")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"batch {args.batch_size}, 3x{args.size}x{args.size}, {args.seconds:g} s per pipeline, "
        f"load average {load:.2f} (other processes on the CPUs distort both figures)"
    )
    figures: dict = {
        "batch_size": args.batch_size,
        "size": args.size,
        "views_per_image": 2,
        "threads": args.threads,
        "workers": args.workers,
        "seconds": args.seconds,
        "device": args.device,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_before": load,
    }
    batched = measure_view_pipeline(args.batch_size, args.size, args.seconds, device=args.device)
    figures["batched_images_per_s"] = batched
    print(f"batched ImageViews ({args.device}, SimCLR, 2 global views):    {batched:10,.0f} images/s")
    if not args.skip_pil:
        pil = measure_pil_pipeline(args.batch_size, args.size, args.workers, args.seconds)
        figures["pil_images_per_s"] = pil
        figures["speedup"] = batched / pil
        print(f"per-sample PIL transforms ({args.workers} DataLoader workers):       {pil:10,.0f} images/s")
        print(f"speed-up (batched / PIL):                                {batched / pil:10.1f}x")
    figures["load_average_after"] = os.getloadavg()[0]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.out}")
    return figures


if __name__ == "__main__":
    main()
