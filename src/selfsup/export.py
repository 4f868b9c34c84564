"""Use the result: write embeddings to disk, export an encoder from a run or a training checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from selfsup.checkpoint import load_encoder, read_meta, save_encoder
from selfsup.data import UNLABELED, DataOptions
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.embed import embed
from selfsup.evaluation.evaluate import check_fits
from selfsup.modalities import load_data

EMBEDDING_FORMATS = (".npy", ".parquet")


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise SelfsupError(f"'{path}' already exists; pass --overwrite to replace it or choose another path.")


def write_embeddings(encoder_path: str | Path, data: str, out: str | Path, *, options: DataOptions | None = None,
                     overwrite: bool = False, batch_size: int = 512, progress: bool = False) -> Path:
    """Embed every sample of ``data`` (train split, then test split if any) into ``.npy`` or ``.parquet``.

    The data is read the way the encoder was trained (a table with its saved schema). Parquet rows
    carry the sample id, the split, the label (if any) and one ``e{i}`` column per dimension.
    """
    out = Path(out)
    if out.suffix not in EMBEDDING_FORMATS:
        raise SelfsupError(f"cannot write embeddings to '{out}': use a .npy or .parquet file name.")
    _refuse_existing(out, overwrite)
    encoder = load_encoder(encoder_path)
    splits = load_data(data, options, encoder_config=encoder.config)
    check_fits(encoder, splits)
    parts = [("train", splits.train)] + ([("test", splits.test)] if splits.test is not None else [])
    emb = np.concatenate([embed(encoder, part.float_samples(), batch_size=batch_size, progress=progress)
                          for _, part in parts])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if out.suffix == ".npy":
        with tmp.open("wb") as f:
            np.save(f, emb)
    else:
        import pandas as pd

        frame = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
        frame.insert(0, "split", [name for name, part in parts for _ in range(len(part))])
        frame.insert(0, "id", [i for _, part in parts for i in part.ids])
        labels = torch.cat([part.y for _, part in parts]).numpy()
        classes = splits.train.classes
        if classes and (labels != UNLABELED).any():
            frame.insert(2, "label", [classes[i] if i != UNLABELED else None for i in labels])
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return out


def export_encoder(run: str | Path, out: str | Path, *, checkpoint: str | Path | None = None,
                   overwrite: bool = False) -> Path:
    """Write ``encoder.safetensors`` + ``selfsup.json`` to ``out`` from a run's export or a training checkpoint."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SelfsupError(f"'{out}' is a file; --out must be a folder.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SelfsupError(f"'{out}' already holds files; pass --overwrite or choose another --out.")
    meta = read_meta(run)
    encoder = load_encoder(run, allow_pair=True) if checkpoint is None else _from_checkpoint(meta, checkpoint)
    save_encoder(encoder, out, meta.get("recipe"))
    if meta["modality"] == "pairs":  # and each side, as the run writes them
        from selfsup.training.pairs import export_sides

        export_sides(encoder, out, meta.get("recipe"))
    return out


def _from_checkpoint(meta: dict, checkpoint: str | Path) -> torch.nn.Module:
    """The encoder ``meta`` describes, with the weights of a run's Lightning checkpoint."""
    encoder = build_encoder(meta["encoder"])
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # noqa: BLE001 - garbage makes the (weights-only) unpickler raise almost anything
        # not a Lightning checkpoint, or corrupted; torch's own message runs over many lines
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SelfsupError(f"cannot read training checkpoint '{checkpoint}': {first}") from err
    prefix = "method.encoder."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        missing, unexpected = encoder.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # shape mismatch: a checkpoint of another run
        raise SelfsupError(f"checkpoint '{checkpoint}' does not hold this run's encoder: "
                           f"{str(err).strip().splitlines()[-1].strip()}") from err
    if missing or unexpected or not weights:
        raise SelfsupError(f"checkpoint '{checkpoint}' does not hold this run's encoder "
                           f"({len(missing)} missing, {len(unexpected)} unexpected weights).")
    return encoder
