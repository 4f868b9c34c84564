"""Evaluation report: results.json, summary.md, loss-curve and embedding-map PNGs, a rich table."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selfsup.evaluation.html import (
    MONITOR_COLUMNS,
    MONITORS_NOTE,
    best_by_protocol,
    confusion_row,
    monitor_cells,
    per_class_accuracy,
    report_html,
    task_header,
)
from selfsup.evaluation.linear import TORCH_ABOVE
from selfsup.files import write_atomic

MAX_MAP_POINTS = 1000  # per panel; t-SNE time grows with it
MAX_LEGEND_CLASSES = 20


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):  # pydantic models
        return value.model_dump()
    return str(value)  # Path, torch.device, dtypes, ...


def _figure_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return buffer.getvalue()


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _ci(row: dict) -> str:
    return f"[{100 * row['ci_low']:.2f}, {100 * row['ci_high']:.2f}]"


def _protocol_notes(rows: list[dict]) -> list[str]:
    notes = []
    knn = [r for r in rows if r["protocol"] == "knn"]
    if knn:
        d = knn[0].get("details", {})
        k = (
            ", ".join(f"{r['encoder']}: k={r['details'].get('k')}" for r in knn) + f", chosen by {d['k_by']}"
            if d.get("k_by")
            else f"k={d.get('k', '?')}"
        )
        notes.append(
            f"- **knn**: cosine-similarity k-nearest neighbours ({k}), votes weighted by exp(sim/T) with "
            f"T={d.get('temperature', '?')} (Wu et al. 2018)."
        )
    linear = [r for r in rows if r["protocol"] == "linear"]
    if linear and linear[0].get("details", {}).get("solver"):
        chosen = ", ".join(f"{r['encoder']}: {r['details'].get('weight_decay')}" for r in linear)
        notes.append(
            "- **linear**: softmax linear head (AdamW, 100 epochs) on standardised frozen embeddings, used above "
            f"{TORCH_ABOVE} training samples; weight decay chosen on a stratified 10% validation split of the "
            f"training split ({chosen})."
        )
    elif linear:
        chosen = ", ".join(f"{r['encoder']}: C={r.get('details', {}).get('C')}" for r in linear)
        folds = linear[0].get("details", {}).get("cv_folds") or 0
        how = (
            f"chosen by {folds}-fold stratified cross-validation on the training split only"
            if folds
            else "fixed (too few candidates or samples per class for cross-validation)"
        )
        spans = "".join(
            f" {r['encoder']}: fitted in {r['details']['fitted_in']}."
            for r in linear
            if r.get("details", {}).get("fitted_in")
        )
        notes.append(f"- **linear**: logistic regression on standardised frozen embeddings; C {how} ({chosen}).{spans}")
    if any(r["protocol"] == "mlp" for r in rows):
        notes.append(
            "- **mlp**: one hidden layer of 256 ReLU units on standardised frozen embeddings, early stopping on "
            "10% of the training split."
        )
    if any(r["protocol"] == "ncm" for r in rows):
        notes.append(
            "- **ncm**: nearest class mean: each class is the mean of its L2-normalised training embeddings, each "
            "test sample takes the class whose mean is nearest by cosine (Mensink et al. 2013); nothing tuned."
        )
    if any(r["protocol"].startswith("linear@") for r in rows):
        notes.append(
            "- **linear@p%**: the linear probe trained on a stratified p% of the training labels (at least one "
            "per class, C by CV on that subset), scored on the whole test split; see label_efficiency.png."
        )
    tuned = next((r for r in rows if r["protocol"] == "finetune"), None)
    if tuned is not None:
        d = tuned["details"]
        which = (
            "the whole encoder" if d["blocks"] is None else f"the last {d['stages_trained']} of {d['stages']} stages"
        )
        notes.append(
            f"- **finetune**: {which} and a linear head trained on the labels (AdamW, encoder LR "
            f"{d['backbone_lr']}, head LR {d['head_lr']}, batch {d['batch_size']}, "
            + (
                "SLA: joint class x rotation labels over the 4 rotations, test prediction averaged over them"
                if d.get("label_augmentation")
                else "training images turned by a random multiple of 90 degrees, ordinary labels"
                if d.get("augment") == "rotation"
                else "all 4 rotations of each training image in its batch, ordinary labels"
                if d.get("augment")
                else "no augmentation"
            )
            + "), at most "
            f"{d['epochs']} epochs, stopped after {d['patience']} without a lower loss on a stratified "
            f"{d['val_fraction']:.0%} validation part of the training split, best epoch kept; `random-init` "
            "fine-tuned is supervised training from scratch."
        )
    zero = next((r for r in rows if r["protocol"] == "zeroshot"), None)
    if zero is not None:
        notes.append(
            f"- **zeroshot**: no labels used; each test sample gets the class whose prompt (template "
            f"`{zero['details']['prompt']}`; several, separated by `|`: the mean of their normalised embeddings) "
            "the paired text encoder embeds nearest by cosine similarity "
            "(CLIP); `random-init` pairs untrained copies of both sides (chance level)."
        )
    shot = next((r for r in rows if r["protocol"].endswith("-shot")), None)
    if shot is not None:
        notes.append(
            f"- **k-shot**: k training samples per class drawn {shot['details']['episodes']} times; nearest "
            "class centroid (cosine, SimpleShot); mean accuracy with a 95% interval: Student t over the episodes, "
            "combined in quadrature with the Wilson interval over the test samples they share."
        )
    return notes


def _summary_markdown(
    rows: list[dict], meta: dict, figures: Sequence[str] = (), class_names: list[str] | None = None
) -> str:
    lines = [f"# {meta.get('title', 'Evaluation summary')}", ""]
    lines += _protocol_notes(rows)
    lines += [
        f"- **split**: {meta.get('split', 'unspecified')}",
        f"- **seeds**: {meta.get('seeds', 'unspecified')}",
        "- **baselines**: `random-init` (same architecture, untrained) and `raw-input` (the inputs "
        "themselves) show what the protocol reaches without pre-training; pre-training helps only "
        "where it beats them beyond the confidence intervals.",
        f"- **95% CI**: {meta.get('confidence_interval', 'Wilson score interval over the test samples')}.",
        "",
    ]
    groups = any("group" in r for r in rows)
    lines += ["| data " * groups + "| encoder | protocol | accuracy | 95% CI |", "|---" * (4 + groups) + "|"]
    lines += [
        f"| {r.get('group', '')} " * groups + f"| {r['encoder']} | {r['protocol']} | {_pct(r['accuracy'])} | {_ci(r)} |"
        for r in rows
    ]
    lines += _monitors_markdown(meta) + _tasks_markdown(meta)
    shown = confusion_row(rows)
    if shown is not None:
        accuracy = per_class_accuracy(shown)
        names = class_names if class_names and len(class_names) == len(accuracy) else range(len(accuracy))
        lines += [
            "",
            f"Per-class accuracy ({shown['encoder']}, {shown['protocol']}): "
            + ", ".join(f"{n}: {_pct(a)}" for n, a in zip(names, accuracy)),
        ]
    lines += [""] + [f"![{name}]({name}.png)" for name in figures]
    if meta.get("versions"):
        lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())]
    return "\n".join(lines) + "\n"


def _monitors_markdown(meta: dict) -> list[str]:
    if not meta.get("monitors"):
        return []
    lines = ["", "## Label-free monitors", "", f"{MONITORS_NOTE} On {meta.get('monitors_on', 'the training split')}."]
    lines += [
        "",
        "| encoder | " + " | ".join(MONITOR_COLUMNS.values()) + " |",
        "|---" * (1 + len(MONITOR_COLUMNS)) + "|",
    ]
    return lines + [f"| {name} | " + " | ".join(monitor_cells(v)) + " |" for name, v in meta["monitors"].items()]


def _tasks_markdown(meta: dict) -> list[str]:
    if not meta.get("tasks"):
        return []
    heading, notes = task_header(meta)
    n = len(meta["tasks"]["classes"])
    lines = ["", f"## {heading}", "", *notes, ""]
    lines += [
        "| encoder | protocol | " + " | ".join(f"task {i}" for i in range(1, n + 1)) + " | mean |",
        "|---" * (n + 3) + "|",
    ]
    return lines + [
        f"| {r['encoder']} | {r['protocol']} | " + " | ".join(_pct(a) for a in r["per_task"] + [r["accuracy"]]) + " |"
        for r in meta["tasks"]["rows"]
    ]


def _loss_curve(loss_history: list[tuple[int, float]]) -> bytes:
    steps = np.array([s for s, _ in loss_history], dtype=np.float64)
    losses = np.array([v for _, v in loss_history], dtype=np.float64)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=1, label="loss")
    window = max(1, len(losses) // 25)
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", linewidth=2, label=f"moving average ({window})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Pre-training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _figure_bytes(fig)


def _tsne(emb: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """2-D t-SNE of at most ``MAX_MAP_POINTS`` rows: ``(xy, row indices, rows in all)``."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    emb = np.asarray(emb, dtype=np.float32).reshape(len(emb), -1)
    idx = np.arange(len(emb))
    if len(emb) > MAX_MAP_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(len(emb), MAX_MAP_POINTS, replace=False))
    x = emb[idx]
    n = len(x)
    if n < 3:  # too few points for t-SNE: draw them on a line
        return np.stack([np.arange(n, dtype=np.float64), np.zeros(n)], axis=1), idx, len(emb)
    perplexity = float(max(1.0, min(30.0, (n - 1) / 3)))
    init = "pca" if min(x.shape) >= 2 else "random"
    with threadpool_limits(limits=1):  # OpenMP's limit is the calling thread's: set it in each map's own thread
        xy = TSNE(n_components=2, perplexity=perplexity, init=init, max_iter=500, random_state=seed).fit_transform(x)
    return xy, idx, len(emb)


