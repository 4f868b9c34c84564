"""Throughput of the view pipeline and of a full SimCLR training step (issue: foundation).

Prints, for this machine:
  (a) images/s of the batched view pipeline alone (2 views per image) vs a per-sample PIL pipeline
      in 2 DataLoader workers (the reference the issue names),
  (b) images/s of a full SimCLR training step (views + forward + backward + AdamW step) with a
      ResNet-18 (CIFAR stem), 32x32 inputs, batch 128, vs the same step fed by the PIL pipeline,
  (c) the step's achieved FLOP/s as a fraction of a measured float32 matmul peak on the same machine.

Usage: python benchmarks/throughput.py [--threads 2] [--seconds 10] [--device cpu|cuda] [--precision 32|bf16]
       [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from selfsup.encoders import build_encoder
from selfsup.encoders.image import image_encoder_config
from selfsup.methods import build_method
from selfsup.modalities.image_views import ImageViews
from views_throughput import measure_pil_pipeline, measure_view_pipeline, pil_loader

BATCH, SIZE = 128, 32


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float) -> float:
    """Measured FLOP/s of a large square matmul: the practical peak to compare the step against."""
    n = 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start)


def simclr_step(device: torch.device, precision: str):
    """One SimCLR training step on a raw batch, and the model it trains."""
    config = image_encoder_config("resnet18", 3, SIZE, [0.5] * 3, [0.25] * 3)
    method = build_method("simclr", build_encoder(config)).to(device).to(memory_format=torch.channels_last)
    views = ImageViews(method.views, SIZE, 3).to(device)
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(x: torch.Tensor, pre_made_views: list[torch.Tensor] | None = None) -> None:
        with torch.no_grad():
            v = pre_made_views if pre_made_views is not None else views(x)
        v = [t.contiguous(memory_format=torch.channels_last) for t in v]
        with autocast:
            loss = method.training_loss(v).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_steps(step, batches, device: torch.device, seconds: float) -> float:
    """images/s of ``step`` over ``batches`` (an iterator of (x, views-or-None)), after warm-up."""
    for _ in range(2):
        step(*next(batches))
    _sync(device)
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x, v = next(batches)
        step(x, v)
        images += BATCH
    _sync(device)
    return images / (time.perf_counter() - start)


def step_flops(step, device: torch.device) -> int:
    x = torch.rand(BATCH, 3, SIZE, SIZE, device=device)
    with FlopCounterMode(display=False) as counter:
        step(x)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--skip-pil", action="store_true", help="skip the PIL reference pipelines")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results: dict[str, float | str | int] = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({os.cpu_count()} cores, {args.threads} threads)",
        "precision": args.precision,
        "batch": BATCH,
        "size": SIZE,
    }

    results["views_images_per_s"] = measure_view_pipeline(BATCH, SIZE, seconds=args.seconds, device=args.device)
    print(f"(a) batched view pipeline: {results['views_images_per_s']:,.0f} images/s (2 views each)")
    if not args.skip_pil:
        results["pil_views_images_per_s"] = measure_pil_pipeline(BATCH, SIZE, workers=2, seconds=args.seconds)
        print(
            f"    per-sample PIL pipeline, 2 workers: {results['pil_views_images_per_s']:,.0f} images/s "
            f"-> {results['views_images_per_s'] / results['pil_views_images_per_s']:.1f}x"
        )

    step = simclr_step(device, args.precision)

    def raw_batches():
        while True:
            yield torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8).to(device).float() / 255, None

    results["step_images_per_s"] = time_steps(step, raw_batches(), device, args.seconds)
    print(
        f"(b) SimCLR step, ResNet-18 CIFAR stem, batch {BATCH}, {SIZE}px, batched views: "
        f"{results['step_images_per_s']:,.1f} images/s"
    )
    if not args.skip_pil:

        def pil_batches():
            for view1, view2 in pil_loader(BATCH, SIZE, workers=2, length=10**6):
                yield None, [view1.to(device), view2.to(device)]

        results["pil_step_images_per_s"] = time_steps(step, pil_batches(), device, args.seconds)
        print(f"    same step fed by the PIL pipeline: {results['pil_step_images_per_s']:,.1f} images/s")

    flops = step_flops(step, device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak(device, dtype, seconds=min(args.seconds, 5.0))
    achieved = flops * results["step_images_per_s"] / BATCH
    results.update(
        step_gflop=flops / 1e9,
        matmul_peak_gflops=peak / 1e9,
        achieved_gflops=achieved / 1e9,
        fraction_of_peak=achieved / peak,
    )
    print(
        f"(c) step = {flops / 1e9:.1f} GFLOP; achieved {achieved / 1e9:,.1f} GFLOP/s of a measured "
        f"{str(dtype).split('.')[-1]} matmul peak of {peak / 1e9:,.1f} GFLOP/s = {achieved / peak:.0%}"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
