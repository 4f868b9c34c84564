"""Tables and series read lazily (issue 17): reading time, rows/s and peak RSS, in memory vs lazy.

Data: real rows tiled to a larger file. A table: breast cancer's 569 biopsies (30 numbers, a text column binned from
``mean radius``, the ``target`` label) repeated ``--repeat`` times (398,300 rows by default) in a Parquet file with row
groups of ``--group`` rows (10,000; also run 100,000). Series: GunPoint's 50 training series (1 x 150) repeated to
``--series`` series (200,000) in a ``.npy`` file.

Each mode runs in a fresh process (peak RSS: ``ru_maxrss`` of that process, Python and torch included):
* ``memory``: ``load_data(--in-memory yes)``, then one epoch in random order (DataLoader, batch 256, no workers).
* ``lazy``: ``load_data(--in-memory no)`` (indexing: footer, schema sample, label column), then rows in file order
  (a whole epoch), in random order (``--random`` rows: each row whose group is not the last one read costs a group
  read), and (tables) row groups in random order with rows shuffled within each group (a whole epoch); batch 256, no
  workers.

Usage: nice -n 10 python benchmarks/table_lazy.py [--repeat 700] [--group 10000] [--series 200000] [--random 2000]
Prints the figures; writes benchmarks/results/table_lazy.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _table(path: Path, repeat: int, group: int) -> None:
    from sklearn.datasets import load_breast_cancer

    from selfsup.datasets.tables import table_frame

    frame = table_frame(load_breast_cancer)
    frame["size"] = pd.cut(frame["mean radius"], [0, 11, 13, 16, 40], labels=["xs", "s", "m", "l"]).astype(str)
    pd.concat([frame] * repeat, ignore_index=True).to_parquet(path, row_group_size=group)


def _series(path: Path, n: int) -> None:
    from selfsup.datasets import load_builtin

    x = load_builtin("gunpoint").train.x.numpy()
    np.save(path, np.tile(x, (n // len(x), 1, 1)))


def _rate(data, indices: list[int]) -> float:
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data, indices), batch_size=256, num_workers=0)
    start = time.perf_counter()
    rows = sum(len(x) for x, _ in loader)
    return rows / (time.perf_counter() - start)


def _child(path: str, mode: str, label: str | None, random_rows: int) -> dict:
    from selfsup.data import DataOptions
    from selfsup.sources import load_data

    torch.set_num_threads(1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = load_data(path, DataOptions(label=label, in_memory="yes" if mode == "memory" else "no")).train
    result: dict = {"mode": mode, "rows": len(train), "read_s": round(time.perf_counter() - start, 3)}
    order = np.random.default_rng(0).permutation(len(train)).tolist()
    if mode == "memory":
        result["random_rows_per_s"] = round(_rate(train, order))
    else:
        result["in_order_rows_per_s"] = round(_rate(train, list(range(len(train)))))
        result["random_rows_per_s"] = round(_rate(train, order[:random_rows]), 1)
        starts = getattr(getattr(train, "decode", None), "starts", None)
        if starts is not None:  # a table: row groups in random order, rows shuffled within each
            rng = np.random.default_rng(0)
            groups = [rng.permutation(np.arange(starts[g], starts[g + 1])) for g in rng.permutation(len(starts) - 1)]
            result["group_shuffled_rows_per_s"] = round(_rate(train, np.concatenate(groups).tolist()))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def _run(path: Path, mode: str, label: str | None, random_rows: int) -> dict:
    argv = [sys.executable, __file__, "--child", str(path), mode, str(label or ""), str(random_rows)]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3], sys.argv[4] or None, int(sys.argv[5]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=700)
    parser.add_argument("--group", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--series", type=int, default=200_000)
    parser.add_argument("--random", type=int, default=2000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "table_lazy.json"))
    args = parser.parse_args()
    results: dict = {"table": {}, "series": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for group in args.group:
            path = Path(tmp) / f"cancer-{group}.parquet"
            _table(path, args.repeat, group)
            size = path.stat().st_size / 2**20
            runs = [_run(path, mode, "target", args.random) for mode in ("memory", "lazy")]
            results["table"][f"group_{group}"] = {"file_mb": round(size, 1), "runs": runs}
            for run in runs:
                print(f"table, row groups of {group:,} ({size:.0f} MB):", run)
        path = Path(tmp) / "gunpoint.npy"
        _series(path, args.series)
        runs = [_run(path, mode, None, args.random * 10) for mode in ("memory", "lazy")]
        results["series"] = {"file_mb": round(path.stat().st_size / 2**20, 1), "runs": runs}
        for run in runs:
            print("series .npy:", run)
    results["machine"] = "2 shared CPU cores, torch 1 thread, no DataLoader workers"
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
