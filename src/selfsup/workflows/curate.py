"""``selfsup curate``: choose the part of an open pool of data to pre-train on for a target domain.

Both sources are embedded with one encoder (``--encoder``, or a short bootstrap pre-training run on the pool), and
a budget (a fraction of the pool's training split) of pool samples is chosen by one strategy:

* ``coreset``: SimCore (Kim et al. 2023, "Coreset Sampling from Open-Set for Fine-Grained Self-Supervised
  Learning", repo ``sungnyun/openssl-simcore``): k-means centroids of the target's L2-normalised embeddings (every
  target sample when there are at most ``CORESET_CENTROIDS``), then greedy rounds in which every centroid takes
  its most cosine-similar pool sample not yet taken, until the budget is met. Simplified: the budget is the only
  stopping rule (SimCore can also stop when a round's mean similarity falls below a share of an early round's),
  and the subset holds the chosen pool samples only (SimCore pre-trains on target + coreset).
* ``dedup``: in pool order, a sample whose cosine similarity to a sample kept before it is at least
  ``threshold`` is a near-duplicate and dropped; the budget is then drawn at random (seeded) from those kept.
* ``mixture``: CLIMB-style (Diao et al. 2025), at small scale: k-means clusters of the pool, ``MIXTURE_CANDIDATES``
  cluster-weight vectors (size-proportional, then Dirichlet draws), one short proxy pre-training run on each
  candidate's sample, each scored by kNN accuracy on the target's labelled split; the best candidate's sample is
  kept. Simplified: one round of random search, no regressor predicting scores from weights.
* ``random``: a seeded uniform sample, the baseline.

The output folder holds ``selection.csv`` (the chosen pool samples), ``curation.json`` (what was done) and the
prepared subset (``workflows/subsets.py``) that ``selfsup pretrain --data`` reads; it is written in a temporary
folder inside ``out`` and moved into place at the end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selfsup import __version__
from selfsup.errors import SelfsupError, unknown_name
from selfsup.files import write_atomic
from selfsup.outputs import CURATION, check_output_folder, folder_lock, move_outputs, staging

if TYPE_CHECKING:  # importing this module stays light (no torch): the CLI checks the request with it first
    from selfsup.data import ArrayDataset, DataOptions, Splits
    from selfsup.encoders import Encoder
    from selfsup.workflows.pretrain import PretrainResult

STRATEGIES = ("coreset", "dedup", "mixture", "random")
CURATION_FORMAT = "selfsup-curation"
DEFAULT_THRESHOLD = 0.95  # dedup: cosine similarity at or above which a later sample is a near-duplicate
CORESET_CENTROIDS = 100  # coreset: k-means centroids of the target (SimCore's default K)
BOOTSTRAP_STEPS = 30  # without --encoder: steps of the bootstrap pre-training run on the pool
BOOTSTRAP_METHODS = {"image": "simclr", "tabular": "scarf", "timeseries": "ts2vec", "audio": "simclr"}
MIXTURE_CLUSTERS = 8  # mixture: k-means clusters of the pool
MIXTURE_CANDIDATES = 4  # mixture: proxy runs, one per candidate weight vector
PROXY_STEPS = 20  # mixture: steps of each proxy run
MAX_BATCH = 256


@dataclass
class CurationResult:
    """What ``curate`` chose and wrote: ``selected`` indexes the pool's training split, in the order chosen."""

    out: Path
    strategy: str
    selected: np.ndarray
    pool_size: int
    subset: Path
    encoder: str
    scores: np.ndarray
    clusters: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- checks


def check_numbers(budget: float, strategy: str, threshold: float) -> None:
    """Refuse a bad strategy, budget or threshold; needs no torch (the CLI calls it before importing any)."""
    if strategy not in STRATEGIES:
        raise unknown_name("curation strategy", strategy, STRATEGIES)
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and 0 < budget <= 1):
        raise SelfsupError(f"--budget must be a fraction of the pool in (0, 1], got {budget}; e.g. --budget 0.2.")
    if not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise SelfsupError(f"--threshold must be a cosine similarity in (0, 1], got {threshold}; e.g. 0.95.")


