"""Save and load encoders as ``encoder.safetensors`` + ``selfsup.json`` (+ ``preprocessing.json``, how raw files
become the encoder's input): no pickle, no code execution."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from selfsup import __version__
from selfsup.data import Preprocessing
from selfsup.encoders import Encoder, build_encoder
from selfsup.errors import SelfsupError, first_line
from selfsup.files import write_atomic

WEIGHTS = "encoder.safetensors"
META = "selfsup.json"
PREPROCESSING = "preprocessing.json"
METHOD_WEIGHTS = "method.safetensors"  # a run's method beside its encoder: heads, teacher, centres, decoder
CLASSIFIER = "classifier.safetensors"  # a linear head beside its encoder (self-training's student); classes in META
FORMAT = "selfsup-encoder"
# 2: ft_transformer and patch_transformer became token transformers (issue 4); their version-1 weights
# have other parameter names
FORMAT_VERSION = 2
RENAMED_IN_VERSION_2 = ("ft_transformer", "patch_transformer")


def versions() -> dict[str, str]:
    """The versions a result depends on, recorded in checkpoints and reports."""
    import platform
    from importlib.metadata import version

    import numpy
    import sklearn

    return {
        "selfsup": __version__,
        "torch": torch.__version__,
        "timm": version("timm"),  # not 'import timm': seconds spent loading every model it knows
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def encoder_meta(
    encoder: Encoder, recipe: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``selfsup.json`` content describing an encoder: enough to rebuild it without code from the run.
    ``extra``: more to record (a paired side's ``paired_with``: its partner's folder, relative to its own)."""
    return (extra or {}) | {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "modality": encoder.config["modality"],
        "encoder": encoder.config,
        "embed_dim": int(encoder.embed_dim),
        "recipe": recipe,
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_meta(
    encoder: Encoder, out_dir: str | Path, recipe: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> None:
    """Write ``selfsup.json`` and the encoder's ``preprocessing.json`` but not its weights (a run does this at its
    start, so a killed run can still be exported)."""
    if encoder.preprocessing is not None:
        write_atomic(Path(out_dir) / PREPROCESSING, json.dumps(encoder.preprocessing.as_dict(), indent=1))
    write_atomic(Path(out_dir) / META, json.dumps(encoder_meta(encoder, recipe, extra), indent=2))


def read_preprocessing(path: str | Path, encoder_config: dict[str, Any], side: str | None = None) -> Preprocessing:
    """The preprocessing saved beside an encoder (``side`` "a" or "b": that side's, from a paired run's root);
    an export written before ``preprocessing.json`` existed gets the one its encoder config carried then."""
    file = _folder(path) / PREPROCESSING
    if not file.is_file():
        return Preprocessing.from_old_config(encoder_config)
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SelfsupError(f"'{file}' is not valid JSON ({err}); the export is corrupted.") from err
    preprocessing = Preprocessing.from_dict(data, str(file))
    if side is not None and side in preprocessing.settings:
        preprocessing = Preprocessing.from_dict(preprocessing.settings[side], f"{file} (side {side})")
    if preprocessing.modality != encoder_config.get("modality"):
        raise SelfsupError(
            f"'{file}' describes {preprocessing.modality} data but the encoder beside it is "
            f"{encoder_config.get('modality')}; the export is mixed up: export the run again."
        )
    return preprocessing


def save_tensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``state`` (detached, on the CPU) as safetensors to ``path`` via ``path.tmp`` + ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), metadata={"format": FORMAT})
    os.replace(tmp, path)


