"""Use the result: write embeddings to disk, export an encoder from a run or a training checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

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
from selfsup.data import UNLABELED, DataOptions, Preprocessing
from selfsup.encoders import Encoder, build_encoder, preprocessing_of
from selfsup.encoders.pair import PairEncoder, side_names
from selfsup.errors import SelfsupError, first_line, unknown_name
from selfsup.evaluation.embed import embed
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
    part = splits.train
    return part.subset(list(range(min(formats.CHECK_SAMPLES, len(part))))).float_samples(), source


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
