"""``selfsup embed`` of an image folder read lazily vs into memory (issue 17, evaluation at scale): peak memory and
wall time as the folder grows, embeddings written to a folder of Parquet shards block by block.

Folders of 5,000 and 20,000 JPEGs (the built-in digits, cycled, upscaled to 64 px, quality 90; 10 class folders),
read at 64 px and embedded on the CPU by an untrained small_cnn (seed 0, batch 512). Each run is a fresh
``selfsup embed`` process; its memory is the peak over the run of the summed PSS (proportional set size: shared pages
split between the processes that share them) of the process and its DataLoader workers, polled every 0.1 s. The
process's own peak RSS is exact (the kernel's high-water mark, from wait4); the two modes' embeddings are checked
equal.

Usage: nice -n 10 python benchmarks/embed_scale.py [--sizes 5000 20000]
Prints the figures; writes benchmarks/results/embed_scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch
from PIL import Image

from selfsup.checkpoint import save_encoder
from selfsup.data import Preprocessing
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.encoders.image import image_encoder_config


def _folder(root: Path, n: int) -> Path:
    data = load_builtin("digits").train
    x, y = data.x.numpy(), data.y.numpy()
    for i in range(n):
        j = i % len(x)
        folder = root / str(int(y[j]))
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(x[j, 0]).resize((64, 64), Image.Resampling.BILINEAR).convert("RGB")
        picture.save(folder / f"{i:06d}.jpg", quality=90)
    return root


def _pss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_full_info().pss
    return total


def _run(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak summed PSS (MiB, polled) of the process and its workers, and the process's own peak RSS
    (MiB, exact: the kernel's high-water mark, from wait4)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process, peak = psutil.Process(child.pid), 0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(psutil.NoSuchProcess):
            peak = max(peak, _pss(process))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(child.stderr.read().decode() if child.stderr else "embed failed")
    return seconds, peak / 2**20, usage.ru_maxrss / 2**10  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "embed_scale.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        encoder = build_encoder(image_encoder_config("small_cnn", 3, 64, [0.3] * 3, [0.4] * 3))
        encoder.preprocessing = Preprocessing("image", {"image_size": 64})
        export = save_encoder(encoder, Path(tmp) / "encoder")
        for n in args.sizes:
            folder = _folder(Path(tmp) / f"jpegs{n}", n)
            frames = {}
            for mode in ("yes", "no"):
                out = Path(tmp) / f"emb-{n}-{mode}"
                argv = [sys.executable, "-m", "selfsup", "embed", "--encoder", str(export), "--data", str(folder)]
                argv += ["--out", str(out), "--in-memory", mode, "--accelerator", "cpu"]
                seconds, peak, own = _run(argv)
                frames[mode] = pd.read_parquet(out)
                parts = len(list(out.glob("part-*.parquet")))
                rows.append(
                    {
                        "images": n,
                        "in_memory": mode,
                        "seconds": seconds,
                        "peak_pss_mib": peak,
                        "peak_rss_mib": own,
                        "parts": parts,
                    }
                )
            same = frames["yes"]["id"].equals(frames["no"]["id"]) and np.allclose(
                frames["yes"].filter(regex=r"^e\d+$").to_numpy(), frames["no"].filter(regex=r"^e\d+$").to_numpy()
            )
            assert same, f"lazy and in-memory embeddings differ at {n} images"
    print("selfsup embed, JPEG folder read at 64 px, untrained small_cnn on the CPU, Parquet shards")
    print("| images | --in-memory | seconds | peak RSS MiB (process) | peak PSS MiB (process + workers) | shards |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['images']:,} | {r['in_memory']} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {r['peak_pss_mib']:.0f} "
            f"| {r['parts']} |"
        )
    print("lazy and in-memory embeddings: equal (ids, values)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "equal_embeddings": True}, indent=1))


if __name__ == "__main__":
    main()
