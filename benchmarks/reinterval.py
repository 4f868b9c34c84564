"""Recompute the stored accuracy intervals of benchmark results as Wilson score intervals (issue 20), no re-training.

The stored single-run intervals were percentile bootstraps over the test samples: zero-width ([100, 100])
whenever a run got every test sample right. For every row of a results JSON that holds an accuracy and its
number of test samples (``n_test``):

- one run: Wilson's 95% interval for k = round(accuracy * n_test) correct of n_test (``stats.wilson_interval``);
  a row whose accuracy * n_test is not a whole number is refused (it is not a single run's accuracy);
- a mean over seeds (``per_seed``, as ``selfsup bench``'s leaderboard writes it) on the dataset's own split,
  which every seed scores: Student t over the seeds with each seed's Wilson interval in quadrature, each side
  on its own (``stats.over_seeds``), as the leaderboard computes it now;
- a mean over seeds on splits that change with the seed (Student t alone) is left as it is, and so are k-shot
  rows (an interval over episodes).

``weight_decay.json``'s comparison with the previous figures is re-derived from its recomputed rows, and the
``meta`` of a leaderboard says which interval it holds. Stored ``selfsup compare`` results (a ``pairs`` list)
get their p-values Holm-corrected per protocol and their verdicts re-judged (``compare.judge``). Rows with an accuracy interval but no ``n_test``
cannot be recomputed: they are listed and left as they are. Each file is rewritten atomically, only if it changed.

Usage: python benchmarks/reinterval.py [FILE.json ...]   (default: every benchmarks/results/*.json)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from selfsup.evaluation.compare import judge
from selfsup.evaluation.stats import over_seeds, wilson_interval
from selfsup.files import write_atomic

RESULTS = Path(__file__).parent / "results"
INTERVAL_NOTE = (
    "95% Student-t interval of the mean over {seeds} seeds, combined in quadrature with each seed's Wilson score "
    "interval over the test samples, each side on its own (each dataset's test split is the same for every seed)"
)
RECOMPUTED = "intervals recomputed as Wilson score intervals, no re-training (benchmarks/reinterval.py, issue 20)"


def correct_count(accuracy: float, n_test: int) -> int:
    """k with k / n_test == accuracy; refuses an accuracy that is not a count of test samples."""
    k = round(accuracy * n_test)
    if abs(k - accuracy * n_test) > 1e-6 * max(1, n_test):
        raise ValueError(f"accuracy {accuracy} is not a whole number of {n_test} test samples")
    return k


def wilson_of(accuracy: float, n_test: int) -> tuple[float, float]:
    return wilson_interval(correct_count(accuracy, n_test), n_test)


def recompute_row(row: dict) -> str:
    """Recompute ``row``'s interval in place; returns what was done: "single", "seeds", "kept" or "no n_test"."""
    if str(row.get("protocol", "")).endswith("-shot"):
        return "kept"
    if "n_test" not in row:
        return "no n_test"
    n_test = int(row["n_test"])
    if "per_seed" not in row:
        row["ci_low"], row["ci_high"] = wilson_of(row["accuracy"], n_test)
        return "single"
    if "own train/test split" not in str(row.get("details", {}).get("split", "")):
        return "kept"  # seeds on different splits: the t-interval over seeds alone
    summary = over_seeds(row["per_seed"], [wilson_of(a, n_test) for a in row["per_seed"]])
    if abs(summary["accuracy"] - row["accuracy"]) > 1e-12:
        raise ValueError(f"the mean of per_seed {row['per_seed']} is not the stored accuracy {row['accuracy']}")
    row["ci_low"], row["ci_high"] = summary["ci_low"], summary["ci_high"]
    return "seeds"


