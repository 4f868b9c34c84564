"""Use the result: write embeddings to disk, export an encoder from a run or a training checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from selfsup import __version__
from selfsup.checkpoint import (
    METHOD_WEIGHTS,
    load_encoder,
    own_tensors,
    read_meta,
    read_preprocessing,
    save_encoder,
    save_method_state,
)
from selfsup.data import UNLABELED, DataOptions, LazyDataset, Preprocessing, Samples
from selfsup.distributed import inference_device
from selfsup.encoders import Encoder, build_encoder, preprocessing_of
from selfsup.encoders.pair import PairEncoder, side_names
from selfsup.errors import SelfsupError, first_line, unknown_name
from selfsup.evaluation.embed import CHUNK_ROWS, embed_chunks
from selfsup.files import write_atomic
from selfsup.modalities import check_fits
from selfsup.outputs import (
    EXPORT_FORMAT,
    RUN,
    check_output_file,
    check_output_folder,
    clear_output_folder,
    folder_lock,
    move_outputs,
    staging,
)
from selfsup.sources import load_data, source_modality
from selfsup.training.adapters import ADAPTER_META, ADAPTER_WEIGHTS, merged_state
from selfsup.workflows import formats
from selfsup.workflows.model_card import model_card

EMBEDDING_FORMATS = (".npy", ".parquet")
PARQUET_KEY = b"selfsup"  # key of the schema metadata selfsup writes into its embeddings' Parquet files


EMBEDDINGS_FORMAT = "selfsup-embeddings"


def npy_description(path: Path) -> Path:
    """The JSON file beside a ``.npy`` of embeddings that says what made it (``emb.npy.json``): NumPy's format
    has no room for it, and it marks the array as selfsup's."""
    return path.with_name(path.name + ".json")


