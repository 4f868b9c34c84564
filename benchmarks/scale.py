"""Data at scale (issue 17): peak memory, time to the first training step and training throughput of an image folder
of 5,000 / 20,000 / 100,000 JPEGs read three ways: decoded into memory first (--in-memory yes), decoded as training
asks for them (--in-memory no), and prepared as LitData shards (selfsup prepare) streamed by LitData's
StreamingDataLoader.

The images are 128 px JPEGs (quality 90, about 5 KB each), random crops (side 64-427 px, random position and flip) of
the two real photos scikit-learn ships (load_sample_images: a temple in China, a flower), written under /tmp and
deleted at the end. Each run is a fresh process: ``selfsup pretrain --method simclr --encoder small_cnn --batch-size
128 --num-workers 2 --no-probe --seed 0`` (images decoded and viewed at --image-size, default 128 px), for 20 steps
at the smallest size (throughput) and 2 steps at the others.

Measured per run:
  peak RSS     the largest resident set of one process of the run (GNU time's %M: the main process or a loader
               worker, whichever peaked higher)
  first step   seconds from starting the process to the end of the first training step (imports and reading
               included)
  throughput   images/s over steps 5..20 (after warm-up), smallest size only, --repeat times each path (the
               paths interleaved: the cores are shared), compared by the median
For shards, the preparation (selfsup prepare, 2 workers) is timed on its own. Runs still to start once --budget
minutes have passed are skipped; a run is stopped when the budget ends (both recorded).

Usage: python benchmarks/scale.py [--sizes 5000,20000,100000] [--paths lazy,shards,memory] [--repeat 3] [--budget 50]
       [--keep] [--out benchmarks/results/scale.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/selfsup_scale_bench")
BATCH, WARMUP, MEASURED = 128, 5, 15  # throughput over steps 5..20: inside the first epoch even at 5,000 images
FIRST_STEPS = 2  # the other sizes: memory and the time to the first step only
PATHS = ("lazy", "shards", "memory")  # in-memory last: at 100,000 images it is the slow one
QUIET = Path("/tmp/quiet")  # while it exists, the others sharing the machine start no timing or tests


# ---- the image folders ----------------------------------------------------------------------------------------------


def _write_images(job: tuple[int, int, str]) -> int:
    """Images ``start..stop`` of the folder: random 128 px crops of scikit-learn's two sample photos, as JPEGs."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    start, stop, folder = job
    photos = load_sample_images().images
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        photo = photos[i % 2]
        side = int(rng.integers(64, min(photo.shape[:2]) + 1))
        top, left = int(rng.integers(0, photo.shape[0] - side + 1)), int(rng.integers(0, photo.shape[1] - side + 1))
        image = Image.fromarray(photo[top : top + side, left : left + side]).resize((128, 128), Image.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        image.save(Path(folder) / f"img_{i:06d}.jpg", quality=90)
    return stop - start


def image_folder(size: int, largest: int) -> Path:
    """A folder of ``size`` images: the first ``size`` of the largest folder's, hard-linked (written once)."""
    full = ROOT / f"images_{largest}"
    if not full.is_dir() or len(list(full.iterdir())) != largest:
        shutil.rmtree(full, ignore_errors=True)
        full.mkdir(parents=True)
        started = time.perf_counter()
        jobs = [(s, min(s + 2000, largest), str(full)) for s in range(0, largest, 2000)]
        with Pool(2) as pool:
            pool.map(_write_images, jobs)
        print(f"wrote {largest:,} JPEGs to {full} in {time.perf_counter() - started:.0f} s", flush=True)
    if size == largest:
        return full
    folder = ROOT / f"images_{size}"
    if not folder.is_dir():
        folder.mkdir()
        for i in range(size):
            os.link(full / f"img_{i:06d}.jpg", folder / f"img_{i:06d}.jpg")
    return folder


# ---- one measured process -----------------------------------------------------------------------------------------


def _child(record: str, argv: list[str]) -> int:
    """Run ``selfsup`` with ``argv`` in this process, recording when training steps end (a callback added to every
    Lightning trainer: instrumentation of the benchmark only)."""
    import lightning.pytorch as pl

    from selfsup.cli import main

    times: dict[int, float] = {}

    class StepClock(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step in (1, WARMUP, WARMUP + MEASURED):
                times[trainer.global_step] = time.time()

    original = pl.Trainer.__init__

    def with_clock(self, *args, **kwargs) -> None:
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), StepClock()]
        original(self, *args, **kwargs)

    pl.Trainer.__init__ = with_clock  # type: ignore[method-assign]
    code = main(argv)
    Path(record).write_text(json.dumps({str(k): v for k, v in times.items()}))
    return code