def check_request(target: str, pool: str, budget: float, strategy: str, threshold: float, options: DataOptions) -> str:
    """Refuse bad input before any work: the strategy, the budget, the threshold, sources of two modalities, a
    pool whose subset cannot be written. Returns the pool's modality when known before reading (else "")."""
    from selfsup.sources import source_modality
    from selfsup.workflows.subsets import check_subsettable

    check_numbers(budget, strategy, threshold)
    pool_modality = source_modality(pool, options)
    _check_same_modality(target, pool, source_modality(target, options), pool_modality)
    if pool_modality:
        check_subsettable(pool, pool_modality)
    return pool_modality or ""


def _check_same_modality(target: str, pool: str, target_modality: str | None, pool_modality: str | None) -> None:
    """Refuse a target and a pool of two modalities (either unknown: nothing to check yet)."""
    if target_modality and pool_modality and target_modality != pool_modality:
        raise SelfsupError(
            f"the target '{target}' is {target_modality} data but the pool '{pool}' is {pool_modality}; "
            "curate a pool of the target's modality."
        )


def _budget_count(budget: float, n: int, pool: str) -> int:
    if n == 0:
        raise SelfsupError(f"the pool '{pool}' has no samples; pass a pool with data in it.")
    count = round(budget * n)
    if count < 1:
        raise SelfsupError(
            f"--budget {budget} of the {n} samples of '{pool}' chooses none; raise --budget to at least {1 / n:.3g}."
        )
    return min(count, n)


# --------------------------------------------------------------------------- embedding


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _embedded(encoder: Encoder, part: ArrayDataset) -> np.ndarray:
    from selfsup.evaluation.embed import embed

    return _unit(embed(encoder, part.float_samples()))


def _recipe_fields(options: DataOptions) -> dict[str, Any]:
    fields: dict[str, Any] = {"bad_files": options.bad_files}
    if options.modality != "auto":
        fields["modality"] = options.modality
    for name in ("label", "series_id", "time_column", "sample_rate", "segment_seconds", "text_field", "image_size"):
        if getattr(options, name) is not None:
            fields[name] = getattr(options, name)
    if options.ignore:
        fields["ignore"] = list(options.ignore)
    return fields


def short_run(
    data: str, modality: str, n: int, steps: int, seed: int, folder: Path, options: DataOptions
) -> PretrainResult:
    """A short pre-training run on ``data`` (``n`` samples: the batch is at most that) with the modality's usual
    method and default encoder, into ``folder``; returns the run (its encoder, and the data as it read it)."""
    from selfsup.recipe import make_recipe
    from selfsup.workflows.pretrain import pretrain

    if modality not in BOOTSTRAP_METHODS:
        raise SelfsupError(f"no bootstrap pre-training for {modality} data; pass --encoder RUN.")
    recipe = make_recipe(
        data=data,
        out=str(folder),
        method=BOOTSTRAP_METHODS[modality],
        max_steps=steps,
        epochs=max(1, steps),
        batch_size=max(2, min(MAX_BATCH, n)),
        online_probe=False,
        seed=seed,
        **_recipe_fields(options),
    )
    return pretrain(recipe, progress=False)


# --------------------------------------------------------------------------- strategies


