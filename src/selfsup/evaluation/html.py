"""The evaluation report as one self-contained HTML page: inline CSS, PNGs as data URIs, no scripts
from anywhere else, so it opens offline and can be mailed as a single file."""

from __future__ import annotations

import base64
import json
import re
from html import escape

import numpy as np

CAPTIONS = {
    "label_efficiency": "Label efficiency: the linear probe trained on a share of the training labels.",
    "few_shot": "Few-shot: k labeled samples per class, nearest class centroid, mean over episodes.",
    "confusion": "Confusion matrix on the test split.",
    "embedding_map": "t-SNE maps of the training embeddings, one per encoder, side by side.",
    "loss_curve": "Pre-training loss.",
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child, td.name { text-align: left; }
tr.best td { background: #e6f4e6; font-weight: bold; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.note { color: #555; }
"""

# marks the page once every image has decoded, so a headless browser can check the figures rendered
ONLOAD = """window.addEventListener('load', () => {
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute('data-images-rendered', ok);
});"""


def confusion_row(rows: list[dict]) -> dict | None:
    """The row whose confusion matrix the report shows: the pretrained encoder's linear probe, else its first."""
    mine = [r for r in rows if r["encoder"] == "pretrained" and "confusion" in r]
    return next((r for r in mine if r["protocol"] == "linear"), mine[0] if mine else None)


def per_class_accuracy(row: dict) -> list[float]:
    counts = np.asarray(row["confusion"], dtype=np.float64)
    return (np.diag(counts) / np.maximum(counts.sum(axis=1), 1)).tolist()


def _markdown_inline(text: str) -> str:
    """The protocol notes' markdown (``**bold**``, ``- `` bullets, `code`) as HTML."""
    text = escape(text.removeprefix("- "))
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def best_by_protocol(rows: list[dict]) -> dict[tuple, float]:
    """The best accuracy of each (group, protocol): a leaderboard compares methods within a dataset only."""
    best: dict[tuple, float] = {}
    for r in rows:
        key = (r.get("group"), r["protocol"])
        best[key] = max(best.get(key, -1.0), r["accuracy"])
    return best


def _results_table(rows: list[dict]) -> str:
    best = best_by_protocol(rows)
    seeds = any("per_seed" in r for r in rows)
    groups = any("group" in r for r in rows)
    head = "<tr>" + "<th>data</th>" * groups + "<th>encoder</th><th>protocol</th><th>accuracy</th><th>95% CI</th>"
    head += "<th>n_train</th><th>n_test</th>" + "<th>per seed</th>" * seeds + "</tr>"
    body = []
    for r in rows:
        cls = ' class="best"' if r["accuracy"] == best[r.get("group"), r["protocol"]] else ""
        cells = [escape(str(r.get("group", "")))] * groups + [
            escape(str(r["encoder"])),
            escape(r["protocol"]),
            f"{100 * r['accuracy']:.2f}%",
            f"[{100 * r['ci_low']:.2f}, {100 * r['ci_high']:.2f}]",
            str(r.get("n_train", "")),
            str(r.get("n_test", "")),
        ]
        if seeds:
            cells.append(", ".join(f"{100 * a:.1f}" for a in r.get("per_seed", [])))
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table id="results">{head}{"".join(body)}</table>'


def _per_class_table(rows: list[dict], protocol: str, class_names: list[str] | None) -> str:
    shown = [r for r in rows if r["protocol"] == protocol and "confusion" in r]
    if not shown:
        return ""
    n = len(shown[0]["confusion"])
    names = class_names if class_names and len(class_names) == n else [str(i) for i in range(n)]
    head = "<tr><th>class</th>" + "".join(f"<th>{escape(str(r['encoder']))}</th>" for r in shown) + "</tr>"
    columns = [per_class_accuracy(r) for r in shown]
    body = "".join(
        f'<tr><td class="name">{escape(str(name))}</td>'
        + "".join(f"<td>{100 * col[i]:.1f}%</td>" for col in columns)
        + "</tr>"
        for i, name in enumerate(names)
    )
    return f'<h2>Per-class accuracy ({escape(protocol)})</h2><table id="per-class">{head}{body}</table>'


MONITORS_NOTE = (
    "No labels used. RankMe: the effective rank of the embeddings (Garrido et al. 2023), higher is better (more "
    "dimensions in use; 1 is collapse). Alignment: the mean squared distance between the normalised embeddings of "
    "two augmented views of a sample, lower is better. Uniformity: log of the mean Gaussian potential between "
    "normalised embeddings, lower is better (spread more evenly over the sphere; Wang & Isola 2020)."
)
MONITOR_COLUMNS = {"rankme": "RankMe", "alignment": "alignment", "uniformity": "uniformity"}


def monitor_cells(values: dict) -> list[str]:
    """An encoder's monitors as table cells, in ``MONITOR_COLUMNS`` order ("-" where not measured)."""
    return [f"{values[key]:.{1 if key == 'rankme' else 3}f}" if key in values else "-" for key in MONITOR_COLUMNS]


def task_header(meta: dict) -> tuple[str, list[str]]:
    """The per-task section's heading and its sentence saying which classes each task holds."""
    groups = meta["tasks"]["classes"]
    heading = f"Class-incremental split: {len(groups)} tasks"
    listing = "; ".join(f"task {i}: {', '.join(map(str, g))}" for i, g in enumerate(groups, start=1))
    return heading, [f"{meta['tasks']['scenario']}; accuracy per task and their mean.", f"Classes: {listing}."]


def _monitors_section(meta: dict) -> str:
    if not meta.get("monitors"):
        return ""
    head = "<tr><th>encoder</th>" + "".join(f"<th>{c}</th>" for c in MONITOR_COLUMNS.values()) + "</tr>"
    body = "".join(
        f'<tr><td class="name">{escape(name)}</td>' + "".join(f"<td>{c}</td>" for c in monitor_cells(v)) + "</tr>"
        for name, v in meta["monitors"].items()
    )
    note = f"{MONITORS_NOTE} On {meta.get('monitors_on', 'the training split')}."
    return f'<h2>Label-free monitors</h2><table id="monitors">{head}{body}</table><p class="note">{escape(note)}</p>'


def _tasks_section(meta: dict) -> str:
    if not meta.get("tasks"):
        return ""
    heading, notes = task_header(meta)
    rows = meta["tasks"]["rows"]
    n = len(meta["tasks"]["classes"])
    head = "<tr><th>encoder</th><th>protocol</th>" + "".join(f"<th>task {i}</th>" for i in range(1, n + 1))
    head += "<th>mean</th></tr>"
    body = "".join(
        f'<tr><td class="name">{escape(str(r["encoder"]))}</td><td class="name">{escape(r["protocol"])}</td>'
        + "".join(f"<td>{100 * a:.2f}%</td>" for a in r["per_task"] + [r["accuracy"]])
        + "</tr>"
        for r in rows
    )
    return f'<h2>{escape(heading)}</h2><table id="tasks">{head}{body}</table>' + "".join(
        f'<p class="note">{escape(line)}</p>' for line in notes
    )


def _versions_table(versions: dict) -> str:
    return (
        '<h2>Versions</h2><table id="versions">'
        + "".join(
            f'<tr><td class="name">{escape(k)}</td><td class="name">{escape(str(v))}</td></tr>'
            for k, v in versions.items()
        )
        + "</table>"
    )


def report_html(
    rows: list[dict], meta: dict, figures: dict[str, bytes], notes: list[str], class_names: list[str] | None = None
) -> str:
    """The whole page as a string."""
    facts = [
        ("data", meta.get("data")),
        ("suite", meta.get("suite")),
        ("split", meta.get("split")),
        ("seeds", meta.get("seeds")),
        ("confidence interval", meta.get("confidence_interval")),
        ("baselines", meta.get("baselines")),
        ("encoder", meta.get("encoder")),
        ("time", meta.get("time")),
    ]
    parts = [
        f"<h1>{escape(str(meta.get('title') or 'Evaluation: ' + str(meta.get('data', ''))))}</h1>",
        "<ul>" + "".join(f"<li><b>{k}</b>: {escape(str(v))}</li>" for k, v in facts if v is not None) + "</ul>",
        "<h2>Results</h2>",
        _results_table(rows),
        '<p class="note">Bold rows: the best accuracy of each protocol. Pre-training helps only where it '
        "beats the random-init and raw-input baselines beyond the confidence intervals. No hyperparameter "
        "saw the test split.</p>",
        "<h2>Protocols</h2><ul>" + "".join(f"<li>{_markdown_inline(n)}</li>" for n in notes) + "</ul>",
    ]
    parts += [_monitors_section(meta), _tasks_section(meta)]
    shown = confusion_row(rows)
    if shown is not None:
        parts.append(_per_class_table(rows, shown["protocol"], class_names))
    if figures:
        parts.append("<h2>Figures</h2>")
    for name, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(CAPTIONS.get(name, name))}</figcaption></figure>"
        )
    if meta.get("recipe"):
        parts.append(f"<h2>Recipe</h2><pre>{escape(meta['recipe'])}</pre>")
    if meta.get("encoder_config"):
        parts.append(
            "<h2>Encoder</h2><pre>" + escape(json.dumps(meta["encoder_config"], indent=1, default=str)) + "</pre>"
        )
    if meta.get("versions"):
        parts.append(_versions_table(meta["versions"]))
    title = escape(f"selfsup evaluation: {meta.get('data', '')}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style><script>{ONLOAD}</script></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def simple_page(
    title: str,
    facts: list[tuple[str, str]],
    tables: list[tuple[str, list[str], list[list[str]]]],
    versions: dict | None = None,
) -> str:
    """A self-contained page of facts and ``(heading, header, rows)`` tables (the comparison report)."""
    parts = [
        f"<h1>{escape(title)}</h1>",
        "<ul>" + "".join(f"<li><b>{escape(k)}</b>: {escape(str(v))}</li>" for k, v in facts) + "</ul>",
    ]
    for heading, header, rows in tables:
        parts.append(
            f"<h2>{escape(heading)}</h2><table><tr>"
            + "".join(f"<th>{escape(h)}</th>" for h in header)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</table>"
        )
    if versions:
        parts.append(_versions_table(versions))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