def save_encoder(
    encoder: Encoder, out_dir: str | Path, recipe: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write the encoder's weights and description into ``out_dir`` (each file atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(encoder.state_dict(), out / WEIGHTS)
    write_meta(encoder, out, recipe, extra)
    return out


def own_tensors(state: dict[str, torch.Tensor], encoder_prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of a method's ``state`` outside its encoder's (``encoder_prefix``), each storage once: one tied to
    an encoder tensor or to one listed before it (an MLM decoder tied to the word embeddings) is left out, since
    loading the one it is tied to loads it."""
    seen = {v.untyped_storage().data_ptr() for k, v in state.items() if k.startswith(encoder_prefix) and v.numel()}
    own = {}
    for name, value in state.items():
        if name.startswith(encoder_prefix):
            continue
        if value.numel():
            where = value.untyped_storage().data_ptr()
            if where in seen:
                continue
            seen.add(where)
        own[name] = value
    return own


def save_method_state(state: dict[str, Any], out_dir: str | Path) -> None:
    """Write a method's own tensors (all but its encoder's: ``Method.own_state``) beside the encoder, atomically, so
    that continued pre-training with the same method carries its heads, teacher and centres (``--init-parts``)."""
    save_tensors(state, Path(out_dir) / METHOD_WEIGHTS)


def _folder(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise SelfsupError(f"encoder '{path}' does not exist; pass a run folder or its {WEIGHTS}.")
    return path if path.is_dir() else path.parent


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``selfsup.json`` description of an exported encoder."""
    meta_path = _folder(path) / META
    if not meta_path.is_file():
        raise SelfsupError(f"'{meta_path.parent}' holds no {META}; pass a selfsup run folder or export.")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SelfsupError(f"'{meta_path}' is not valid JSON ({err}); the export is corrupted.") from err
    if meta.get("format") != FORMAT or "encoder" not in meta:
        raise SelfsupError(f"'{meta_path}' is not a selfsup encoder description.")
    return meta


def load_encoder(path: str | Path, expect_modality: str | None = None, allow_pair: bool = False) -> Encoder:
    """Rebuild an exported encoder (run folder, its ``encoder.safetensors`` or ``selfsup.json``), in eval mode.
    A paired run's root (both sides) is refused, naming the sides, unless ``allow_pair``."""
    meta = read_meta(path)
    if meta["modality"] == "pairs" and not allow_pair:
        from selfsup.encoders.pair import side_names

        a, b = (_folder(path) / name for name in side_names(meta["encoder"]))
        if not (a / WEIGHTS).is_file():
            raise SelfsupError(
                f"'{_folder(path)}' is a paired run that has not written its sides yet; export them "
                f"with 'selfsup export --run {_folder(path)} --checkpoint "
                f"{_folder(path) / 'checkpoints' / 'last.ckpt'} --out DIR'."
            )
        raise SelfsupError(
            f"'{_folder(path)}' holds a pair of encoders trained together; pass one side: '{a}' or '{b}'."
        )
    weights = _folder(path) / WEIGHTS
    if not weights.is_file():
        raise SelfsupError(
            f"'{weights.parent}' holds no {WEIGHTS} (an unfinished run?); "
            "run 'selfsup export --run RUN --checkpoint RUN/checkpoints/last.ckpt --out DIR' to export its last checkpoint."
        )
    if expect_modality and meta["modality"] != expect_modality:
        raise SelfsupError(
            f"encoder '{path}' was trained on {meta['modality']} data but the data is {expect_modality}."
        )
    if meta.get("format_version", 1) < 2 and meta["encoder"].get("name") in RENAMED_IN_VERSION_2:
        raise SelfsupError(
            f"encoder '{path}' is a {meta['encoder']['name']} saved by an older selfsup "
            f"(format {meta.get('format_version', 1)}), whose weights this version cannot read; "
            "pre-train it again."
        )
    try:
        encoder = build_encoder(meta["encoder"])
    except (KeyError, TypeError, ValueError) as err:  # a hand-edited or truncated encoder description
        raise SelfsupError(
            f"the encoder described in '{_folder(path) / META}' cannot be built: {type(err).__name__}: {err}."
        ) from err
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise SelfsupError(f"cannot read weights '{weights}': {err}. The file is corrupted or truncated.") from err
    try:
        result = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch
        first = str(err).strip().splitlines()[-1].strip()
        raise SelfsupError(f"weights '{weights}' do not fit the encoder in selfsup.json: {first}") from err
    if result.missing_keys or result.unexpected_keys:
        raise SelfsupError(
            f"weights '{weights}' do not fit the encoder described in selfsup.json: "
            f"{len(result.missing_keys)} missing, {len(result.unexpected_keys)} unexpected keys "
            f"(first: {(result.missing_keys + result.unexpected_keys)[0]})."
        )
    encoder.preprocessing = read_preprocessing(path, meta["encoder"])
    return encoder.eval()


def save_classifier(
    model: torch.nn.Sequential, classes: list[str], out_dir: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (an encoder followed by a linear head, as fine-tuning builds it) into ``out_dir``: the encoder
    as an ordinary export (``load_encoder`` reads it) and the head beside it (``load_classifier`` reads both), its
    class names in ``selfsup.json``; each file atomically."""
    encoder, head = model[0], model[1]
    if not isinstance(encoder, Encoder) or not isinstance(head, torch.nn.Linear) or head.out_features != len(classes):
        raise ValueError(f"expected an encoder and a linear head of {len(classes)} classes, got {head}")
    out = save_encoder(encoder, out_dir, extra=(extra or {}) | {"classifier": {"file": CLASSIFIER, "classes": classes}})
    save_tensors(head.state_dict(), out / CLASSIFIER)
    return out


def load_classifier(path: str | Path) -> tuple[torch.nn.Sequential, list[str]]:
    """An encoder and its linear head saved by :func:`save_classifier`, in eval mode, and the head's class names."""
    meta = read_meta(path)
    described = meta.get("classifier")
    head_file = _folder(path) / CLASSIFIER
    if not isinstance(described, dict) or not head_file.is_file():
        raise SelfsupError(
            f"'{_folder(path)}' holds an encoder but no classifier ({CLASSIFIER}); load it with "
            "selfsup.load_encoder, or pass a self-training student's folder."
        )
    encoder = load_encoder(path)
    try:
        state = load_file(str(head_file))
    except (SafetensorError, OSError) as err:
        raise SelfsupError(f"cannot read '{head_file}': {err}; the export is corrupted.") from err
    classes = [str(name) for name in described["classes"]]
    head = torch.nn.Linear(encoder.embed_dim, len(classes))
    try:
        head.load_state_dict(state)
    except RuntimeError as err:
        raise SelfsupError(f"'{head_file}' does not fit the encoder beside it ({first_line(err)}).") from None
    return torch.nn.Sequential(encoder, head).eval(), classes
