"""Evaluation report: results.json, summary.md, loss-curve and embedding-map PNGs, a rich table."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from selfsup.evaluation.linear import TORCH_ABOVE
from selfsup.files import write_atomic
from rich.console import Console
from rich.table import Table

MAX_MAP_POINTS = 2000
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
    knn = next((r for r in rows if r["protocol"] == "knn"), None)
    if knn is not None:
        d = knn.get("details", {})
        how = f" (chosen by {d['k_by']})" if d.get("k_by") else ""
        notes.append(
            f"- **knn**: cosine-similarity k-nearest neighbours, k={d.get('k', '?')}{how}, votes weighted by "
            f"exp(sim/T) with T={d.get('temperature', '?')} (Wu et al. 2018)."
        )
    linear = [r for r in rows if r["protocol"] == "linear"]
    if linear and linear[0].get("details", {}).get("solver"):
        chosen = ", ".join(f"{r['encoder']}: {r['details'].get('weight_decay')}" for r in linear)
        notes.append("- **linear**: softmax linear head (AdamW, 100 epochs) on standardised frozen embeddings, used above "
                     f"{TORCH_ABOVE} training samples; weight decay chosen on a stratified 10% validation split of the "
                     f"training split ({chosen}).")
    elif linear:
        chosen = ", ".join(f"{r['encoder']}: C={r.get('details', {}).get('C')}" for r in linear)
        folds = linear[0].get("details", {}).get("cv_folds") or 0
        how = (
            f"chosen by {folds}-fold stratified cross-validation on the training split only"
            if folds
            else "fixed (too few candidates or samples per class for cross-validation)"
        )
        notes.append(f"- **linear**: logistic regression on standardised frozen embeddings; C {how} ({chosen}).")
    if any(r["protocol"] == "mlp" for r in rows):
        notes.append("- **mlp**: one hidden layer of 256 ReLU units on standardised frozen embeddings, early stopping on "
                     "10% of the training split.")
    if any(r["protocol"].startswith("linear@") for r in rows):
        notes.append("- **linear@p%**: the linear probe trained on a stratified p% of the training labels (at least one "
                     "per class, C by CV on that subset), scored on the whole test split; see label_efficiency.png.")
    shot = next((r for r in rows if r["protocol"].endswith("-shot")), None)
    if shot is not None:
        notes.append(f"- **k-shot**: k training samples per class drawn {shot['details']['episodes']} times; nearest "
                     "class centroid (cosine, SimpleShot); mean accuracy with a 95% interval over the episodes.")
    return notes


def _summary_markdown(rows: list[dict], meta: dict) -> str:
    lines = ["# Evaluation summary", ""]
    lines += _protocol_notes(rows)
    lines += [
        f"- **split**: {meta.get('split', 'unspecified')}",
        f"- **seeds**: {meta.get('seeds', 'unspecified')}",
        "- **baselines**: `random-init` (same architecture, untrained) and `raw-input` (the inputs "
        "themselves) show what the protocol reaches without pre-training; pre-training helps only "
        "where it beats them beyond the confidence intervals.",
        "- 95% CI: percentile bootstrap over test samples.",
        "",
        "| encoder | protocol | accuracy | 95% CI |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['encoder']} | {r['protocol']} | {_pct(r['accuracy'])} | {_ci(r)} |" for r in rows]
    return "\n".join(lines) + "\n"


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


def _embedding_map(
    emb: np.ndarray, labels: np.ndarray | None, class_names: list[str] | None, seed: int
) -> bytes:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    emb = np.asarray(emb, dtype=np.float32).reshape(len(emb), -1)
    n_all = len(emb)
    idx = np.arange(n_all)
    if n_all > MAX_MAP_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(n_all, MAX_MAP_POINTS, replace=False))
    x = emb[idx]
    n = len(x)
    if n >= 3:
        perplexity = float(max(1.0, min(30.0, (n - 1) / 3)))
        init = "pca" if min(x.shape) >= 2 else "random"
        # One thread: t-SNE's OpenMP loop slows down by 10-50x when the cores are shared.
        with threadpool_limits(limits=1):
            xy = TSNE(n_components=2, perplexity=perplexity, init=init, random_state=seed).fit_transform(x)
    else:  # too few points for t-SNE: draw them on a line
        xy = np.stack([np.arange(n, dtype=np.float64), np.zeros(n)], axis=1)
    y = np.full(n, -1) if labels is None else np.asarray(labels)[idx]

    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    present = [c for c in np.unique(y) if c != -1]
    if len(present) <= MAX_LEGEND_CLASSES:
        colours = colormaps["tab10" if len(present) <= 10 else "tab20"]
        for i, c in enumerate(present):
            mask = y == c
            name = class_names[int(c)] if class_names and 0 <= int(c) < len(class_names) else str(c)
            ax.scatter(xy[mask, 0], xy[mask, 1], s=6, color=colours(i), label=name)
    else:
        mask = y != -1
        sc = ax.scatter(xy[mask, 0], xy[mask, 1], s=6, c=y[mask], cmap="turbo")
        fig.colorbar(sc, ax=ax, label="class index")
    if (y == -1).any():
        mask = y == -1
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, color="lightgrey", label="unlabeled")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(markerscale=3, fontsize="small", loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of training embeddings ({n} of {n_all} points)")
    return _figure_bytes(fig)


def _label_efficiency_curve(rows: list[dict]) -> bytes:
    """Accuracy against the share of training labels (log scale), one line per encoder, with CIs."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for encoder in dict.fromkeys(r["encoder"] for r in rows):
        points = sorted((r["details"]["label_fraction"], r) for r in rows
                        if r["encoder"] == encoder and r["protocol"].startswith("linear@"))
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


