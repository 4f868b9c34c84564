"""Use the result: write embeddings to disk, export an encoder from a run or a training checkpoint."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from safetensors.torch import load_file

from selfsup.checkpoint import (
    METHOD_WEIGHTS,
    load_encoder,
    own_tensors,
    read_meta,
    read_preprocessing,
    save_encoder,
    save_method_state,
)
from selfsup.data import UNLABELED, DataOptions, Preprocessing
from selfsup.encoders import Encoder, build_encoder, preprocessing_of
from selfsup.encoders.pair import PairEncoder, side_names
from selfsup.errors import SelfsupError, first_line
from selfsup.evaluation.embed import embed
from selfsup.files import write_atomic
from selfsup.modalities import check_fits
from selfsup.outputs import RUN, check_output_file, check_output_folder, clear_output_folder, folder_lock
from selfsup.sources import load_data
from selfsup.training.adapters import ADAPTER_META, ADAPTER_WEIGHTS, merged_state

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


def write_embeddings(
    encoder_path: str | Path,
    data: str,
    out: str | Path,
    *,
    options: DataOptions | None = None,
    overwrite: bool = False,
    batch_size: int = 512,
    progress: bool = False,
) -> Path:
    """Embed every sample of ``data`` (train split, then test split if any) into ``.npy`` or ``.parquet``.

    The data is read the way the encoder was trained (a table with its saved schema). Parquet rows
    carry the sample id, the split, the label (if any) and one ``e{i}`` column per dimension.
    """
    out = Path(out)
    if out.suffix not in EMBEDDING_FORMATS:
        raise SelfsupError(f"cannot write embeddings to '{out}': use a .npy or .parquet file name.")
    check_output_file(out, "embeddings", is_embeddings, overwrite=overwrite)
    if out.suffix == ".npy":  # its description too: a user's file of that name is never replaced
        check_output_file(npy_description(out), "embeddings description", _is_description, overwrite=True)
    encoder = load_encoder(encoder_path)
    splits = load_data(data, options, preprocessing=preprocessing_of(encoder))
    check_fits(encoder, splits)
    parts = [("train", splits.train)] + ([("test", splits.test)] if splits.test is not None else [])
    emb = np.concatenate(
        [embed(encoder, part.float_samples(), batch_size=batch_size, progress=progress) for _, part in parts]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # a name of our own beside it (never a user's file), replaced in one step, removed on any failure
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            if out.suffix == ".npy":
                np.save(f, emb.astype(np.float32, copy=False))
            else:
                _write_parquet(f, emb, parts, splits.train.classes, str(encoder_path))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    if out.suffix == ".npy":
        write_atomic(
            npy_description(out),
            json.dumps(
                {"format": EMBEDDINGS_FORMAT, "encoder": str(encoder_path), "data": data, "shape": list(emb.shape)},
                indent=1,
            ),
        )
    return out


def _write_parquet(f: BinaryIO, emb: np.ndarray, parts: list, classes: list[str] | None, encoder: str) -> None:
    """Rows of id, split, label (if any) and ``e{i}`` columns, with selfsup's key in the schema metadata."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
    frame.insert(0, "split", [name for name, part in parts for _ in range(len(part))])
    frame.insert(0, "id", [i for _, part in parts for i in part.ids])
    labels = torch.cat([part.y for _, part in parts]).numpy()
    if classes and (labels != UNLABELED).any():
        frame.insert(2, "label", [classes[i] if i != UNLABELED else None for i in labels])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = json.dumps({"format": "selfsup-embeddings", "encoder": encoder}).encode()
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KEY: meta}), f)


def export_encoder(
    run: str | Path, out: str | Path, *, checkpoint: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Write ``encoder.safetensors`` + ``selfsup.json`` to ``out`` from a run's export or a training checkpoint.
    ``out`` is new or empty, or with ``overwrite`` an earlier export or run (only its files are replaced). LoRA
    adapters (``--adapter lora``) are folded into the encoder's weights; a run's export also keeps them apart
    (``adapter.safetensors``, ``adapter.json``), copied along."""
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
