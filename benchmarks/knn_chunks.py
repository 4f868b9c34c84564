"""kNN in blocks of queries (issue 17, evaluation at scale): time and peak memory of ``knn_predict`` with the
default block (``CHUNK_ENTRIES`` similarities) against one (queries x bank) similarity matrix.

Synthetic embeddings: a bank of 100,000 and queries drawn around 100 Gaussian class centres in 128 dimensions (noise sd 4)
(seed 0), k=20, T=0.07 (Wu et al. 2018's weighted vote). One matrix for 10,000 queries would hold 10,000 x 100,000
similarities (4 GB in float32, plus argpartition's negated copy, 4 GB, and its int64 indices, 8 GB): more than this
shared 23 GB machine can spare, so it is measured on 1,000 queries; the blocked version on both. Peak memory is
tracemalloc's peak of the allocations during the call (NumPy reports its buffers to it), the inputs excluded.
faiss is not installed here, so it is not measured.

Usage: nice -n 10 python benchmarks/knn_chunks.py [--bank 100000] [--queries 10000] [--dim 128]
Prints the figures; writes benchmarks/results/knn_chunks.json.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from selfsup.evaluation.knn import CHUNK_ENTRIES, knn_predict


def _data(n: int, dim: int, classes: int, rng: np.random.Generator, centres: np.ndarray):
    y = rng.integers(0, classes, size=n)
    return (centres[y] + rng.normal(scale=4.0, size=(n, dim))).astype(np.float32), y


def _measure(bank, y, queries, entries: int) -> tuple[np.ndarray, float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    pred = knn_predict(bank, y, queries, k=20, chunk_entries=entries)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return pred, seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bank", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--small-queries", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "knn_chunks.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, args.dim)).astype(np.float32)
    bank, y = _data(args.bank, args.dim, 100, rng, centres)
    queries, truth = _data(args.queries, args.dim, 100, rng, centres)
    rows = []
    small = queries[: args.small_queries]
    one, one_s, one_mb = _measure(bank, y, small, 1 << 62)
    blocked, blocked_s, blocked_mb = _measure(bank, y, small, CHUNK_ENTRIES)
    assert np.array_equal(one, blocked), "blocked kNN differs from one matrix"
    for how, seconds, mb, pred in (("one matrix", one_s, one_mb, one), ("blocks", blocked_s, blocked_mb, blocked)):
        acc = float((pred == truth[: len(small)]).mean())
        rows.append(
            {"queries": len(small), "bank": args.bank, "how": how, "seconds": seconds, "peak_mib": mb, "accuracy": acc}
        )
    pred, seconds, mb = _measure(bank, y, queries, CHUNK_ENTRIES)
    rows.append(
        {
            "queries": args.queries,
            "bank": args.bank,
            "how": "blocks",
            "seconds": seconds,
            "peak_mib": mb,
            "accuracy": float((pred == truth).mean()),
        }
    )
    one_matrix_mib = args.queries * args.bank * (4 + 4 + 8) / 2**20
    print(f"kNN, k=20, {args.dim} dims, bank {args.bank:,}; blocks of {CHUNK_ENTRIES:,} similarities")
    print("| queries | how | seconds | peak MiB | accuracy |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['queries']:,} | {r['how']} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | {r['accuracy']:.4f} |")
    print(f"one matrix for {args.queries:,} queries: at least {one_matrix_mib:,.0f} MiB (not run)")
    print(f"blocked == one matrix on {len(small):,} queries: identical predictions")
    result = {
        "protocol": "knn_predict k=20 T=0.07, synthetic Gaussian classes (100 centres), seed 0",
        "dim": args.dim,
        "chunk_entries": CHUNK_ENTRIES,
        "rows": rows,
        "one_matrix_min_mib_at_full_queries": one_matrix_mib,
        "identical_predictions_on_small": True,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