def _is_description(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == EMBEDDINGS_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def is_embeddings(path: Path) -> bool:
    """Whether ``path`` is embeddings selfsup wrote: a 2-D float32 ``.npy`` array with selfsup's description
    beside it, or a Parquet file whose schema metadata has selfsup's key. Only such a file is replaced with
    ``--overwrite``."""
    try:
        if path.suffix == ".npy":
            array = np.load(path, mmap_mode="r")
            ok = isinstance(array, np.ndarray) and array.ndim == 2 and array.dtype == np.float32
            del array  # closes the memory map
            return ok and _is_description(npy_description(path))
        import pyarrow.parquet as pq

        return PARQUET_KEY in (pq.read_schema(path).metadata or {})
    except Exception:
        return False


SHARDS_DESCRIPTION = "_embeddings.json"  # in a folder of Parquet shards; Parquet readers skip names starting "_"
SHARD_PATTERN = re.compile(r"part-\d{5,}\.parquet")


def is_embeddings_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of Parquet shards selfsup wrote: its description and ``part-NNNNN.parquet``
    files, nothing else. Only such a folder is replaced with ``--overwrite``."""
    try:
        return _is_description(path / SHARDS_DESCRIPTION) and all(
            p.name == SHARDS_DESCRIPTION or (p.is_file() and SHARD_PATTERN.fullmatch(p.name)) for p in path.iterdir()
        )
    except OSError:
        return False


def _check_output_shards(out: Path, overwrite: bool) -> None:
    """Before any work: ``out`` (a folder of Parquet shards) is new or empty, or with ``overwrite`` selfsup's
    shards."""
    if out.exists() and not out.is_dir():
        raise SelfsupError(
            f"--out '{out}' is a file; a name without a suffix is a folder of Parquet shards: choose another --out."
        )
    if out.is_dir() and any(out.iterdir()):
        if not is_embeddings_folder(out):
            raise SelfsupError(
                f"--out '{out}' holds files selfsup did not write (not selfsup embeddings); choose another --out. "
                "selfsup never deletes what it did not write."
            )
        if not overwrite:
            raise SelfsupError(
                f"--out '{out}' already holds selfsup embeddings; pass --overwrite to replace them, or choose "
                "another --out."
            )
    check_output_file(out / SHARDS_DESCRIPTION, "embeddings description", _is_description, overwrite=True)


@dataclasses.dataclass
class _Block:
    """Consecutive rows of one split: their ids, split name, labels (class names, None when unlabeled) and
    embeddings."""

    ids: list[str]
    split: str
    labels: list[str | None] | None
    emb: np.ndarray


def _blocks(
    encoder: Encoder, parts: list[tuple[str, Samples]], labeled: bool, chunk_rows: int, **how: Any
) -> Iterator[_Block]:
    """Each split's embeddings, block by block (``embed_chunks``): memory holds one block."""
    for name, part in parts:
        start = 0
        for emb in embed_chunks(encoder, part, chunk_rows, **how):
            stop = start + len(emb)
            labels = None
            if labeled:
                assert part.classes is not None
                labels = [part.classes[i] if i != UNLABELED else None for i in part.y[start:stop].tolist()]
            yield _Block(part.ids[start:stop], name, labels, emb)
            start = stop


def write_embeddings(
    encoder_path: str | Path,
    data: str,
    out: str | Path,
    *,
    options: DataOptions | None = None,
    overwrite: bool = False,
    batch_size: int = 512,
    progress: bool = False,
    accelerator: str = "auto",
    devices: int | str = 1,
    precision: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Embed every sample of ``data`` (train split, then test split if any) into ``.npy``, ``.parquet``, or a folder
    (a name without a suffix) of Parquet shards ``part-00000.parquet``, ... of ``chunk_rows`` rows each.

    The data is read the way the encoder was trained (a table with its saved schema); a lazily read source is
    decoded by DataLoader workers. The encoder embeds on one device (``accelerator``, ``devices``:
    ``distributed.inference_device``). Embeddings are written block by block as they come (memory holds
    ``chunk_rows`` of them, not all): into a temporary name beside ``out``, moved into place when complete. Parquet
    rows carry the sample id, the split, the label (if any) and one float32 ``e{i}`` column per dimension.
    """
    out = Path(out)
    folder = out.suffix == ""
    if not folder and out.suffix not in EMBEDDING_FORMATS:
        raise SelfsupError(
            f"cannot write embeddings to '{out}': use a .npy or .parquet file name, or a folder name without a "
            "suffix for Parquet shards."
        )
    device = inference_device(accelerator, devices)  # a device this machine lacks: before any work
    if folder:
        _check_output_shards(out, overwrite)
    else:
        check_output_file(out, "embeddings", is_embeddings, overwrite=overwrite)
    if out.suffix == ".npy":  # its description too: a user's file of that name is never replaced
        check_output_file(npy_description(out), "embeddings description", _is_description, overwrite=True)
    encoder = load_encoder(encoder_path)
    splits = load_data(data, options, preprocessing=preprocessing_of(encoder))
    check_fits(encoder, splits)
    parts: list[tuple[str, Samples]] = [("train", splits.train)]
    parts += [("test", splits.test)] if splits.test is not None else []
    classes = splits.train.classes
    labeled = bool(classes) and any(bool((part.y != UNLABELED).any()) for _, part in parts)
    how = {"batch_size": batch_size, "device": device, "progress": progress, "precision": precision}
    blocks = _blocks(encoder, parts, labeled, chunk_rows, **how)
    rows = sum(len(part) for _, part in parts)
    meta = {"format": EMBEDDINGS_FORMAT, "encoder": str(encoder_path)}
    if folder:
        _write_shards(out, blocks, meta | {"data": data})
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # a name of our own beside it (never a user's file), replaced in one step, removed on any failure
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        if out.suffix == ".npy":
            shape = _write_npy(tmp, blocks, rows)
        else:
            _write_parquet(tmp, blocks, meta)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    if out.suffix == ".npy":
        write_atomic(npy_description(out), json.dumps(meta | {"data": data, "shape": list(shape)}, indent=1))
    return out


def _write_npy(path: Path, blocks: Iterator[_Block], rows: int) -> tuple[int, int]:
    """The blocks into one float32 ``(rows, D)`` ``.npy`` at ``path``, filled in place (a memory map); its shape."""
    array = None
    start = 0
    for block in blocks:
        if array is None:
            array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, block.emb.shape[1]))
        array[start : start + len(block.emb)] = block.emb
        start += len(block.emb)
    if array is None:  # no sample at all
        np.save(path, np.zeros((0, 0), dtype=np.float32))
        return (0, 0)
    array.flush()
    shape = (int(array.shape[0]), int(array.shape[1]))
    del array  # closes the memory map
    return shape


def _table(block: _Block, meta: dict[str, Any]) -> Any:
    """A block as an Arrow table: id, split, label (when the data has labels), ``e{i}`` float32 columns, with
    selfsup's key in the schema metadata."""
    import pyarrow as pa

    columns: dict[str, Any] = {"id": pa.array(block.ids, pa.string()), "split": [block.split] * len(block.ids)}
    if block.labels is not None:
        columns["label"] = pa.array(block.labels, pa.string())
    for i in range(block.emb.shape[1]):
        columns[f"e{i}"] = pa.array(block.emb[:, i])
    return pa.table(columns).replace_schema_metadata({PARQUET_KEY: json.dumps(meta).encode()})


def _write_parquet(path: Path, blocks: Iterator[_Block], meta: dict[str, Any]) -> None:
    """The blocks into one Parquet file at ``path``, a row group each, as they come."""
    import pyarrow.parquet as pq

    writer = None
    try:
        for block in blocks:
            table = _table(block, meta)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no sample at all: an empty table
        import pyarrow as pa

        pq.write_table(pa.table({"id": pa.array([], pa.string())}).replace_schema_metadata({PARQUET_KEY: b"{}"}), path)


def _write_shards(out: Path, blocks: Iterator[_Block], meta: dict[str, Any]) -> tuple[int, int]:
    """The blocks into ``out/part-00000.parquet``, ... (one per block) and ``out/_embeddings.json``: written into a
    temporary folder beside ``out``, moved into place when complete (an earlier folder of selfsup's shards
    replaced only then). Returns the embeddings' shape."""
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        rows, dim, count = 0, 0, 0
        for count, block in enumerate(blocks, start=1):
            pq.write_table(_table(block, meta), staging / f"part-{count - 1:05d}.parquet")
            rows, dim = rows + len(block.emb), int(block.emb.shape[1])
        description = meta | {"shape": [rows, dim], "parts": count}
        (staging / SHARDS_DESCRIPTION).write_text(json.dumps(description, indent=1))
        if out.is_dir() and any(out.iterdir()):  # selfsup's shards (checked before any work), with --overwrite
            os.replace(out, old)
        os.replace(staging, out)
        return rows, dim
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def export_encoder(
    run: str | Path,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    overwrite: bool = False,
    format: str = "selfsup",
    check_data: str | None = None,
) -> Path:
    """Write ``encoder.safetensors`` + ``selfsup.json`` to ``out`` from a run's export or a training checkpoint.
    ``out`` is new or empty, or with ``overwrite`` an earlier export or run (only its files are replaced). LoRA
    adapters (``--adapter lora``) are folded into the encoder's weights; a run's export also keeps them apart
    (``adapter.safetensors``, ``adapter.json``), copied along.

    ``format`` ``hf``, ``timm``, ``onnx`` or ``torchscript`` writes that format instead (``workflows.formats``),
    read back by its library and compared with the encoder on samples of ``check_data`` (default: the run's
    data) before it is kept; ``export.json`` beside it records the files and the largest difference."""
    if format == "selfsup" and check_data is not None:
        raise SelfsupError("--check-data checks exports in other formats; --format selfsup copies the encoder's files.")
    if format != "selfsup":
        return _export_as(format, run, out, checkpoint=checkpoint, overwrite=overwrite, check_data=check_data)
    out = check_output_folder(out, RUN, overwrite=overwrite)
    if Path(run).exists() and out.exists() and out.resolve() == _folder_of(run).resolve():
        raise SelfsupError(f"--out '{out}' is the run itself; export to another folder.")
    meta = read_meta(run)
    method: dict[str, torch.Tensor] | None = None  # the method's own tensors (--init-parts), where the run has them
    if checkpoint is None:  # load_encoder reads its preprocessing
        encoder = load_encoder(run, allow_pair=True)
        saved = _folder_of(run) / METHOD_WEIGHTS
        method = load_file(str(saved)) if saved.is_file() else None
    else:
        encoder, method = _from_checkpoint(meta, checkpoint)
        encoder.preprocessing = read_preprocessing(run, meta["encoder"])  # a pair's: both sides', from its root
    if isinstance(encoder, PairEncoder):
        _older_sides(encoder, _folder_of(run), meta["encoder"])
    with folder_lock(out):
        if overwrite:
            clear_output_folder(out, RUN)
        save_encoder(encoder, out, meta.get("recipe"))
        if method is not None:
            save_method_state(method, out)
        for name in (ADAPTER_WEIGHTS, ADAPTER_META) if checkpoint is None else ():
            if (_folder_of(run) / name).is_file():
                write_atomic(out / name, (_folder_of(run) / name).read_bytes())
        if meta["modality"] == "pairs":  # and each side, as the run writes them
            from selfsup.training.pairs import export_sides

            assert isinstance(encoder, PairEncoder)  # what a pair's selfsup.json builds
            export_sides(encoder, out, meta.get("recipe") or {})
    return out


def _folder_of(run: str | Path) -> Path:
    run = Path(run)
    return run if run.is_dir() else run.parent


def _older_sides(encoder: PairEncoder, run: Path, saved: dict) -> None:
    """Sides without preprocessing (a pair whose root predates holding both sides'): each side's own folder's,
    else what its encoder config as saved (``saved``) carried."""
    for side, key, name in zip((encoder.a, encoder.b), ("a", "b"), side_names(encoder.config)):
        if side.preprocessing is None:
            folder = run / name
            side.preprocessing = (
                read_preprocessing(folder, saved[key]) if folder.is_dir() else Preprocessing.from_old_config(saved[key])
            )


def _from_checkpoint(meta: dict, checkpoint: str | Path) -> tuple[Encoder, dict[str, torch.Tensor]]:
    """The encoder ``meta`` describes, with the weights of a run's Lightning checkpoint, and the method's own
    tensors there (as ``Method.own_state`` names them)."""
    encoder = build_encoder(meta["encoder"])
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:
        # not a Lightning checkpoint, or corrupted; torch's own message runs over many lines
        first = first_line(err)
        raise SelfsupError(f"cannot read training checkpoint '{checkpoint}': {first}") from err
    recipe = meta.get("recipe") or {}
    scale = (recipe.get("lora_alpha") or recipe.get("lora_rank") or 1) / (recipe.get("lora_rank") or 1)
    state = merged_state(state, scale)  # a run with --adapter lora: its adapters folded in
    prefix = "method.encoder."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        missing, unexpected = encoder.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # shape mismatch: a checkpoint of another run
        raise SelfsupError(
            f"checkpoint '{checkpoint}' does not hold this run's encoder: {str(err).strip().splitlines()[-1].strip()}"
        ) from err
    if missing or unexpected or not weights:
        raise SelfsupError(
            f"checkpoint '{checkpoint}' does not hold this run's encoder "
            f"({len(missing)} missing, {len(unexpected)} unexpected weights)."
        )
    method = {k[len("method.") :]: v for k, v in state.items() if k.startswith("method.")}
    return encoder, own_tensors(method, "encoder.")


def _export_as(
    fmt: str,
    run: str | Path,
    out: str | Path,
    *,
    checkpoint: str | Path | None,
    overwrite: bool,
    check_data: str | None,
) -> Path:
    """``export_encoder`` in another format: refusals first, then the files written beside ``out``, read back
    by the format's library and compared on samples, and only then moved into ``out`` (``--overwrite``: in place
    of the files an earlier export there lists)."""
    if fmt not in formats.FORMATS:
        raise unknown_name("export format", fmt, formats.FORMATS)
    out = check_output_folder(out, formats.EXPORT, overwrite=overwrite)
    if Path(run).exists() and out.exists() and out.resolve() == _folder_of(run).resolve():
        raise SelfsupError(f"--out '{out}' is the run itself; export to another folder.")
    meta = read_meta(run)
    formats.check_format(fmt, meta["encoder"], _folder_of(run))
    if checkpoint is None:
        encoder = load_encoder(run)
    else:
        encoder = _from_checkpoint(meta, checkpoint)[0]
        encoder.preprocessing = read_preprocessing(run, meta["encoder"])
    encoder.eval()
    if fmt == "timm":
        formats.check_timm(encoder)
    samples, source = _check_samples(encoder, meta.get("recipe") or {}, check_data)
    x = formats.inputs(encoder, samples)
    with folder_lock(out):
        with staging(out) as tmp, torch.no_grad():
            formats.write(fmt, encoder, tmp, x[:2])
            if fmt in ("hf", "timm"):  # Hub folders: a model card
                card = model_card(fmt, encoder, meta, _folder_of(run), checkpoint)
                (tmp / "README.md").write_text(card)
            diff = _compare(encoder, formats.LOADERS[fmt](tmp, encoder), x, fmt)
            files = move_outputs(tmp, out, formats.written_by(out) if overwrite else None)
        record = {
            "format": EXPORT_FORMAT,
            "export_format": fmt,
            "run": str(run),
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "files": files,
            "modality": encoder.config["modality"],
            "embed_dim": int(encoder.embed_dim),
            "input": {"shape": [None, *x.shape[1:]], "dtype": str(x.dtype).removeprefix("torch.")},
            "check": {"with": formats.CHECKED_WITH[fmt], "data": source, "samples": len(x), "max_abs_diff": diff},
            "selfsup": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_atomic(out / formats.RECORD, json.dumps(record, indent=1))
    return out


def _run_data(recipe: dict, encoder: Encoder) -> tuple[str | None, DataOptions]:
    """The run's data and how it was read; for a side of a paired run whose modality is the pair's other
    source's, that source."""
    names = {field.name for field in dataclasses.fields(DataOptions)}
    given: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items() if k in names and v is not None
    }
    options, source = DataOptions(**given), recipe.get("data")
    if source and recipe.get("pair_data") and source_modality(source, options) != encoder.config["modality"]:
        return recipe["pair_data"], DataOptions(text_field=recipe.get("pair_text_field"))
    return source, options


def _check_samples(encoder: Encoder, recipe: dict, check_data: str | None) -> tuple[torch.Tensor, str]:
    """The first ``formats.CHECK_SAMPLES`` training samples of ``check_data`` (default: the run's data), read
    as the encoder reads data, and where they came from."""
    source, options = (check_data, DataOptions()) if check_data is not None else _run_data(recipe, encoder)
    if not source:
        raise SelfsupError("the run records no data to check the export on; pass --check-data with data like its own.")
    try:
        splits = load_data(source, options, preprocessing=preprocessing_of(encoder))
        check_fits(encoder, splits)
    except SelfsupError as err:
        raise SelfsupError(
            f"cannot read samples from '{source}' to check the export on: {str(err).rstrip('.')}; "
            "pass --check-data with data like the encoder's."
        ) from err
    first = splits.train.subset(list(range(min(formats.CHECK_SAMPLES, len(splits.train)))))
    return (first.in_memory() if isinstance(first, LazyDataset) else first).float_samples(), source


def _compare(encoder: Encoder, loaded: formats.Loader, x: torch.Tensor, fmt: str) -> float:
    """The largest absolute difference between the encoder's embeddings of ``x`` and the export's (read back by
    its library); an export beyond ``formats.TOLERANCE`` is refused."""
    expected = encoder(x).float()
    try:
        got = loaded(x).float()
    except Exception as err:  # e.g. a traced size that was fixed at export: nothing is kept
        raise SelfsupError(
            f"the {fmt} export of the {encoder.config['modality']} encoder '{encoder.config.get('name')}' fails on "
            f"a batch of {len(x)}: {formats.clean(first_line(err))}; nothing was written. Use --format hf."
        ) from err
    if got.shape != expected.shape:
        raise SelfsupError(
            f"the {fmt} export gives embeddings of shape {tuple(got.shape)}, not {tuple(expected.shape)}; "
            "nothing was written. Please report this."
        )
    diff = float((got - expected).abs().max()) if len(x) else 0.0
    limit = formats.TOLERANCE * max(1.0, float(expected.abs().max()) if len(x) else 1.0)
    if not diff <= limit:  # NaN too
        raise SelfsupError(
            f"the {fmt} export differs from the encoder by up to {diff:.3g} on {len(x)} samples (more than "
            f"{limit:.3g}); nothing was written. Please report this."
        )
    return diff
