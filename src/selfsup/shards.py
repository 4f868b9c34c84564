"""Prepared, sharded datasets (issue 17): a source that ``selfsup prepare`` wrote as LitData shards, read back as a
source like any other, from a local folder or object storage (``s3://...``, through LitData's own clients).

A shard folder holds one LitData dataset per split (``train/``, ``test/``: ``index.json`` and ``chunk-*.bin``, each
item ``{"x": sample as stored, "y": label, "id": sample id}``), ``selfsup-samples.parquet`` (split, id, label of
every sample, in shard order: labels and ids without reading the chunks) and ``selfsup-shards.json`` (what the
source was: modality, classes, sample shape and dtype, counts, its preprocessing and view defaults).

A split is a :class:`ShardDataset`: a :class:`~selfsup.data.LazyDataset` whose items are positions in the split's
``StreamingDataset``, so ``dataset[i]`` (evaluate, embed, the online probe) reads one item; pre-training streams it
with LitData's ``StreamingDataLoader`` (:meth:`ShardDataset.loader`: per-rank and per-node sharding, shuffling
across chunks, a mid-epoch state Lightning saves in its checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from selfsup.data import LazyDataset, Preprocessing, Splits
from selfsup.errors import SelfsupError, first_line, require
from selfsup.modalities import MODALITIES, SHARDS_FILE

SHARDS_FORMAT = "selfsup-shards"
SHARDS_VERSION = 1
SAMPLES_FILE = "selfsup-samples.parquet"  # split, id, label of every sample, in the order of the shards
SPLIT_NAMES = ("train", "test")
INDEX_FILE = "index.json"  # LitData's description of one optimised dataset
DTYPES = {"uint8": torch.uint8, "float32": torch.float32, "int64": torch.int64, "float64": torch.float64}


def litdata(purpose: str = "reading prepared shards") -> ModuleType:
    """LitData (the ``[scale]`` extra), or the one-line error naming it."""
    return require("litdata", "scale", purpose)


def is_url(source: str) -> bool:
    """Object storage (``s3://bucket/path``, ``gs://``, ...): only prepared shards are read from there."""
    return "://" in source


def is_shards(source: str) -> bool:
    """Whether ``source`` is a folder ``selfsup prepare`` wrote (a URL is taken to be one: reading it says if not)."""
    return is_url(source) or (Path(source) / SHARDS_FILE).is_file()


def is_foreign_litdata(source: str) -> bool:
    """A LitData folder (``index.json``, here or in ``train/``) that ``selfsup prepare`` did not write."""
    folder = Path(source)
    return not is_shards(source) and any((folder / sub / INDEX_FILE).is_file() for sub in ("", "train"))


def _join(source: str, name: str) -> str:
    return f"{source.rstrip('/')}/{name}" if is_url(source) else str(Path(source) / name)


def cache_folder(source: str) -> str | None:
    """Where LitData keeps the chunks of a remote source (``~/.cache/selfsup/shards/<hash>``); None for a local
    folder, which is read in place."""
    if not is_url(source):
        return None
    key = hashlib.sha256(source.rstrip("/").encode()).hexdigest()[:16]
    return str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfsup" / "shards" / key)


def _local_copy(source: str, name: str) -> Path:
    """``name`` of ``source``: the file itself when local, else downloaded to the cache by LitData's downloader."""
    if not is_url(source):
        return Path(source) / name
    from litdata.streaming.downloader import get_downloader

    cache = cache_folder(source)
    assert cache is not None  # a URL has one
    local = Path(cache) / name
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        get_downloader(source.rstrip("/"), cache, []).download_file(_join(source, name), str(local))
    except Exception as err:  # boto3/obstore/gcs errors alike: one line
        raise SelfsupError(
            f"cannot read '{_join(source, name)}' ({first_line(err)}); check the URL, your credentials and the "
            "network, or copy the prepared folder here and pass its path."
        ) from None
    return local


def describe(source: str) -> dict[str, Any]:
    """The ``selfsup-shards.json`` of a shard folder, checked; anything else is refused in one line."""
    litdata()
    path = _local_copy(source, SHARDS_FILE)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SelfsupError(f"cannot read '{_join(source, SHARDS_FILE)}': {first_line(err)}.") from None
    if not isinstance(meta, dict) or meta.get("format") != SHARDS_FORMAT or not isinstance(meta.get("splits"), dict):
        raise SelfsupError(f"'{_join(source, SHARDS_FILE)}' is not a selfsup shard description; prepare it again.")
    if int(meta.get("format_version", 0)) > SHARDS_VERSION:
        raise SelfsupError(f"'{source}' was prepared by a newer selfsup (format {meta['format_version']}); upgrade.")
    if meta.get("modality") not in MODALITIES or meta.get("stored_dtype") not in DTYPES:
        raise SelfsupError(f"'{_join(source, SHARDS_FILE)}' names an unknown modality or dtype; prepare it again.")
    return meta


def check_chunks(folder: Path) -> None:
    """A local split's chunk files are all there and whole (their sizes as ``index.json`` records them): a cut or
    missing chunk is one line now, not a hang or a garbled sample mid-training."""
    try:
        chunks = json.loads((folder / INDEX_FILE).read_text())["chunks"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SelfsupError(
            f"cannot read '{folder / INDEX_FILE}' ({first_line(err)}); prepare the source again."
        ) from None
    for chunk in chunks:
        path = folder / chunk["filename"]
        size = path.stat().st_size if path.is_file() else None
        if size != chunk["chunk_bytes"]:
            state = "is missing" if size is None else f"is truncated ({size:,} of {chunk['chunk_bytes']:,} bytes)"
            raise SelfsupError(f"shard '{path}' {state}; prepare the source again (selfsup prepare --overwrite).")


def _stream(input_dir: str, cache_dir: str | None, **options: Any) -> Any:
    """LitData's ``StreamingDataset`` over one split; a remote one it cannot reach is one line."""
    try:
        return litdata().StreamingDataset(input_dir, cache_dir=cache_dir, **options)
    except Exception as err:  # whatever the storage client raises
        raise SelfsupError(f"cannot open the shards in '{input_dir}': {first_line(err)}") from None


def training_sample(item: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """A stored item as training takes it: ``(float sample, label)``, pictures scaled to [0, 1] as ArrayDataset does."""
    x = torch.from_numpy(np.array(item["x"]))
    return (x.float().div_(255.0) if x.dtype == torch.uint8 else x), int(item["y"])


class ShardReader:
    """The sample at a position of one split's shards, as stored (``LazyDataset.decode``). Each process opens its
    own ``StreamingDataset`` on first use: it pickles without the open one, and a forked DataLoader worker does not
    use its parent's (whose download threads did not survive the fork)."""

    def __init__(self, input_dir: str, cache_dir: str | None) -> None:
        self.input_dir, self.cache_dir = input_dir, cache_dir
        self._dataset: Any = None
        self._pid = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"input_dir": self.input_dir, "cache_dir": self.cache_dir, "_dataset": None, "_pid": 0}

    def __call__(self, index: int) -> torch.Tensor:
        if self._dataset is None or self._pid != os.getpid():
            self._dataset, self._pid = _stream(self.input_dir, self.cache_dir), os.getpid()
        return torch.from_numpy(np.array(self._dataset[int(index)]["x"]))


@dataclass
class ShardDataset(LazyDataset):
    """One split of prepared shards: ``items`` are positions in its ``StreamingDataset`` (a subset keeps its own),
    ``decode`` a :class:`ShardReader`."""

    def subset(self, indices: np.ndarray | list[int]) -> ShardDataset:
        lazy = super().subset(indices)
        return ShardDataset(**{f.name: getattr(lazy, f.name) for f in fields(lazy)})

    @property
    def reader(self) -> ShardReader:
        assert isinstance(self.decode, ShardReader)  # load_shards makes it so
        return self.decode

    def streaming(self, *, shuffle: bool, seed: int, drop_last: bool) -> Any:
        """LitData's ``StreamingDataset`` over these samples (a subset's positions only), yielding ``(float sample,
        label)``; it shards itself by rank and node and shuffles across chunks."""
        dataset = _stream(
            self.reader.input_dir,
            self.reader.cache_dir,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            transform=training_sample,
        )
        positions = [int(i) for i in self.items]
        if positions != list(range(len(dataset))):
            dataset = dataset.subset(positions)
        return dataset

    def loader(self, batch_size: int, num_workers: int, seed: int, num_nodes: int = 1) -> Any:
        """The training loader: LitData's ``StreamingDataLoader`` (resumable mid-epoch: Lightning saves its
        ``state_dict`` in the run's checkpoints), full batches only, each rank streaming its own part."""
        dataset = self.streaming(shuffle=True, seed=seed, drop_last=True)
        loader = _rank_aware_loader()(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=True)
        loader.num_nodes = num_nodes  # the run's --num-nodes: LitData would guess it from the GPUs of this machine
        return loader


def _rank_aware_loader() -> type:
    """LitData's ``StreamingDataLoader``, seeing the ranks of the process group when it is used rather than when it
    is made: a ``StreamingDataset`` reads the world size once, when built, and selfsup builds its loaders before
    Lightning starts the process group (where a LightningDataModule would build them after), so that every DDP
    rank would otherwise stream the whole dataset."""
    from litdata.utilities.env import _DistributedEnv

    base: Any = litdata().StreamingDataLoader

    class RankAwareLoader(base):
        num_nodes = 1

        def _ranks(self) -> None:
            found = _DistributedEnv.detect()
            env = _DistributedEnv(found.world_size, found.global_rank, self.num_nodes if found.world_size > 1 else 1)
            if env != self.dataset.distributed_env:
                self.dataset.distributed_env = env

        def __iter__(self) -> Any:
            self._ranks()
            return super().__iter__()

        def __len__(self) -> int:
            self._ranks()
            return super().__len__()

        def state_dict(self) -> dict[str, Any]:
            self._ranks()
            return super().state_dict()

        def load_state_dict(self, obj: dict[str, Any]) -> None:
            self._ranks()
            super().load_state_dict(obj)

    return RankAwareLoader


def _samples_table(source: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """Split -> (ids, labels) in shard order, from ``selfsup-samples.parquet``."""
    import pyarrow.parquet as pq

    path = _local_copy(source, SAMPLES_FILE)
    try:
        table = pq.read_table(path).to_pydict()
    except Exception as err:  # pyarrow's errors: one line
        raise SelfsupError(
            f"cannot read '{_join(source, SAMPLES_FILE)}' ({first_line(err)}); prepare it again."
        ) from None
    split, ids, labels = (np.asarray(table[key]) for key in ("split", "id", "label"))
    return {name: (ids[split == name].tolist(), labels[split == name].astype(np.int64)) for name in set(split.tolist())}


def _check_reading(source: str, meta: dict[str, Any], preprocessing: Preprocessing | None) -> None:
    """Shards hold samples already read (an image size, a table's schema, a tokenizer): an encoder that reads its data
    otherwise cannot use them."""
    stored = meta.get("preprocessing")
    if preprocessing is None or not isinstance(stored, dict):
        return
    ours = Preprocessing.from_dict(stored, _join(source, SHARDS_FILE)).without_source().settings
    theirs = preprocessing.without_source().settings
    differ = sorted(key for key in set(ours) & set(theirs) if ours[key] != theirs[key])
    if differ:
        raise SelfsupError(
            f"'{source}' was prepared with other {', '.join(differ)} than the encoder reads its data with; prepare "
            "the original source again for this encoder (selfsup prepare SOURCE OUT with its settings)."
        )


def _refuse_reading_flags(source: str, meta: dict[str, Any], options: Any) -> None:
    """Flags that choose how files are read do not apply to samples already read (--in-memory does)."""
    if options.modality not in ("auto", meta["modality"]):
        raise SelfsupError(
            f"'{source}' holds {meta['modality']} shards (selfsup prepare) but --modality {options.modality} was "
            f"given; pass --modality {meta['modality']} or leave it out."
        )
    given = ["--image-size"] * bool(options.image_size) + options.file_flags()
    if given:
        raise SelfsupError(
            f"{', '.join(given)} cannot be used with the prepared shards '{source}': their samples are already "
            "read; give those flags to 'selfsup prepare' instead."
        )


def load_shards(source: str, options: Any, preprocessing: Preprocessing | None = None) -> Splits:
    """Read a shard folder (or URL) as a source: its splits as :class:`ShardDataset` (``--in-memory yes``: decoded
    into memory), its modality, classes, preprocessing and view defaults as ``selfsup prepare`` recorded them."""
    meta = describe(source)
    _refuse_reading_flags(source, meta, options)
    if preprocessing is not None and preprocessing.modality != meta["modality"]:
        raise SelfsupError(
            f"the encoder was trained on {preprocessing.modality} data but '{source}' holds {meta['modality']} "
            "shards; pass data of the encoder's modality."
        )
    _check_reading(source, meta, preprocessing)
    labels = _samples_table(source)
    cache = cache_folder(source)
    parts: dict[str, LazyDataset] = {}
    for name, info in meta["splits"].items():
        if name not in SPLIT_NAMES:
            continue
        if not is_url(source):
            check_chunks(Path(source) / name)
        ids, y = labels.get(name, ([], np.zeros(0, dtype=np.int64)))
        if len(ids) != int(info["count"]):
            raise SelfsupError(
                f"'{_join(source, SAMPLES_FILE)}' lists {len(ids)} {name} samples but the shards hold {info['count']}; "
                "prepare the source again."
            )
        parts[name] = ShardDataset(
            ShardReader(_join(source, name), None if cache is None else str(Path(cache) / name)),
            range(len(ids)),  # type: ignore[arg-type]  # positions: a range indexes like the list it stands for
            torch.from_numpy(y),
            ids,
            tuple(int(n) for n in meta["sample_shape"]),
            DTYPES[meta["stored_dtype"]],
            f"{source} ({name})",
            meta.get("classes"),
        )
    if "train" not in parts:
        raise SelfsupError(f"'{source}' has no train split; prepare the source again.")
    if options.in_memory == "yes":
        parts = {name: part.in_memory() for name, part in parts.items()}  # type: ignore[misc]
    stored = meta.get("preprocessing")
    return Splits(
        train=parts["train"],
        test=parts.get("test"),
        name=source,
        modality=meta["modality"],
        view_defaults=dict(meta.get("view_defaults") or {}),
        preprocessing=Preprocessing.from_dict(stored, _join(source, SHARDS_FILE)) if isinstance(stored, dict) else None,
    )