def rows_of(data: object, path: str = "") -> list[tuple[str, dict]]:
    """Every dict under ``data`` that holds an accuracy interval, with its JSON path."""
    found = []
    if isinstance(data, dict):
        if {"accuracy", "ci_low", "ci_high"} <= data.keys():
            found.append((path, data))
        for key, value in data.items():
            found += rows_of(value, f"{path}.{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += rows_of(value, f"{path}[{i}]")
    return found


def comparisons_of(data: object) -> list[dict]:
    """Every stored ``selfsup compare`` result under ``data``: a dict whose ``pairs`` carry verdicts."""
    found = []
    if isinstance(data, dict):
        pairs = data.get("pairs")
        if isinstance(pairs, list) and pairs and all(isinstance(p, dict) and "verdict" in p for p in pairs):
            found.append(data)
        for value in data.values():
            found += comparisons_of(value)
    elif isinstance(data, list):
        for value in data:
            found += comparisons_of(value)
    return found


def zero_width(data: object) -> int:
    return sum(row["ci_high"] - row["ci_low"] <= 1e-12 for _, row in rows_of(data))


def _weight_decay_comparison(data: dict) -> None:
    """The comparison's intervals and in-interval flags, from the recomputed rows and previous rows."""
    for c in data["comparison"]:
        new = next(
            r
            for r in data["rows"]
            if (r["group"], r["encoder"], r["protocol"], r.get("variant"))
            == (c["dataset"], c["method"], c["protocol"], c["variant"])
        )
        old = next(
            r
            for r in data["previous_rows"]
            if (r["group"], r["encoder"], r["protocol"]) == (c["dataset"], c["method"], c["protocol"])
        )
        if (new["accuracy"], old["accuracy"]) != (c["accuracy"], c["previous"]):
            raise ValueError(
                f"weight_decay.json: the comparison of {c['dataset']} {c['variant']} does not match its rows"
            )
        c["ci_low"], c["ci_high"], c["previous_ci"] = new["ci_low"], new["ci_high"], [old["ci_low"], old["ci_high"]]
        c["within_previous_interval"] = old["ci_low"] <= new["accuracy"] <= old["ci_high"]
        c["previous_within_interval"] = new["ci_low"] <= old["accuracy"] <= new["ci_high"]


def reinterval(path: Path) -> dict:
    """Recompute one file (written only if it changed); returns counts of what was done."""
    raw = path.read_text()
    data = json.loads(raw)
    before = zero_width(data)
    done: dict[str, list[str]] = {}
    for where, row in rows_of(data):
        if "previous_ci" in row:  # weight_decay.json's comparison: derived from the rows below
            continue
        done.setdefault(recompute_row(row), []).append(where)
    if "comparison" in data and "previous_rows" in data:
        _weight_decay_comparison(data)
    flipped = pairs = 0
    for result in comparisons_of(data):
        judged = judge(result["pairs"])
        flipped += sum(old["verdict"] != new["verdict"] for old, new in zip(result["pairs"], judged, strict=True))
        pairs += len(judged)
        result["pairs"] = judged
    meta = data.get("meta") if isinstance(data, dict) else None
    if meta is not None and "confidence_interval" in meta and "seeds" in meta and done.get("seeds"):
        meta["confidence_interval"] = INTERVAL_NOTE.format(seeds=meta["seeds"])
        if RECOMPUTED not in meta.get("note", ""):
            meta["note"] = f"{meta['note']}; {RECOMPUTED}" if meta.get("note") else RECOMPUTED
    text = json.dumps(data, indent=1) + ("\n" if raw.endswith("\n") else "")
    if text != raw:
        write_atomic(path, text)
    return {
        "zero_width_before": before,
        "zero_width_after": zero_width(data),
        **{what: len(rows) for what, rows in done.items()},
        **({"pairs": pairs, "verdicts_changed": flipped} if pairs else {}),
        "no_n_test_rows": done.get("no n_test", []),
        "changed": text != raw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    for path in args.files or sorted(RESULTS.glob("*.json")):
        result = reinterval(path)
        missing = result.pop("no_n_test_rows")
        print(f"{path.name}: {json.dumps(result)}")
        if missing:
            print(f"  not recomputable (no n_test stored), left as they are: {len(missing)} rows, e.g. {missing[0]}")


if __name__ == "__main__":
    main()