def measured(argv: list[str], name: str, timeout: float) -> dict:
    """Run ``python scale.py --child`` under GNU time in a fresh process: its peak RSS, wall time and step times."""
    record, rss = ROOT / f"{name}.steps.json", ROOT / f"{name}.time"
    record.unlink(missing_ok=True)
    command = ["/usr/bin/time", "-f", "%e %M", "-o", str(rss), sys.executable, __file__, "--child", str(record), "--"]
    started = time.time()
    try:
        done = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return {"stopped": f"out of time after {time.time() - started:.0f} s"}
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else str(done.returncode)}
    wall, peak_kb = rss.read_text().split()[-2:]
    steps = {int(k): v for k, v in json.loads(record.read_text()).items()} if record.is_file() else {}
    result = {"wall_s": round(float(wall), 1), "peak_rss_mb": round(int(peak_kb) / 1024, 1)}
    if 1 in steps:
        result["first_step_s"] = round(steps[1] - started, 1)
    if WARMUP in steps and WARMUP + MEASURED in steps:
        result["images_per_s"] = round(MEASURED * BATCH / (steps[WARMUP + MEASURED] - steps[WARMUP]), 1)
    return result


def pretrain_argv(data: str, out: Path, steps: int, extra: list[str]) -> list[str]:
    return [
        "pretrain",
        "--data",
        data,
        "--method",
        "simclr",
        "--encoder",
        "small_cnn",
        "--batch-size",
        str(BATCH),
        "--num-workers",
        "2",
        "--no-probe",
        "--max-steps",
        str(steps),
        "--seed",
        "0",
        "--out",
        str(out),
        *extra,
    ]


IMAGE_SIZE = [128]  # --image-size: the decode (and view) size of every run


