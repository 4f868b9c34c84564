"""Paired comparisons: hand-computed statistics, no difference between an encoder and its copy, Holm's correction
by hand, and a verdict only when the Holm-adjusted p and the interval agree."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.evaluation.compare import compare, holm, judge, mcnemar, paired_bootstrap, verdict


def test_paired_bootstrap_and_mcnemar_hand_computed() -> None:
    same = np.array([1, 0, 1, 1, 0] * 20, dtype=bool)
    assert paired_bootstrap(same, same) == (0.0, 0.0, 0.0) and mcnemar(same, same) == 1.0
    a, b = np.ones(10, dtype=bool), np.zeros(10, dtype=bool)
    assert math.isclose(mcnemar(a, b), 2 * 0.5**10)  # all 10 discordant one way
    diff, low, high = paired_bootstrap(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert diff == 0.25 and 0.0 <= low <= diff <= high <= 0.75


def test_intervals_shrink_as_the_test_set_grows() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 500, 5000):
        a, b = rng.random(n) < 0.8, rng.random(n) < 0.7
        _, low, high = paired_bootstrap(a, b)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_verdict_only_when_the_interval_excludes_zero_and_p_is_small() -> None:
    rng = np.random.default_rng(0)
    perfect, coin = np.ones(200, dtype=bool), rng.random(200) < 0.5
    _, low, high = paired_bootstrap(perfect, coin)
    p = mcnemar(perfect, coin)
    assert verdict("A", "B", low, high, p) == "A beats B" and verdict("B", "A", -high, -low, p) == "A beats B"
    assert verdict("A", "B", -0.01, 0.02, 0.001) == "no difference shown"  # the interval holds 0
    assert verdict("A", "B", 0.01, 0.02, 0.06) == "no difference shown"  # p too large


def test_holm_hand_computed() -> None:
    # sorted 0.01, 0.03, 0.04 -> times 3, 2, 1 -> 0.03, 0.06, 0.04 -> made monotone: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.5, 0.01, 0.9]) == pytest.approx([0.6, 1.0, 0.04, 1.0])  # 0.01*4, 0.2*3, min(1, 0.5*2)
    assert holm([0.03]) == [0.03] and holm([]) == []


def test_holm_turns_an_uncorrected_win_into_no_difference() -> None:
    """A beats B on its own (McNemar p = 0.035, interval above 0), but not as one of three comparisons."""
    n = 100
    b = np.zeros(n, dtype=bool)
    b[:60] = True
    a = b.copy()
    a[60:72] = True  # 12 samples only A gets right
    a[:3] = False  # 3 samples only B gets right
    correct = {"A": a, "B": b, "C": b.copy()}  # C: a copy of B
    pairs = []
    for x, y in (("A", "B"), ("A", "C"), ("B", "C")):
        diff, low, high = paired_bootstrap(correct[x], correct[y])
        pairs.append({"protocol": "knn", "a": x, "b": y, "difference": diff, "ci_low": low, "ci_high": high})
        pairs[-1]["mcnemar_p"] = mcnemar(correct[x], correct[y])
    assert pairs[0]["mcnemar_p"] == pytest.approx(2 * sum(math.comb(15, i) for i in range(12, 16)) / 2**15)  # 0.035
    assert pairs[0]["ci_low"] > 0 and verdict("A", "B", pairs[0]["ci_low"], pairs[0]["ci_high"], 0.035) == "A beats B"
    judged = judge(pairs + [dict(pairs[0], protocol="linear")])  # the other protocol is its own family
    knn = judged[:3]
    assert [p["holm_m"] for p in judged] == [3, 3, 3, 1]
    assert [p["p_holm"] for p in knn] == pytest.approx([3 * 0.03515625, 3 * 0.03515625, 1.0])
    assert [p["verdict"] for p in knn] == ["no difference shown"] * 3
    assert judged[3]["p_holm"] == judged[3]["mcnemar_p"] and judged[3]["verdict"] == "A beats B"
    assert "verdict" not in pairs[0]  # judge copies


def test_an_encoder_and_its_copy_show_no_difference(iris_run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(iris_run, copy)
    out = tmp_path / "cmp"
    assert main(["compare", str(iris_run), str(copy), "--data", "builtin:iris", "--out", str(out)]) == 0
    result = json.loads((out / "compare.json").read_text())
    same = [p for p in result["pairs"] if {p["a"], p["b"]} == {str(iris_run), str(copy)}]
    assert len(same) == 2  # knn and linear
    assert all(p["difference"] == 0 and p["mcnemar_p"] == 1.0 and p["verdict"] == "no difference shown" for p in same)
    assert [p["b"] for p in result["pairs"][:3]] == [str(copy), "random-init", "raw-input"]  # baselines always there
    assert all(p["holm_m"] == 6 and p["p_holm"] >= p["mcnemar_p"] for p in result["pairs"])  # 4 names: 6 pairs
    report = (out / "compare.md").read_text()
    assert "| knn |" in report and "Holm-corrected over 6 comparisons per protocol" in report


def test_overwrite_replaces_its_own_comparison_only(iris_run, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", str(iris_run), "--data", "builtin:iris", "--protocol", "knn", "--k", "3", "--out", str(out)]
    assert main(argv) == 0
    (out / "compare.md").write_text("an earlier comparison")
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(argv) == EXIT_USER_ERROR and "--overwrite" in capsys.readouterr().err
    assert (out / "compare.md").read_text() == "an earlier comparison"
    assert main([*argv, "--overwrite"]) == 0
    assert "| knn |" in (out / "compare.md").read_text() and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "compare.md", "notes.txt", "report.html"]


def test_several_seeds_test_the_per_seed_differences(iris_run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(iris_run, copy)
    result = compare([str(iris_run), str(copy)], "builtin:iris", protocols=("linear",), seeds=3, out=tmp_path / "cmp")
    assert result["seeds"] == 3
    same = next(p for p in result["pairs"] if p["b"] == str(copy))
    assert same["per_seed"] == [0.0, 0.0, 0.0] and same["paired_t_p"] == 1.0
    assert same["verdict"] == "no difference shown" and same["ci_low"] == same["ci_high"] == 0
    vs_random = next(p for p in result["pairs"] if p["a"] == str(iris_run) and p["b"] == "random-init")
    assert len(vs_random["per_seed"]) == 3
    assert vs_random["difference"] == pytest.approx(np.mean(vs_random["per_seed"]))
    # iris has its own split: the interval resamples its test samples, so it is never zero-width from
    # seeds that happen to agree
    assert result["fixed_split"] and vs_random["ci_low"] < vs_random["difference"] < vs_random["ci_high"]
    assert "share of 3 seeds" in (tmp_path / "cmp" / "compare.md").read_text()
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert "<h2>Pairs</h2>" in page and "no difference shown" in page and "torch" in page


def test_paired_bootstrap_in_chunks_matches_and_takes_shares() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(500) < 0.8, rng.random(500) < 0.6
    assert paired_bootstrap(a, b, seed=3)[0] == pytest.approx(a.mean() - b.mean())
    shares = paired_bootstrap(a * 0.5, b * 0.5, seed=3)  # seed-averaged correctness in [0, 1]
    assert shares[0] == pytest.approx((a.mean() - b.mean()) / 2) and shares[1] < shares[0] < shares[2]