def select_random(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` of ``n`` indices, uniformly at random (seeded)."""
    return np.random.default_rng(seed).choice(n, size=count, replace=False)


def select_coreset(
    pool: np.ndarray, target: np.ndarray, count: int, seed: int, centroids: int = CORESET_CENTROIDS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SimCore's coreset of unit-norm ``pool`` embeddings for unit-norm ``target`` embeddings: the chosen indices,
    each one's cosine similarity to the centroid that took it, and that centroid's index."""
    from sklearn.cluster import KMeans

    if len(target) <= centroids:
        centres = target
    else:
        kmeans = KMeans(n_clusters=centroids, n_init=1, random_state=seed).fit(target)
        centres = _unit(kmeans.cluster_centers_)
    similarity = pool @ centres.T  # (N, K)
    order = np.argsort(-similarity, axis=0, kind="stable")  # per centroid, pool samples from most to least similar
    taken = np.zeros(len(pool), dtype=bool)
    cursor = np.zeros(len(centres), dtype=np.int64)
    chosen: list[int] = []
    by: list[int] = []
    while len(chosen) < count:
        for k in range(len(centres)):
            while taken[order[cursor[k], k]]:
                cursor[k] += 1
            i = int(order[cursor[k], k])
            taken[i] = True
            chosen.append(i)
            by.append(k)
            if len(chosen) == count:
                break
    idx, cluster = np.asarray(chosen), np.asarray(by)
    return idx, similarity[idx, cluster], cluster


def near_duplicates(pool: np.ndarray, threshold: float, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """In pool order, whether each unit-norm embedding is a near-duplicate of one kept before it (cosine
    similarity at least ``threshold``), and its highest similarity to an earlier kept one (0 for the first)."""
    n = len(pool)
    dropped = np.zeros(n, dtype=bool)
    best = np.zeros(n, dtype=np.float32)
    kept: list[int] = []
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        if kept:
            against = (pool[rows] @ pool[kept].T).max(axis=1)
            best[rows] = against
            dropped[rows] = against >= threshold
        inside = pool[rows] @ pool[rows].T
        kept_here: list[int] = []  # this chunk's kept rows so far, by position in it
        for j, i in enumerate(rows):
            if dropped[i]:
                continue
            if kept_here:
                top = float(inside[j, kept_here].max())
                best[i] = max(best[i], top)
                if top >= threshold:
                    dropped[i] = True
                    continue
            kept_here.append(j)
            kept.append(int(i))
    return dropped, best


def select_dedup(pool: np.ndarray, count: int, seed: int, threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Near-duplicates dropped (``near_duplicates``), then ``count`` of the rest at random (all of them when fewer
    are left): the chosen indices, each one's highest similarity to an earlier kept sample, how many were dropped."""
    dropped, best = near_duplicates(pool, threshold)
    left = np.flatnonzero(~dropped)
    pick = left if len(left) <= count else left[select_random(len(left), count, seed)]
    return pick, best[pick], int(dropped.sum())


def _mixture_sample(clusters: np.ndarray, weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` pool indices drawn with the clusters' shares ``weights``: each cluster's whole part of the budget
    (at most its size), then the rest one at a time from the clusters with room left, by weight."""
    members = [rng.permutation(np.flatnonzero(clusters == c)) for c in range(len(weights))]
    sizes = np.array([len(m) for m in members])
    quota = np.minimum(np.floor(weights * count).astype(np.int64), sizes)
    while quota.sum() < count:
        room = sizes > quota
        chance = np.where(room, weights, 0.0)
        chance = chance / chance.sum() if chance.sum() > 0 else room / room.sum()
        quota[rng.choice(len(weights), p=chance)] += 1
    return np.concatenate([m[:q] for m, q in zip(members, quota, strict=True)])


def _knn_score(encoder: Encoder, target: Splits, seed: int) -> float:
    from selfsup.evaluation.evaluate import labeled_split
    from selfsup.evaluation.knn import knn_predict

    fit, test, _ = labeled_split(target, None, None, None, seed, 0.25)
    predicted = knn_predict(_embedded(encoder, fit), fit.y.numpy(), _embedded(encoder, test), k=10)
    return float((predicted == test.y.numpy()).mean())


def select_mixture(
    pool_emb: np.ndarray,
    count: int,
    seed: int,
    proxy: Callable[[np.ndarray], float],
    clusters: int = MIXTURE_CLUSTERS,
    candidates: int = MIXTURE_CANDIDATES,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """CLIMB-style: k-means clusters of the pool, ``candidates`` weight vectors (the clusters' own sizes first,
    then Dirichlet draws), each candidate's sample scored by ``proxy`` (higher is better). Returns the best
    candidate's indices, their clusters, and every candidate's weights and score."""
    from sklearn.cluster import KMeans

    n_clusters = max(1, min(clusters, len(pool_emb)))
    assigned = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed).fit_predict(pool_emb)
    rng = np.random.default_rng(seed)
    sizes = np.bincount(assigned, minlength=n_clusters) / len(assigned)
    tried: list[dict] = []
    best, best_score = np.arange(0), -math.inf
    for c in range(candidates):
        weights = sizes if c == 0 else rng.dirichlet(np.ones(n_clusters))
        picked = _mixture_sample(assigned, weights, count, rng)
        score = proxy(picked)
        tried.append({"weights": [round(float(w), 4) for w in weights], "score": score})
        if c == 0 or score > best_score:  # the first best on ties
            best, best_score = picked, score
    return best, assigned[best], tried


# --------------------------------------------------------------------------- outputs


def _selection_csv(source: str, part: ArrayDataset, idx: np.ndarray, scores: np.ndarray, clusters: np.ndarray) -> str:
    from selfsup.data import UNLABELED
    from selfsup.sources import BUILTIN_PREFIX, source_modality
    from selfsup.workflows.subsets import image_folder_base

    folder = None
    if source_modality(source) in ("image",) and not source.startswith(BUILTIN_PREFIX):
        folder = image_folder_base(source)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["rank", "index", "id", "label", "score", "cluster", *(["path"] if folder else [])])
    classes = part.classes or []
    for rank, (i, score, cluster) in enumerate(zip(idx, scores, clusters, strict=True)):
        y = int(part.y[i])
        label = classes[y] if classes and y != UNLABELED else ""
        path = [str(folder / part.ids[i])] if folder else []
        score_text = "" if np.isnan(score) else f"{float(score):.6f}"
        writer.writerow([rank, int(i), part.ids[i], label, score_text, "" if cluster < 0 else int(cluster), *path])
    return rows.getvalue()


# --------------------------------------------------------------------------- the workflow


def _read(source: str, options: DataOptions, encoder: Encoder, what: str) -> Splits:
    from selfsup.encoders import preprocessing_of
    from selfsup.modalities import check_fits
    from selfsup.sources import load_data

    splits = load_data(source, options, preprocessing=preprocessing_of(encoder))
    check_fits(encoder, splits)
    if len(splits.train) == 0:
        raise SelfsupError(f"the {what} '{source}' has no samples; pass a {what} with data in it.")
    return splits


def curate(
    target: str,
    pool: str,
    budget: float,
    strategy: str = "coreset",
    *,
    out: str | Path,
    encoder: str | Path | None = None,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    options: DataOptions | None = None,
    overwrite: bool = False,
    bootstrap_steps: int = BOOTSTRAP_STEPS,
    proxy_runs: int = MIXTURE_CANDIDATES,
    proxy_steps: int = PROXY_STEPS,
) -> CurationResult:
    """Choose ``budget`` (a fraction in (0, 1]) of the training split of ``pool`` for pre-training towards
    ``target`` with ``strategy`` (module docstring), embedding both with ``encoder`` (a run or export folder) or,
    without one, a ``bootstrap_steps`` pre-training run on the pool. Both are read with ``options``. Writes
    ``selection.csv``, ``curation.json`` and the prepared subset into ``out`` (new or empty, or with ``overwrite``
    an earlier curation). ``mixture`` makes ``proxy_runs`` proxy runs of ``proxy_steps`` steps each."""
    from selfsup.checkpoint import load_encoder
    from selfsup.data import DataOptions
    from selfsup.encoders import preprocessing_of
    from selfsup.sources import load_data
    from selfsup.workflows.subsets import check_subsettable, write_subset

    options = options or DataOptions()
    modality = check_request(target, pool, budget, strategy, threshold, options)
    out = check_output_folder(out, CURATION, overwrite=overwrite)
    with folder_lock(out), staging(out) as work:
        if encoder is not None:
            model = load_encoder(encoder)
            used: dict[str, Any] = {"encoder": str(encoder)}
            pool_splits = _read(pool, options, model, "pool")
        else:  # the pool is read once, by the bootstrap run, with the preprocessing it fits (its encoder's)
            modality = modality or load_data(pool, options).modality  # unknown before reading: read says why
            bootstrap = short_run(pool, modality, MAX_BATCH, bootstrap_steps, seed, work / "bootstrap", options)
            model, pool_splits = bootstrap.encoder, bootstrap.splits
            used = {
                "encoder": "bootstrap",
                "method": BOOTSTRAP_METHODS[modality],
                "steps": bootstrap_steps,
                "data": pool,
                "seed": seed,
            }
        used["name"] = str(model.config.get("name", ""))
        target_splits = _read(target, options, model, "target")
        _check_same_modality(target, pool, target_splits.modality, pool_splits.modality)
        check_subsettable(pool, pool_splits.modality)
        from selfsup.data import decoded  # torch: only once the inputs look right

        pool_splits.train = decoded(pool_splits.train, "curating a pool")
        target_splits.train = decoded(target_splits.train, "curating a pool")
        n = len(pool_splits.train)
        count = _budget_count(budget, n, pool)
        pool_emb = _embedded(model, pool_splits.train)
        details: dict[str, Any] = {}
        scores = np.full(count, np.nan, dtype=np.float32)
        clusters = np.full(count, -1, dtype=np.int64)
        if strategy == "random":
            idx = select_random(n, count, seed)
        elif strategy == "coreset":
            target_emb = _embedded(model, target_splits.train)
            idx, scores, clusters = select_coreset(pool_emb, target_emb, count, seed)
            details = {"centroids": int(min(len(target_emb), CORESET_CENTROIDS)), "target_samples": len(target_emb)}
        elif strategy == "dedup":
            idx, scores, dropped = select_dedup(pool_emb, count, seed, threshold)
            clusters = np.full(len(idx), -1, dtype=np.int64)
            details = {"threshold": threshold, "near_duplicates_dropped": dropped, "kept": n - dropped}
            if len(idx) < count:
                import warnings

                warnings.warn(
                    f"{dropped} of {n} pool samples are near-duplicates; the {len(idx)} left are fewer than the "
                    f"budget's {count}, so all of them are chosen",
                    UserWarning,
                    stacklevel=2,
                )
        else:
            size = preprocessing_of(model).get("image_size") if pool_splits.modality == "image" else None
            read = replace(options, image_size=options.image_size or size)  # proxies read images as the encoder
            idx, clusters, details = _mixture(
                pool, target_splits, pool_splits, pool_emb, count, seed, read, work, (proxy_runs, proxy_steps)
            )
            scores = np.full(len(idx), np.nan, dtype=np.float32)
        staged = work / "out"
        staged.mkdir()
        subset = write_subset(pool, pool_splits, idx, staged, options)
        write_atomic(staged / "selection.csv", _selection_csv(pool, pool_splits.train, idx, scores, clusters))
        meta = {
            "format": CURATION_FORMAT,
            "strategy": strategy,
            "budget": budget,
            "selected": len(idx),
            "pool": {"source": pool, "modality": pool_splits.modality, "samples": n, "split": "train"},
            "target": {"source": target, "samples": len(target_splits.train), "split": "train"},
            "encoder": used,
            "seed": seed,
            strategy: details,
            "subset": subset.name,
            "pretrain": f"selfsup pretrain --data {out / subset.name}",
            "selfsup": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_atomic(staged / "curation.json", json.dumps(meta, indent=1, default=str))
        move_outputs(staged, out, CURATION if overwrite else None, last="curation.json")
    return CurationResult(
        out=out,
        strategy=strategy,
        selected=np.asarray(idx),
        pool_size=n,
        subset=out / subset.name,
        encoder=str(used["encoder"]),
        scores=scores,
        clusters=clusters,
        meta=meta,
    )


def _mixture(
    pool: str,
    target: Splits,
    pool_splits: Splits,
    pool_emb: np.ndarray,
    count: int,
    seed: int,
    options: DataOptions,
    work: Path,
    proxies: tuple[int, int] = (MIXTURE_CANDIDATES, PROXY_STEPS),
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The mixture strategy: proxy runs on each candidate's subset, scored by kNN on the target's labels."""
    from selfsup.workflows.subsets import write_subset

    if not target.train.labeled:
        raise SelfsupError(
            f"--strategy mixture scores its proxy runs by kNN on the target's labels, but '{target.name}' is "
            "unlabeled; pass a labelled target (class sub-folders, --label) or use --strategy coreset."
        )
    candidates, steps = proxies
    runs = iter(range(candidates))

    def proxy(picked: np.ndarray) -> float:
        run = next(runs)
        folder = work / f"candidate-{run}"
        folder.mkdir()
        data = write_subset(pool, pool_splits, picked, folder, options)
        read = replace(options, modality=pool_splits.modality)
        trained = short_run(str(data), pool_splits.modality, len(picked), steps, seed, folder / "run", read)
        return _knn_score(trained.encoder, target, seed)

    idx, clusters, tried = select_mixture(pool_emb, count, seed, proxy, candidates=candidates)
    details = {
        "clusters": min(MIXTURE_CLUSTERS, len(pool_emb)),
        "proxy_runs": len(tried),
        "proxy_steps": steps,
        "score": "kNN accuracy (k=10) on the target's labelled test part",
        "candidates": tried,
    }
    return idx, clusters, details