def _scatter(ax, xy: np.ndarray, y: np.ndarray, class_names: list[str] | None, legend: bool) -> None:
    present = [c for c in np.unique(y) if c != -1]
    if len(present) <= MAX_LEGEND_CLASSES:
        colours = colormaps["tab10" if len(present) <= 10 else "tab20"]
        for i, c in enumerate(present):
            mask = y == c
            name = class_names[int(c)] if class_names and 0 <= int(c) < len(class_names) else str(c)
            ax.scatter(xy[mask, 0], xy[mask, 1], s=6, color=colours(i), label=name)
    else:
        mask = y != -1
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, c=y[mask], cmap="turbo")
    if (y == -1).any():
        ax.scatter(xy[y == -1, 0], xy[y == -1, 1], s=6, color="lightgrey", label="unlabeled")
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(markerscale=3, fontsize="small", loc="best")
    ax.set_xticks([])
    ax.set_yticks([])


def _embedding_maps(
    embeddings: dict[str, np.ndarray], labels: np.ndarray | None, class_names: list[str] | None, seed: int
) -> bytes:
    """t-SNE maps (van der Maaten & Hinton 2008) of each encoder's training embeddings, side by side."""
    from joblib import Parallel, delayed
    from joblib import cpu_count as joblib_cpu_count
    from threadpoolctl import threadpool_limits

    # One map per core at a time, each on one thread (_tsne): t-SNE's OpenMP loop slows down by 10-50x when cores
    # are shared. BLAS's limit is the process's: set here, once. The widest embeddings (raw pixels), the longest to
    # map, start first, so the others fill the other cores meanwhile.
    names = sorted(
        embeddings, key=lambda name: -np.asarray(embeddings[name]).reshape(len(embeddings[name]), -1).shape[1]
    )
    with threadpool_limits(limits=1):
        done = Parallel(n_jobs=min(len(embeddings), joblib_cpu_count()), prefer="threads")(
            delayed(_tsne)(embeddings[name], seed) for name in names
        )
    maps = [done[names.index(name)] for name in embeddings]
    fig = Figure(figsize=(5.5 * len(embeddings), 5))
    axes = fig.subplots(1, len(embeddings), squeeze=False)[0]
    for i, (ax, name, (xy, idx, n_all)) in enumerate(zip(axes, embeddings, maps)):
        y = np.full(len(idx), -1) if labels is None else np.asarray(labels)[idx]
        _scatter(ax, xy, y, class_names, legend=i == len(embeddings) - 1)
        ax.set_title(f"{name} ({len(idx)} of {n_all} points)")
    fig.suptitle("t-SNE of the training embeddings")
    return _figure_bytes(fig)


