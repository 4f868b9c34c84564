"""Compare encoders under identical splits and seeds, with paired statistics.

Every encoder (and always a random-init copy of the first, and the raw input unless the data is read lazily) is
probed on the same test samples; each pair is compared sample by sample:

- the accuracy difference with a 95% **paired bootstrap** interval (the same resampled test samples
  for both, so the shared difficulty of a sample cancels);
- an exact **McNemar test** on the samples one got right and the other wrong.

Every pair of a protocol is tested (the encoders, random-init and raw input: at least 3 pairs), so the
p-values of a protocol are corrected for multiple comparisons by Holm's step-down method (Holm 1979),
which controls the family-wise error rate at 5% under any dependence between the tests. "A beats B" is
written only when both agree: the Holm-adjusted p is below 0.05 and the 95% interval of A − B excludes
zero on A's side. The interval itself is not adjusted (it is each pair's own 95% interval).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest, ttest_1samp

from selfsup.checkpoint import load_encoder, versions
from selfsup.data import ArrayDataset, DataOptions, Splits
from selfsup.encoders import Encoder, build_encoder, preprocessing_of
from selfsup.errors import SelfsupError
from selfsup.evaluation.embed import embed
from selfsup.evaluation.evaluate import labeled_samples
from selfsup.evaluation.html import simple_page
from selfsup.evaluation.protocols import RAW_INPUT, predict
from selfsup.evaluation.stats import seed_interval
from selfsup.files import write_atomic
from selfsup.modalities import check_fits, get_modality
from selfsup.outputs import COMPARISON, clear_output_folder
from selfsup.sources import load_data

COMPARE_PROTOCOLS = ("knn", "linear", "mlp")


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """``(accuracy A - accuracy B, low, high)``: 95% percentile interval over resampled test samples.

    ``correct_a``/``correct_b`` are 0/1 per test sample, or the share of seeds that got it right."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired correctness vectors must be 1-D, non-empty and of equal length")
    rng = np.random.default_rng(seed)
    chunk = max(1, 10_000_000 // len(a))  # resamples at a time: memory stays ~100 MB on any test set
    diffs = np.concatenate(
        [
            (a[idx] - b[idx]).mean(axis=1)
            for idx in (
                rng.integers(0, len(a), size=(min(chunk, n_resamples - start), len(a)))
                for start in range(0, n_resamples, chunk)
            )
        ]
    )
    low, high = np.quantile(diffs, [0.025, 0.975])
    return float((a - b).mean()), float(low), float(high)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value: a binomial test on the discordant samples (1.0 when there are none)."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


ALPHA = 0.05


def holm(p_values: list[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input order: the i-th smallest of m (from 0) times
    ``m - i``, never below an earlier (smaller) one's, at most 1. Rejecting where adjusted p < alpha controls
    the family-wise error rate at alpha."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(name_a: str, name_b: str, low: float, high: float, p_adjusted: float) -> str:
    """Who beats whom: only when the (Holm-adjusted) p is below ``ALPHA`` and the interval excludes zero."""
    if p_adjusted < ALPHA and low > 0:
        return f"{name_a} beats {name_b}"
    if p_adjusted < ALPHA and high < 0:
        return f"{name_b} beats {name_a}"
    return "no difference shown"


def judge(pairs: list[dict]) -> list[dict]:
    """``pairs`` with ``p_holm`` (Holm over the pairs of the same protocol), ``holm_m`` (how many) and ``verdict``."""
    judged = [dict(pair) for pair in pairs]
    for protocol in dict.fromkeys(pair["protocol"] for pair in judged):
        family = [pair for pair in judged if pair["protocol"] == protocol]
        for pair, adjusted in zip(family, holm([p_value(pair) for pair in family]), strict=True):
            pair["p_holm"], pair["holm_m"] = adjusted, len(family)
            pair["verdict"] = verdict(pair["a"], pair["b"], pair["ci_low"], pair["ci_high"], adjusted)
    return judged


def _load(
    encoders: list[str] | list[tuple[str, Encoder]], data: str, options: DataOptions | None
) -> list[tuple[str, Encoder, Splits]]:
    """Each encoder (a path, or a name and an encoder in memory) with ``data`` read its way (a table with its
    schema), checked to fit it; loaded once."""
    loaded = []
    for item in encoders:
        name, encoder = item if isinstance(item, tuple) else (str(item), load_encoder(item))
        splits = load_data(data, options, preprocessing=preprocessing_of(encoder))
        check_fits(encoder, splits)
        loaded.append((name, encoder, splits))
    return loaded


def _correctness(
    loaded: list[tuple[str, Encoder, Splits]],
    data: str,
    options: DataOptions | None,
    protocols: tuple[str, ...],
    k: int | str,
    seed: int,
    test_fraction: float,
    cache: dict,
) -> tuple[dict[tuple[str, str], np.ndarray], str, list[str]]:
    """Per (encoder, protocol), which test samples it got right at ``seed``; the split note; the test ids.

    ``cache`` keeps each encoder's embeddings by split, so seeds that share a split embed it once.
    """
    features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    baselines: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # of the first encoder, listed after the encoders
    labels: tuple[np.ndarray, np.ndarray, str, list[str]] | None = None
    for i, (path, encoder, splits) in enumerate(loaded):
        train, test, split_note = labeled_samples(splits, None, options, preprocessing_of(encoder), seed, test_fraction)
        if labels is None:
            labels = (train.y.numpy(), test.y.numpy(), split_note, [str(s) for s in test.ids])
        elif [str(s) for s in test.ids] != labels[3]:
            raise SelfsupError(
                f"'{path}' reads '{data}' into another test split than '{loaded[0][0]}'; "
                "compare encoders that read the data the same way."
            )
        x_train, x_test = train, test  # embedded a block at a time (lazily read: decoded by workers)
        key = (path, tuple(train.ids), tuple(test.ids))
        if key not in cache:
            cache[key] = (embed(encoder, x_train), embed(encoder, x_test))
        features[path] = cache[key]
        if i == 0:
            torch.manual_seed(seed)
            random_init = build_encoder(encoder.config).eval()
            baselines["random-init"] = (embed(random_init, x_train), embed(random_init, x_test))
            raw = get_modality(splits.modality).raw_features
            if isinstance(train, ArrayDataset) and isinstance(test, ArrayDataset):  # not on lazily read data
                baselines[RAW_INPUT] = (raw(train.x, encoder.config), raw(test.x, encoder.config))
    features |= baselines
    assert labels is not None  # compare refuses an empty list of encoders
    train_y, test_y, split_note, _ = labels
    correct = {}
    for protocol in protocols:
        for name, (train_emb, test_emb) in features.items():
            pred, _ = predict(protocol, train_emb, train_y, test_emb, k=k, seed=seed, raw=name == RAW_INPUT)
            correct[name, protocol] = pred == test_y
    return correct, split_note, labels[3]


def compare(
    encoders: list[str] | list[tuple[str, Encoder]],
    data: str,
    *,
    options: DataOptions | None = None,
    protocols: tuple[str, ...] = ("knn", "linear"),
    k: int | str = "cv",
    seed: int = 0,
    seeds: int = 1,
    test_fraction: float = 0.25,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> dict:
    """Probe every encoder (a path, or a name and an encoder in memory) on the same split; return per-encoder
    accuracies and every pairwise comparison.

    With one seed the difference gets a paired bootstrap interval over test samples and McNemar's test;
    with several (seeds ``seed .. seed + seeds - 1``: the split where the data has none, random-init,
    probes) and a split that changes with the seed, each seed's difference is computed on its shared
    split and the interval is Student's t over seeds, with a paired t-test. When every seed scores the
    same test samples, those samples are resampled instead (each scored as the share of seeds that got
    it right), so the interval covers test-sampling uncertainty; p is a paired t-test over samples.
    Each pair keeps its raw p and gets ``p_holm``, Holm-adjusted over the ``holm_m`` pairs of its protocol;
    its verdict needs ``p_holm`` < 0.05 and an interval that excludes zero (``verdict``).
    The report goes to ``out`` when given; ``overwrite`` first removes an earlier comparison's files there.
    """
    for name in protocols:
        if name not in COMPARE_PROTOCOLS:
            raise SelfsupError(f"compare supports the protocols {', '.join(COMPARE_PROTOCOLS)}; got '{name}'.")
    names = [item[0] if isinstance(item, tuple) else str(item) for item in encoders]
    if len(set(names)) != len(names) or not encoders:
        raise SelfsupError("give compare one or more different encoders.")
    if seeds < 1:
        raise SelfsupError(f"--seeds must be at least 1, got {seeds}.")
    loaded = _load(encoders, data, options)
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    runs = [
        _correctness(loaded, data, options, protocols, k, s, test_fraction, cache) for s in range(seed, seed + seeds)
    ]
    names = list(dict.fromkeys(name for name, _ in runs[0][0]))
    fixed_split = all(run[2] == runs[0][2] for run in runs)
    accuracies = [
        {
            "encoder": name,
            "protocol": protocol,
            "accuracy": float(np.mean([run[0][name, protocol].mean() for run in runs])),
        }
        for protocol in protocols
        for name in names
    ]
    pairs = []
    for protocol in protocols:
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if seeds == 1:
                    correct = runs[0][0]
                    diff, low, high = paired_bootstrap(correct[a, protocol], correct[b, protocol], seed=seed)
                    test: dict[str, Any] = {"mcnemar_p": mcnemar(correct[a, protocol], correct[b, protocol])}
                elif fixed_split:  # the same test samples every seed: resample them, each scored over the seeds
                    share_a = np.mean([run[0][a, protocol] for run in runs], axis=0)
                    share_b = np.mean([run[0][b, protocol] for run in runs], axis=0)
                    diff, low, high = paired_bootstrap(share_a, share_b, seed=seed)
                    test = {
                        "paired_t_p": _one_sample_t_p(list(share_a - share_b)),
                        "per_seed": [float(run[0][a, protocol].mean() - run[0][b, protocol].mean()) for run in runs],
                    }
                else:
                    per_seed = [float(run[0][a, protocol].mean() - run[0][b, protocol].mean()) for run in runs]
                    diff, low, high = seed_interval(per_seed)
                    test = {"paired_t_p": _one_sample_t_p(per_seed), "per_seed": per_seed}
                pairs.append(
                    {
                        "protocol": protocol,
                        "a": a,
                        "b": b,
                        "difference": diff,
                        "ci_low": low,
                        "ci_high": high,
                        **test,
                    }
                )
    pairs = judge(pairs)
    split = runs[0][1] if seeds == 1 else runs[0][1].replace(f"seed {seed}", f"seeds {seed}-{seed + seeds - 1}")
    result = {
        "data": data,
        "split": split,
        "seed": seed,
        "seeds": seeds,
        "n_test": len(runs[0][2]),
        "fixed_split": fixed_split,
        "accuracies": accuracies,
        "pairs": pairs,
    }
    if out is not None:
        if overwrite:
            clear_output_folder(out, COMPARISON)
        _write(Path(out), result)
    return result


def _one_sample_t_p(values: list[float]) -> float:
    """Two-sided p of a paired t-test of the differences against zero; 1.0 when they do not vary (no test)."""
    array = np.asarray(values, dtype=float)
    if np.ptp(array) == 0:
        return 1.0
    return float(ttest_1samp(array, 0.0).pvalue)


def p_value(pair: dict) -> float:
    """McNemar's p (one seed) or the paired t-test's (several), before the Holm correction."""
    return pair["mcnemar_p"] if "mcnemar_p" in pair else pair["paired_t_p"]


def holm_note(result: dict) -> str:
    """How the p-values were corrected, e.g. "Holm-corrected over 3 comparisons per protocol"."""
    sizes = sorted({p["holm_m"] for p in result["pairs"]})
    return f"Holm-corrected over {' or '.join(map(str, sizes))} comparisons per protocol"


def _write(out: Path, result: dict) -> None:
    one = result["seeds"] == 1
    how = (
        "95% paired bootstrap interval over test samples; p: exact McNemar test"
        if one
        else f"95% paired bootstrap interval over test samples, each scored as the share of {result['seeds']} seeds "
        "that got it right (the split is the same for every seed); p: paired t-test over samples"
        if result["fixed_split"]
        else f"95% Student-t interval over {result['seeds']} seeds of the per-seed difference; p: paired t-test"
    )
    how += f"; p (Holm): {holm_note(result)}"
    rule = f'"A beats B" only when the Holm-adjusted p < {ALPHA} and the interval excludes zero.'
    lines = [
        "# Paired comparison",
        "",
        f"- data: {result['data']}; split: {result['split']}",
        f"- difference: accuracy A − B in points, {how}. {rule}",
        "",
        "| protocol | A | B | A − B | 95% CI | p | p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p['protocol']} | {p['a']} | {p['b']} | {100 * p['difference']:+.2f} | "
        f"[{100 * p['ci_low']:+.2f}, {100 * p['ci_high']:+.2f}] | {p_value(p):.3g} | {p['p_holm']:.3g} | "
        f"{p['verdict']} |"
        for p in result["pairs"]
    ]
    pairs = [
        [
            p["protocol"],
            p["a"],
            p["b"],
            f"{100 * p['difference']:+.2f}",
            f"[{100 * p['ci_low']:+.2f}, {100 * p['ci_high']:+.2f}]",
            f"{p_value(p):.3g}",
            f"{p['p_holm']:.3g}",
            p["verdict"],
        ]
        for p in result["pairs"]
    ]
    accuracies = [[a["encoder"], a["protocol"], f"{100 * a['accuracy']:.2f}%"] for a in result["accuracies"]]
    page = simple_page(
        "Paired comparison",
        [
            ("data", result["data"]),
            ("split", result["split"]),
            ("seeds", str(result["seeds"])),
            ("difference", how),
            ("verdict", rule),
        ],
        [
            ("Accuracy (mean over seeds)", ["encoder", "protocol", "accuracy"], accuracies),
            ("Pairs", ["protocol", "A", "B", "A − B", "95% CI", "p", "p (Holm)", "verdict"], pairs),
        ],
        versions(),
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("compare.md", "\n".join(lines) + "\n"),
        ("compare.json", json.dumps(result, indent=1)),
        ("report.html", page),
    ):
        write_atomic(out / name, text)
