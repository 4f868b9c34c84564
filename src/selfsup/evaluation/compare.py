"""Compare encoders under identical splits and seeds, with paired statistics.

Every encoder (and always a random-init copy of the first and the raw input) is probed on the same
test samples; each pair is compared sample by sample:

- the accuracy difference with a 95% **paired bootstrap** interval (the same resampled test samples
  for both, so the shared difficulty of a sample cancels);
- an exact **McNemar test** on the samples one got right and the other wrong.

"A beats B" is written only when the interval excludes zero.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from selfsup.checkpoint import load_encoder
from selfsup.data import DataOptions
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.embed import embed
from selfsup.evaluation.evaluate import check_fits, labeled_split
from selfsup.evaluation.protocols import predict
from selfsup.files import write_atomic
from selfsup.modalities import load_data, modality_module

COMPARE_PROTOCOLS = ("knn", "linear", "mlp")


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, n_resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """``(accuracy A - accuracy B, low, high)``: 95% percentile interval over resampled test samples."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired correctness vectors must be 1-D, non-empty and of equal length")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_resamples, len(a)))
    diffs = (a[idx] - b[idx]).mean(axis=1)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return float((a - b).mean()), float(low), float(high)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value: a binomial test on the discordant samples (1.0 when there are none)."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def verdict(name_a: str, name_b: str, low: float, high: float) -> str:
    if low > 0:
        return f"{name_a} beats {name_b}"
    if high < 0:
        return f"{name_b} beats {name_a}"
    return "no difference shown"


def compare(encoders: list[str], data: str, *, options: DataOptions | None = None,
            protocols: tuple[str, ...] = ("knn", "linear"), k: int | str = "cv", seed: int = 0,
            test_fraction: float = 0.25, out: str | Path | None = None) -> dict:
    """Probe every encoder on the same split; return per-encoder accuracies and every pairwise comparison."""
    for name in protocols:
        if name not in COMPARE_PROTOCOLS:
            raise SelfsupError(f"compare supports the protocols {', '.join(COMPARE_PROTOCOLS)}; got '{name}'.")
    if len(set(encoders)) != len(encoders) or not encoders:
        raise SelfsupError("give compare one or more different encoders.")
    features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    baselines: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # of the first encoder, listed after the encoders
    labels = None
    for i, path in enumerate(encoders):
        encoder = load_encoder(path)
        splits = load_data(data, options, encoder_config=encoder.config)
        check_fits(encoder, splits)
        train, test, split_note = labeled_split(splits, None, options, encoder.config, seed, test_fraction)
        if labels is None:
            labels = (train.y.numpy(), test.y.numpy(), split_note, [str(s) for s in test.ids])
        elif [str(s) for s in test.ids] != labels[3]:
            raise SelfsupError(f"'{path}' reads '{data}' into another test split than '{encoders[0]}'; "
                               "compare encoders that read the data the same way.")
        x_train, x_test = train.float_samples(), test.float_samples()
        features[str(path)] = (embed(encoder, x_train), embed(encoder, x_test))
        if i == 0:
            torch.manual_seed(seed)
            random_init = build_encoder(encoder.config).eval()
            baselines["random-init"] = (embed(random_init, x_train), embed(random_init, x_test))
            raw = modality_module(splits.modality).raw_features
            baselines["raw-input"] = (raw(train.x, encoder.config), raw(test.x, encoder.config))
    features |= baselines
    train_y, test_y, split_note, _ = labels
    correct: dict[tuple[str, str], np.ndarray] = {}
    accuracies = []
    for protocol in protocols:
        for name, (train_emb, test_emb) in features.items():
            pred, _ = predict(protocol, train_emb, train_y, test_emb, k=k, seed=seed)
            correct[name, protocol] = pred == test_y
            accuracies.append({"encoder": name, "protocol": protocol, "accuracy": float(correct[name, protocol].mean())})
    pairs = []
    names = list(features)
    for protocol in protocols:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                diff, low, high = paired_bootstrap(correct[a, protocol], correct[b, protocol], seed=seed)
                pairs.append({"protocol": protocol, "a": a, "b": b, "difference": diff, "ci_low": low, "ci_high": high,
                              "mcnemar_p": mcnemar(correct[a, protocol], correct[b, protocol]),
                              "verdict": verdict(a, b, low, high)})
    result = {"data": data, "split": split_note, "seed": seed, "n_test": int(len(test_y)), "accuracies": accuracies,
              "pairs": pairs}
    if out is not None:
        _write(Path(out), result)
    return result


def _write(out: Path, result: dict) -> None:
    lines = ["# Paired comparison", "", f"- data: {result['data']}; split: {result['split']}; seed {result['seed']}",
             "- difference: accuracy A − B in points, 95% paired bootstrap interval over test samples; "
             "p: exact McNemar test. \"A beats B\" only when the interval excludes zero.", "",
             "| protocol | A | B | A − B | 95% CI | McNemar p | verdict |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['protocol']} | {p['a']} | {p['b']} | {100 * p['difference']:+.2f} | "
              f"[{100 * p['ci_low']:+.2f}, {100 * p['ci_high']:+.2f}] | {p['mcnemar_p']:.3g} | {p['verdict']} |"
              for p in result["pairs"]]
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("compare.md", "\n".join(lines) + "\n"), ("compare.json", json.dumps(result, indent=1))):
        write_atomic(out / name, text)
