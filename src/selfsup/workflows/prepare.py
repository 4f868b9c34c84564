"""``selfsup prepare SOURCE OUT``: a source written as LitData shards (``litdata.optimize``), for training that
streams its data (issue 17) instead of decoding the whole source first, on one machine or many, from a local folder
or object storage. ``selfsup.shards`` reads them back.

The samples are stored as selfsup holds them in memory (pictures uint8 ``(C, H, W)``, tables' encoded rows, token
ids), each with its label and id, in a seeded random order: a chunk mixes the classes, so LitData's shuffling (chunks
in random order, items shuffled within the chunks a worker holds) draws batches like a full shuffle. A lazily read
source is decoded in the optimiser's worker processes, one sample at a time, so memory does not grow with its size.

Pictures are stored raw, not re-encoded as JPEG: measured on 128 px crops of scikit-learn's sample photos, JPEG
(quality 90) is 8.6x smaller (5.7 KB against 49 KB) but costs 0.21 ms of decoding per image in the loader and
changes pixels (up to 67 levels): raw shards read back exactly what the source reads, at the cost of disk.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.data import ArrayDataset, DataOptions, Samples, Splits
from selfsup.errors import SelfsupError, first_line
from selfsup.outputs import SHARDS, check_output_folder, folder_lock, move_outputs, staging
from selfsup.shards import SAMPLES_FILE, SHARDS_FILE, SHARDS_FORMAT, SHARDS_VERSION, litdata
from selfsup.sources import load_data

CHUNK_BYTES = 64 * 2**20  # LitData's usual chunk size
MIN_CHUNKS = 16  # small sources still get several chunks, so that loader workers and ranks each have some


@dataclass
class PrepareResult:
    out: Path
    modality: str
    counts: dict[str, int]  # samples written per split
    skipped: int  # unreadable files left out (--bad-files skip)
    bytes: int  # on disk
    seconds: float


class _Writer:
    """The optimiser's function: one sample (a position of the source), read and returned as a stored item, or
    nothing for a file that cannot be read (recorded in ``failed``: LitData hangs when its function raises)."""

    def __init__(self, samples: Samples, skip: bool, failed: Path, done: Any) -> None:
        self.samples, self.skip, self.failed, self.done = samples, skip, failed, done

    def __call__(self, index: int) -> Any:
        if not self.skip and any(self.failed.iterdir()):  # another sample failed: the run stops, write no more
            return
        try:
            x = (
                self.samples.x[index]
                if isinstance(self.samples, ArrayDataset)
                else self.samples.decode(self.samples.items[index])
            )
        except Exception as err:  # reported in the parent, one line
            (self.failed / str(index)).write_text(first_line(err))
            return
        with self.done.get_lock():
            self.done.value += 1
        yield {"x": x.numpy(), "y": int(self.samples.y[index]), "id": self.samples.ids[index]}


def _chunk_size(samples: Samples) -> int:
    """Items per chunk: about CHUNK_BYTES of samples, and at least MIN_CHUNKS chunks."""
    item = math.prod(samples.sample_shape) * samples.stored_dtype.itemsize
    return max(1, min(CHUNK_BYTES // max(1, item), math.ceil(len(samples) / MIN_CHUNKS)))


def _show(done: Any, total: int, stop: threading.Event, progress: bool) -> None:
    if not progress:
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("preparing shards", total=total)
        while not stop.wait(0.2):
            bar.update(task, completed=done.value)


def _write_split(
    samples: Samples, name: str, tmp: Path, order: np.ndarray, options: DataOptions, workers: int, progress: bool
) -> tuple[list[int], list[tuple[int, str]]]:
    """One split as shards in ``tmp/name``, in ``order``: the positions written, and (position, reason) of those
    left out."""
    failed = tmp / f".failed-{name}"
    failed.mkdir()
    done = multiprocessing.Value("q", 0)
    stop = threading.Event()
    shown = threading.Thread(target=_show, args=(done, len(order), stop, progress), daemon=True)
    shown.start()
    try:
        litdata("selfsup prepare").optimize(
            fn=_Writer(samples, options.bad_files == "skip", failed, done),
            inputs=order.tolist(),
            output_dir=str(tmp / name),
            chunk_size=_chunk_size(samples),
            num_workers=max(1, min(workers, len(order))),
            keep_data_ordered=True,  # the shards hold the samples in the order given: the ids file says which
            start_method="fork" if sys.platform == "linux" else None,  # no copy of an in-memory source per worker
            verbose=False,
        )
    finally:
        stop.set()
        shown.join()
    left_out = sorted((int(p.name), p.read_text()) for p in failed.iterdir())
    for path in failed.iterdir():
        path.unlink()
    failed.rmdir()
    if left_out and options.bad_files != "skip":
        index, reason = left_out[0]
        raise SelfsupError(f"{reason.rstrip('.')} (sample '{samples.ids[index]}'); nothing was written.")
    gone = {i for i, _ in left_out}
    return [int(i) for i in order if int(i) not in gone], left_out


def _check_written(folder: Path, ids: list[str]) -> None:
    """The shards hold the samples in the order the ids file will say (a few positions read back)."""
    dataset = litdata().StreamingDataset(str(folder))
    if len(dataset) != len(ids):
        raise RuntimeError(f"LitData wrote {len(dataset)} samples to '{folder}', not {len(ids)}")
    for position in sorted({0, len(ids) - 1, *np.random.default_rng(0).integers(0, len(ids), 16).tolist()}):
        if dataset[position]["id"] != ids[position]:
            raise RuntimeError(f"LitData wrote the samples of '{folder}' out of order (position {position})")


def _description(splits: Splits, counts: dict[str, int], source: str, seed: int) -> dict[str, Any]:
    train = splits.train
    return {
        "format": SHARDS_FORMAT,
        "format_version": SHARDS_VERSION,
        "source": source,
        "modality": splits.modality,
        "classes": train.classes,
        "sample_shape": list(train.sample_shape),
        "stored_dtype": str(train.stored_dtype).removeprefix("torch."),
        "splits": {name: {"count": count} for name, count in counts.items()},
        "preprocessing": splits.preprocessing.as_dict() if splits.preprocessing is not None else None,
        "view_defaults": splits.view_defaults,
        "order_seed": seed,
    }


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prepare(
    source: str,
    out: str | Path,
    options: DataOptions | None = None,
    *,
    overwrite: bool = False,
    num_workers: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> PrepareResult:
    """Write ``source`` (``builtin:NAME`` or a path, read with ``options``; lazily where its reader can) as LitData
    shards in ``out``: ``train/`` (and ``test/`` when the source has a test split), the samples' ids and labels
    (selfsup-samples.parquet) and ``selfsup-shards.json``. Everything is written to a staging folder and moved in
    place at the end, the description last; a non-empty ``out`` is refused unless it holds shards and
    ``overwrite``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    litdata("selfsup prepare")
    options = options or DataOptions()
    out = check_output_folder(out, SHARDS, overwrite=overwrite, flag="OUT")
    if not source.startswith("builtin:") and Path(source).resolve() == out.resolve():
        raise SelfsupError(f"OUT '{out}' is the source itself; choose another folder.")
    started = time.perf_counter()
    lazily = options.in_memory != "yes"  # decoded in the optimiser's workers, which leave unreadable files out
    splits = load_data(source, replace(options, in_memory="no", bad_files="fail") if lazily else options)
    parts = {name: part for name, part in (("train", splits.train), ("test", splits.test)) if part is not None}
    for name, part in parts.items():
        if len(part) == 0:
            raise SelfsupError(f"'{source}' has no {name} samples to prepare.")
    rng = np.random.default_rng(seed)
    with folder_lock(out), staging(out) as tmp:
        written: dict[str, list[int]] = {}
        skipped = 0
        for name, part in parts.items():
            positions, left_out = _write_split(
                part, name, tmp, rng.permutation(len(part)), options, num_workers, progress
            )
            _check_written(tmp / name, [part.ids[i] for i in positions])
            written[name], skipped = positions, skipped + len(left_out)
        rows = [
            (name, parts[name].ids[i], int(parts[name].y[i])) for name, positions in written.items() for i in positions
        ]
        pq.write_table(
            pa.table({key: [row[k] for row in rows] for k, key in enumerate(("split", "id", "label"))}),
            tmp / SAMPLES_FILE,
        )
        counts = {name: len(positions) for name, positions in written.items()}
        import json

        (tmp / SHARDS_FILE).write_text(json.dumps(_description(splits, counts, source, seed), indent=1))
        size = _folder_bytes(tmp)
        move_outputs(tmp, out, SHARDS if overwrite else None, last=SHARDS_FILE)
    return PrepareResult(out, splits.modality, counts, skipped, size, time.perf_counter() - started)
