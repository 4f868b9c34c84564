"""Forgetting, measured: the same protocols on several labeled sets, before and after continued pre-training.

"Before" is the encoder that ``--init`` started from (a selfsup run or export, read from the run's
recipe) or one given explicitly; "after" is the continued encoder. Each set is evaluated with the
same split and seed for both, so a target set shows the gain and a source-domain set the change.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from selfsup.checkpoint import META, read_meta
from selfsup.evaluation.evaluate import EvaluationOptions, EvaluationResult, evaluate
from selfsup.files import write_atomic
from selfsup.outputs import EVALUATION, clear_output_folder


def init_of(encoder: str | Path) -> str | None:
    """The selfsup encoder a run was continued from (its recipe's ``init``), if that is a selfsup run/export."""
    meta = read_meta(encoder)
    if meta.get("side") == "b":  # a paired run's --init is side a's
        return None
    recipe = meta.get("recipe") or {}
    init = recipe.get("init")
    return init if init and (Path(init) / META).is_file() else None


def _accuracy(result: EvaluationResult, encoder: str, protocol: str) -> float:
    """NaN where the protocol has no row for that encoder (raw input is not fine-tuned)."""
    return next(
        (r["accuracy"] for r in result.rows if r["encoder"] == encoder and r["protocol"] == protocol), float("nan")
    )


def before_after(
    encoder: str | Path,
    datas: list[str],
    before: str | Path,
    options: EvaluationOptions,
    *,
    out: Path,
    overwrite: bool = False,
) -> list[dict]:
    """Evaluate ``before`` and ``encoder`` on every set in ``datas`` with ``options``; one row per set and protocol
    with both accuracies and the change. ``before`` is probed alone (the baselines are ``encoder``'s), with zero-shot
    only where it has its own text partner. Each set's full report goes to ``out/<i>-<name>``; the comparison to
    ``out/before_after.md`` and ``.json``. Nothing is written until every set is evaluated; then ``overwrite``
    first removes an earlier evaluation report's files from ``out``."""
    protocols = options.protocols
    # the baselines are the same as after's; zero-shot only where the earlier encoder has its own text partner
    prior_options = replace(
        options,
        baselines=False,
        partner=None,
        protocols=tuple(p for p in protocols if p != "zeroshot") if protocols else None,
    )
    rows, reports = [], {}
    for i, data in enumerate(datas):
        folder = out / f"{i}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', data)[-60:]}"
        reports[folder] = after = evaluate(encoder, data, options)
        prior = evaluate(before, data, prior_options)
        for protocol in [r["protocol"] for r in after.rows if r["encoder"] == "pretrained"]:  # fewshot: k-shot rows
            a, b = _accuracy(after, "pretrained", protocol), _accuracy(prior, "pretrained", protocol)
            rows.append(
                {
                    "data": data,
                    "split": after.meta["split"],
                    "protocol": protocol,
                    "before": b,
                    "after": a,
                    "change": a - b,
                    "random_init": _accuracy(after, "random-init", protocol),
                    "raw_input": _accuracy(after, "raw-input", protocol),
                    "n_test": after.meta["n_test"],
                }
            )
    lines = [
        "# Before and after continued pre-training\n",
        f"before: `{before}`; after: `{encoder}`; seed {options.seed}; "
        "accuracy on each set's test split (its own, else a stratified split fixed by the seed).\n",
        "| data | protocol | before | after | change | random-init | raw input | n_test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['data']} | {r['protocol']} | {100 * r['before']:.2f} | {100 * r['after']:.2f} | "
        f"{100 * r['change']:+.2f} | {100 * r['random_init']:.2f} | {100 * r['raw_input']:.2f} | {r['n_test']} |"
        for r in rows
    ]
    if overwrite:
        clear_output_folder(out, EVALUATION)
    for folder, report in reports.items():
        report.write(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("before_after.md", "\n".join(lines) + "\n"), ("before_after.json", json.dumps(rows, indent=1))):
        write_atomic(out / name, text)
    return rows


def print_before_after(rows: list[dict], console: Console) -> None:
    table = Table(title="before -> after continued pre-training (pretrained encoder, same split and seed)")
    for column in ("data", "protocol", "before", "after", "change", "random-init", "raw input"):
        table.add_column(column, justify="left" if column in ("data", "protocol") else "right")
    for r in rows:
        style = "red" if r["change"] < 0 else "green"
        table.add_row(
            r["data"],
            r["protocol"],
            f"{100 * r['before']:.2f}",
            f"{100 * r['after']:.2f}",
            f"{100 * r['change']:+.2f}",
            f"{100 * r['random_init']:.2f}",
            f"{100 * r['raw_input']:.2f}",
            style=style,
        )
    console.print(table)