def _label_efficiency_curve(rows: list[dict]) -> bytes:
    """Accuracy against the share of training labels (log scale), one line per encoder, with CIs."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for encoder in dict.fromkeys(r["encoder"] for r in rows):
        points = sorted(
            (r["details"]["label_fraction"], r)
            for r in rows
            if r["encoder"] == encoder and r["protocol"].startswith("linear@")
        )
        x = [f for f, _ in points]
        ax.plot(x, [100 * r["accuracy"] for _, r in points], marker="o", label=encoder)
        ax.fill_between(x, [100 * r["ci_low"] for _, r in points], [100 * r["ci_high"] for _, r in points], alpha=0.15)
    ax.set_xscale("log")
    fractions = sorted({r["details"]["label_fraction"] for r in rows if r["protocol"].startswith("linear@")})
    ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
    ax.set_xlabel("share of training labels")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("label efficiency (linear probe, 95% CI)")
    ax.legend()
    return _figure_bytes(fig)


def _few_shot_plot(rows: list[dict]) -> bytes:
    """Mean k-shot accuracy with its 95% interval, one line per encoder."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for encoder in dict.fromkeys(r["encoder"] for r in rows):
        points = sorted(
            (r["details"]["shots"], r) for r in rows if r["encoder"] == encoder and r["protocol"].endswith("-shot")
        )
        mean = np.array([100 * r["accuracy"] for _, r in points])
        err = np.array([[m - 100 * r["ci_low"], 100 * r["ci_high"] - m] for m, (_, r) in zip(mean, points)]).T
        ax.errorbar([k for k, _ in points], mean, yerr=err, marker="o", capsize=3, label=encoder)
    ax.set_xlabel("labeled samples per class (k)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("few-shot (nearest centroid, 95% interval)")
    ax.legend()
    return _figure_bytes(fig)


def _confusion_plot(row: dict, class_names: list[str] | None) -> bytes:
    counts = np.asarray(row["confusion"])
    n = len(counts)
    names = class_names if class_names and len(class_names) == n else [str(i) for i in range(n)]
    fig = Figure(figsize=(1.2 + 0.45 * n, 1 + 0.45 * n))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    if n <= MAX_LEGEND_CLASSES:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if counts[i, j] > counts.max() / 2 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    over = f", summed over {len(row['per_seed'])} seeds" if "per_seed" in row else ""
    ax.set_title(f"{row['encoder']}, {row['protocol']}: confusion on the test split{over}")
    return _figure_bytes(fig)


def _figures(
    rows: list[dict],
    meta: dict,
    embeddings: dict[str, np.ndarray] | None,
    train_labels: np.ndarray | None,
    class_names: list[str] | None,
    loss_history: list[tuple[int, float]] | None,
) -> dict[str, bytes]:
    """The report's PNGs by file stem, in the order the page shows them."""
    figures: dict[str, bytes] = {}
    if any(r["protocol"].startswith("linear@") for r in rows):
        figures["label_efficiency"] = _label_efficiency_curve(rows)
    if any(r["protocol"].endswith("-shot") for r in rows):
        figures["few_shot"] = _few_shot_plot(rows)
    shown = confusion_row(rows)
    if shown is not None:
        figures["confusion"] = _confusion_plot(shown, class_names)
    embeddings = {name: emb for name, emb in (embeddings or {}).items() if emb is not None and len(emb) > 0}
    if embeddings:
        seed = meta.get("seed", 0)  # the subsample and t-SNE layout are deterministic given this
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
        figures["embedding_map"] = _embedding_maps(embeddings, train_labels, class_names, seed)
    if loss_history:
        figures["loss_curve"] = _loss_curve(loss_history)
    return figures


def write_report(
    out_dir: Path,
    rows: list[dict],
    meta: dict,
    embeddings: dict[str, np.ndarray] | None = None,
    train_labels: np.ndarray | None = None,
    class_names: list[str] | None = None,
    loss_history: list[tuple[int, float]] | None = None,
) -> dict[str, Path]:
    """Write the report files into ``out_dir`` (each atomically) and return their paths by name.

    Always ``results.json``, ``summary.md`` and ``report.html`` (one self-contained page, the PNGs
    inlined, that opens offline); a PNG per figure the rows call for: ``label_efficiency``,
    ``few_shot``, ``confusion`` (the pretrained encoder's), ``embedding_map`` (a t-SNE panel per
    encoder in ``embeddings``, their training embeddings) and ``loss_curve`` (``loss_history``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    results = json.dumps({"meta": meta, "rows": rows}, indent=2, default=_json_default)
    paths["results"] = write_atomic(out_dir / "results.json", (results + "\n").encode())
    figures = _figures(rows, meta, embeddings, train_labels, class_names, loss_history)
    for name, png in figures.items():
        paths[name] = write_atomic(out_dir / f"{name}.png", png)
    paths["summary"] = write_atomic(
        out_dir / "summary.md", _summary_markdown(rows, meta, list(figures), class_names).encode()
    )
    page = report_html(rows, meta, figures, _protocol_notes(rows), class_names)
    paths["html"] = write_atomic(out_dir / "report.html", page.encode())
    return paths


def print_table(rows: list[dict], title: str, console: Console | None = None) -> None:
    """Print the results as a rich table, the best accuracy of each protocol (within a data group) in bold green."""
    best = best_by_protocol(rows)
    groups = any("group" in r for r in rows)
    table = Table(title=title)
    if groups:
        table.add_column("data")
    table.add_column("encoder")
    table.add_column("protocol")
    table.add_column("accuracy", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("n_test", justify="right")
    for r in rows:
        style = "bold green" if r["accuracy"] == best[r.get("group"), r["protocol"]] else None
        cells = [escape(str(c)) for c in [r.get("group", "")] * groups + [r["encoder"], r["protocol"]]]  # paths
        cells += [_pct(r["accuracy"]), _ci(r), str(r["n_test"])]
        table.add_row(*cells, style=style)
    (console or Console()).print(table)