def write_report(
    out_dir: Path,
    rows: list[dict],
    meta: dict,
    train_emb: np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    class_names: list[str] | None = None,
    loss_history: list[tuple[int, float]] | None = None,
) -> dict[str, Path]:
    """Write the report files into ``out_dir`` (each atomically) and return their paths by name.

    Always ``results.json`` and ``summary.md``; ``loss_curve.png`` when ``loss_history`` is
    given; ``embedding_map.png`` (t-SNE, van der Maaten & Hinton 2008) when ``train_emb`` is.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    results = json.dumps({"meta": meta, "rows": rows}, indent=2, default=_json_default)
    paths["results"] = write_atomic(out_dir / "results.json", (results + "\n").encode())
    paths["summary"] = write_atomic(out_dir / "summary.md", _summary_markdown(rows, meta).encode())
    if loss_history:
        paths["loss_curve"] = write_atomic(out_dir / "loss_curve.png", _loss_curve(loss_history))
    if any(r["protocol"].startswith("linear@") for r in rows):
        paths["label_efficiency"] = write_atomic(out_dir / "label_efficiency.png", _label_efficiency_curve(rows))
    if train_emb is not None and len(train_emb) > 0:
        seed = meta.get("seed", 0)  # the subsample and t-SNE layout are deterministic given this
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
        png = _embedding_map(train_emb, train_labels, class_names, seed)
        paths["embedding_map"] = write_atomic(out_dir / "embedding_map.png", png)
    return paths


def print_table(rows: list[dict], title: str, console: Console | None = None) -> None:
    """Print the results as a rich table, the best accuracy of each protocol in bold green."""
    best: dict[str, float] = {}
    for r in rows:
        best[r["protocol"]] = max(best.get(r["protocol"], -1.0), r["accuracy"])
    table = Table(title=title)
    table.add_column("encoder")
    table.add_column("protocol")
    table.add_column("accuracy", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("n_test", justify="right")
    for r in rows:
        style = "bold green" if r["accuracy"] == best[r["protocol"]] else None
        table.add_row(r["encoder"], r["protocol"], _pct(r["accuracy"]), _ci(r), str(r["n_test"]), style=style)
    (console or Console()).print(table)