def run(sizes: list[int], paths: list[str], deadline: float, repeat: int, throughput: bool = True) -> list[dict]:
    rows = []
    for size in sizes:
        folder = image_folder(size, max(sizes))
        steps = WARMUP + MEASURED if size == min(sizes) and throughput else FIRST_STEPS
        for rep, path in [(rep, path) for rep in range(repeat if steps > FIRST_STEPS else 1) for path in paths]:
            row: dict = {"images": size, "path": path, "steps": steps, "rep": rep}
            if time.time() > deadline:
                rows.append(row | {"stopped": "skipped: out of time"})
                continue
            out = ROOT / f"run_{path}_{size}"
            shutil.rmtree(out, ignore_errors=True)
            quiet = steps > FIRST_STEPS and not QUIET.exists()  # timing throughput: ask the others to wait
            if quiet:
                QUIET.touch()
            if path == "shards":
                shards = ROOT / f"shards_{size}"
                shutil.rmtree(shards, ignore_errors=True)
                argv = ["prepare", str(folder), str(shards), "--num-workers", "2", "--image-size", str(IMAGE_SIZE[0])]
                row["prepare"] = measured(argv, f"prepare_{size}", deadline - time.time())
                row["shards_mb"] = round(sum(p.stat().st_size for p in shards.rglob("*") if p.is_file()) / 2**20, 1)
                data, extra = str(shards), []
            else:
                data = str(folder)  # shards hold images at the size they were prepared at
                extra = ["--in-memory", "yes" if path == "memory" else "no", "--image-size", str(IMAGE_SIZE[0])]
            if "wall_s" in row.get("prepare", {"wall_s": 0}):
                row |= measured(pretrain_argv(data, out, steps, extra), f"{path}_{size}", deadline - time.time())
            if quiet:
                QUIET.unlink(missing_ok=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(out, ignore_errors=True)
            if path == "shards":
                shutil.rmtree(ROOT / f"shards_{size}", ignore_errors=True)
    return rows


def _targets(rows: list[dict]) -> dict:
    """The issue's targets, where the figures to judge them were measured."""
    by = {(r["path"], r["images"]): r for r in rows if "peak_rss_mb" in r and r["rep"] == 0}
    sizes = sorted({r["images"] for r in rows})
    small = sizes[0]
    found: dict = {}
    for path in ("lazy", "shards"):
        large = max((size for size in sizes if (path, size) in by), default=small)
        if (path, small) in by and large != small:
            ratio = by[path, large]["peak_rss_mb"] / by[path, small]["peak_rss_mb"]
            found[f"{path}: peak RSS at {large:,} / at {small:,} <= 1.5"] = {
                "ratio": round(ratio, 2),
                "met": ratio <= 1.5,
            }
        if (path, large) in by and "first_step_s" in by[path, large]:
            first = by[path, large]["first_step_s"]
            found[f"{path}: first step at {large:,} <= 30 s"] = {"seconds": first, "met": first <= 30}
    speed = {
        path: [r["images_per_s"] for r in rows if r["path"] == path and r["images"] == small and "images_per_s" in r]
        for path in ("memory", "shards")
    }
    if speed["memory"] and speed["shards"]:
        ratio = float(np.median(speed["shards"]) / np.median(speed["memory"]))
        found[f"shards / in-memory throughput at {small:,} (median of {len(speed['shards'])}) >= 0.9"] = {
            "ratio": round(ratio, 3),
            "images_per_s": speed,
            "met": ratio >= 0.9,
        }
    return found


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2], sys.argv[4:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000,100000")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per path at the smallest size")
    parser.add_argument("--budget", type=float, default=50.0, help="minutes; later runs are skipped")
    parser.add_argument("--keep", action="store_true", help="keep the image folders in /tmp for another run")
    parser.add_argument("--no-throughput", action="store_true", help="first steps only: peak RSS and time to step 1")
    parser.add_argument("--image-size", type=int, default=128, help="decode and view size (default 128, the JPEGs')")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale.json"))
    args = parser.parse_args()
    IMAGE_SIZE[0] = args.image_size
    sizes = [int(s) for s in args.sizes.split(",")]
    paths = [p for p in args.paths.split(",") if p]
    ROOT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        rows = run(sizes, paths, time.time() + 60 * args.budget, args.repeat, not args.no_throughput)
    finally:
        if not args.keep:
            shutil.rmtree(ROOT, ignore_errors=True)
    print(
        f"\n{'images':>8} {'path':<7} {'rep':>3} {'peak RSS MB':>11} {'first step s':>12} {'images/s':>9} {'prepare s':>9}"
    )
    for r in rows:
        prep = r.get("prepare", {}).get("wall_s", "")
        first, speed, peak = r.get("first_step_s", ""), r.get("images_per_s", ""), r.get("peak_rss_mb", "")
        note = r.get("stopped") or r.get("failed") or ""
        print(f"{r['images']:>8,} {r['path']:<7} {r['rep']:>3} {peak:>11} {first:>12} {speed:>9} {prep:>9} {note}")
    targets = _targets(rows)
    for name, verdict in targets.items():
        print(f"{'met' if verdict['met'] else 'NOT met'}: {name} ({verdict})")
    result = {
        "benchmark": "scale",
        "machine": f"{os.cpu_count()} CPU cores (shared), no GPU",
        "protocol": "fresh process per run: selfsup pretrain --method simclr --encoder small_cnn --batch-size 128 "
        f"--num-workers 2 --no-probe --seed 0, --max-steps {WARMUP + MEASURED} at the smallest size (throughput over "
        f"steps {WARMUP}..{WARMUP + MEASURED}), {FIRST_STEPS} at the others; images decoded and viewed at {args.image_size} px; peak "
        "RSS = GNU time %M (largest single process); run with nice -n 10 on shared cores",
        "data": "128 px JPEGs (quality 90): random crops of scikit-learn's two sample photos",
        "rows": rows,
        "targets": targets,
        "seconds": round(time.perf_counter() - started),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
