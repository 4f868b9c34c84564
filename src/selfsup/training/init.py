"""Start pre-training from existing weights (``--init SOURCE``): continued pre-training.

A SOURCE is one of:

- a selfsup export or run folder (``selfsup.json`` + ``encoder.safetensors``): its encoder config is
  used as is (architecture and input normalisation), and every tensor must fit;
- a weights file: ``.safetensors``, or ``.pth``/``.pt``/``.bin``/``.ckpt`` read with
  ``torch.load(weights_only=True)`` (a pickle that would run code is refused); a dict holding the
  tensors under ``state_dict``/``model``/``encoder`` is unwrapped;
- a local Hugging Face-style model folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``), as timm models are published; its ``architecture`` names the timm encoder
  when ``--encoder`` is not given.

Key names are matched by trying the usual wrappers (``module.``, ``model.``, ``backbone.``,
``encoder.``, ...) on both sides and keeping the mapping that fits the most tensors; what loaded,
what is missing, unexpected or of another shape is reported as one table, never silently ignored.

Two tensors of another shape are adapted the usual way, and reported as adapted: the first layer's kernel
for another input channel count (an RGB checkpoint on grey or multi-band data: :func:`adapt_input_conv`),
and a ViT's absolute position embeddings for another grid of patches (another image size:
:func:`resample_pos_embed`). The input statistics (``mean``/``std``) of another channel count stay as fitted
on the data.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from selfsup.checkpoint import META, METHOD_WEIGHTS, RENAMED_IN_VERSION_2, WEIGHTS, read_meta
from selfsup.errors import SelfsupError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# wrappers around an encoder's tensor names in other tools' checkpoints (DDP, Lightning, timm, ours)
PREFIXES = ("", "module.", "model.", "backbone.", "encoder.", "method.encoder.", "state_dict.", "_orig_mod.")
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
MIN_LOADED_SHARE = 0.5  # of the encoder's parameter elements: below it the checkpoint is another architecture
STATISTICS = ("mean", "std")  # input statistics fitted on the data, never in another tool's checkpoint


@dataclass
class InitSource:
    """Tensors read from a SOURCE, and what it says about the encoder (None when it says nothing)."""

    path: Path
    state: dict[str, torch.Tensor]
    encoder_config: dict[str, Any] | None = None  # a selfsup export: the config to build
    architecture: str | None = None  # a Hugging Face-style folder: the timm model name
    method: str | None = None  # a selfsup run: the method it trained with
    method_state: dict[str, torch.Tensor] | None = None  # and that method's own tensors, if the run saved them


@dataclass
class InitReport:
    """How a SOURCE's tensors matched the encoder's."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # encoder tensors the SOURCE did not give (kept as built)
    unexpected: list[str] = field(default_factory=list)  # SOURCE tensors with no place in the encoder
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, source shape, encoder shape)
    adapted: list[tuple[str, str]] = field(default_factory=list)  # (name, how: "3 -> 6 channels"), loaded so
    mapping: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "adapted": [[n, how] for n, how in self.adapted],
            "missing": self.missing,
            "unexpected": self.unexpected,
            "shape_mismatch": [[n, list(a), list(b)] for n, a, b in self.mismatched],
            "mapping": self.mapping,
        }


def _torch_file(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():  # a class or function to import: that is code, not weights
            raise SelfsupError(
                f"'{path}' holds objects that only code execution could rebuild; selfsup loads "
                "weights only (save a state_dict, or convert it to .safetensors)."
            ) from err
        raise SelfsupError(
            f"cannot read '{path}' as PyTorch weights; the file is corrupted or not a checkpoint."
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise SelfsupError(
            f"cannot read '{path}' as PyTorch weights ({str(err).splitlines()[0]}); "
            "the file is corrupted or not a checkpoint."
        ) from err
    for key in ("state_dict", "model", "encoder"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise SelfsupError(f"'{path}' holds a {type(obj).__name__}, not a dict of named tensors (a state_dict).")
    return obj


def _safetensors_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise SelfsupError(f"cannot read weights '{path}': {err}. The file is corrupted or truncated.") from err


def read_init(source: str | Path) -> InitSource:
    """The tensors (and any encoder description) of an ``--init`` SOURCE; see the module docstring."""
    path = Path(source)
    if not path.exists():
        raise SelfsupError(
            f"--init '{source}' does not exist; pass a selfsup run or export folder, a .safetensors/"
            ".pth file, or a local model folder."
        )
    if path.is_dir() and (path / META).is_file():
        meta = read_meta(path)
        if not (path / WEIGHTS).is_file():
            raise SelfsupError(
                f"'{path}' holds no {WEIGHTS} (an unfinished run?); export its last checkpoint with "
                "'selfsup export' and pass that."
            )
        if meta.get("format_version", 1) < 2 and meta["encoder"].get("name") in RENAMED_IN_VERSION_2:
            raise SelfsupError(
                f"'{path}' is a {meta['encoder']['name']} saved by an older selfsup, whose weights "
                "this version cannot read; pre-train it again."
            )
        recipe = meta.get("recipe")
        recipe = recipe if isinstance(recipe, dict) else {}  # exports of hand-built encoders have none
        method_file = path / METHOD_WEIGHTS
        return InitSource(
            path,
            _safetensors_file(path / WEIGHTS),
            encoder_config=meta["encoder"],
            method=recipe.get("method"),
            method_state=_safetensors_file(method_file) if method_file.is_file() else None,
        )
    if path.is_dir():
        weights = next((path / name for name in HF_WEIGHTS if (path / name).is_file()), None)
        if weights is None or not (path / "config.json").is_file():
            raise SelfsupError(
                f"--init folder '{source}' is neither a selfsup run/export ({META}) nor a model folder "
                f"(config.json + {' or '.join(HF_WEIGHTS)})."
            )
        try:
            config = json.loads((path / "config.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SelfsupError(f"'{path / 'config.json'}' is not valid JSON ({err}).") from err
        state = _safetensors_file(weights) if weights.suffix == ".safetensors" else _torch_file(weights)
        return InitSource(path, state, architecture=config.get("architecture") if isinstance(config, dict) else None)
    if path.suffix == ".safetensors":
        state = _safetensors_file(path)
    elif path.suffix in TORCH_SUFFIXES:
        state = _torch_file(path)
    else:
        raise SelfsupError(
            f"--init '{source}': unknown weights format '{path.suffix}'; use .safetensors, "
            f"{', '.join(TORCH_SUFFIXES)}, or a folder."
        )
    return InitSource(path, state)


def _tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _is_statistic(name: str) -> bool:
    return name.rpartition(".")[2] in STATISTICS


def adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A first-layer kernel ``(O, C, kH, kW)`` for ``channels`` inputs, as timm's ``adapt_input_conv`` does for
    RGB (``timm.models._manipulate``), for any C: one channel takes the sum of the C filters; more channels
    repeat them cyclically and scale by C / channels, so that a constant image gives the same output (exactly
    when ``channels`` is a multiple of C)."""
    source = weight.shape[1]
    if channels == 1:
        return weight.float().sum(dim=1, keepdim=True).to(weight.dtype)
    repeat = math.ceil(channels / source)
    return (weight.float().repeat(1, repeat, 1, 1)[:, :channels] * (source / channels)).to(weight.dtype)


def resample_pos_embed(pos_embed: torch.Tensor, tokens: int, prefix: int) -> torch.Tensor | None:
    """Absolute position embeddings ``(1, prefix + n, D)`` of a square grid resampled to ``tokens - prefix``
    patches (bicubic, antialiased: timm's ``resample_abs_pos_embed``), the ``prefix`` (class, register) tokens
    kept; None when either grid is not square."""
    from timm.layers import resample_abs_pos_embed

    if min(pos_embed.shape[1], tokens) <= prefix:
        return None
    old, new = math.isqrt(pos_embed.shape[1] - prefix), math.isqrt(tokens - prefix)
    if old * old != pos_embed.shape[1] - prefix or new * new != tokens - prefix:
        return None
    return resample_abs_pos_embed(pos_embed, [new, new], [old, old], num_prefix_tokens=prefix)


def _input_conv(encoder: nn.Module) -> str | None:
    """The name of the encoder's first-layer kernel: its first 2-D convolution taking the input channels."""
    channels = getattr(encoder, "config", {}).get("in_chans")
    for name, module in encoder.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == channels:
            return f"{name}.weight" if name else "weight"
    return None


def _adapted(encoder: nn.Module, name: str, value: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, str] | None:
    """``value`` made to fit the encoder's tensor ``name`` of ``shape`` (module docstring), and how; None when
    it cannot be."""
    if value.ndim == 4 and value.shape[0] == shape[0] and value.shape[2:] == shape[2:] and name == _input_conv(encoder):
        return adapt_input_conv(value, shape[1]), f"{value.shape[1]} -> {shape[1]} channels"
    if name.rpartition(".")[2] == "pos_embed" and value.ndim == 3 and value.shape[::2] == shape[::2]:
        owner = encoder.get_submodule(name.rpartition(".")[0])
        prefix = 0 if getattr(owner, "no_embed_class", False) else int(getattr(owner, "num_prefix_tokens", 1))
        resampled = resample_pos_embed(value, shape[1], prefix)
        if resampled is not None:
            old, new = math.isqrt(value.shape[1] - prefix), math.isqrt(shape[1] - prefix)
            return resampled, f"{old}x{old} -> {new}x{new} patches"
    return None


def match_state(encoder: nn.Module, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], InitReport]:
    """Map SOURCE tensor names onto the encoder's: strip one wrapper prefix from the SOURCE names and add
    one to them, keeping the pair that fits the most tensors by name and shape."""
    target = encoder.state_dict()
    source = _tensors(state)
    best: tuple[int, int, str, str] = (-1, -1, "", "")
    for strip in PREFIXES:
        stripped = {k[len(strip) :] for k in source if k.startswith(strip)}
        for add in PREFIXES:
            names = {add + k for k in stripped} & set(target)
            fits = sum(source[strip + n[len(add) :]].shape == target[n].shape for n in names)
            if (fits, len(names)) > best[:2]:
                best = (fits, len(names), strip, add)
    _, _, strip, add = best
    report = InitReport(mapping=f"'{strip}*' -> '{add}*'" if strip or add else "names as they are")
    mapped: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        name = add + key[len(strip) :] if key.startswith(strip) else None
        if name not in target:
            report.unexpected.append(key)
        elif value.shape != target[name].shape and _is_statistic(name):
            continue  # the data's own statistics (another channel count): missing, kept as fitted
        elif value.shape != target[name].shape:
            adapted = _adapted(encoder, name, value, target[name].shape)
            if adapted is None:
                report.mismatched.append((name, tuple(value.shape), tuple(target[name].shape)))
            else:
                mapped[name] = adapted[0]
                report.adapted.append((name, adapted[1]))
        else:
            mapped[name] = value
            report.loaded.append(name)
    report.missing = [k for k in target if k not in mapped]
    return mapped, report


def load_into(encoder: nn.Module, source: InitSource) -> InitReport:
    """Copy the SOURCE's matching tensors into ``encoder``; refuse when none fits, or when a selfsup export
    does not fit completely (it describes this very architecture)."""
    mapped, report = match_state(encoder, source.state)
    name = getattr(encoder, "config", {}).get("name", type(encoder).__name__)
    if not mapped:
        first = ", ".join(list(source.state)[:3]) or "no tensors"
        raise SelfsupError(
            f"none of the {len(source.state)} tensors in '{source.path}' fits encoder '{name}' "
            f"(its first names: {first}); pass the --encoder these weights were trained as."
        )
    loaded = sum(v.numel() for v in mapped.values())
    total = sum(p.numel() for p in encoder.parameters())
    if loaded < MIN_LOADED_SHARE * total:
        raise SelfsupError(
            f"only {loaded / total:.0%} of encoder '{name}''s weights are in '{source.path}' "
            f"({len(report.loaded)} tensors loaded, {len(report.mismatched)} of another shape, "
            f"{len(report.unexpected)} unused); pass the --encoder these weights were trained as."
        )
    # an export built for other data (its first layer adapted) keeps the statistics fitted on this data
    missing = [k for k in report.missing if not (report.adapted and _is_statistic(k))]
    if source.encoder_config is not None and (missing or report.unexpected or report.mismatched):
        raise SelfsupError(
            f"'{source.path}' does not fit its own selfsup.json: {len(missing)} missing, "
            f"{len(report.unexpected)} unexpected, {len(report.mismatched)} of another shape; "
            "the export is corrupted."
        )
    encoder.load_state_dict(mapped, strict=False)
    adapted = "".join(f", {n} adapted ({how})" for n, how in report.adapted)
    if report.mismatched or any(k not in STATISTICS for k in missing) or adapted:
        warnings.warn(
            f"--init '{source.path}': {len(report.loaded)} tensors loaded{adapted}; {len(missing)} missing and "
            f"{len(report.mismatched)} of another shape stay as built (see init.json in the run folder).",
            stacklevel=2,
        )
    return report


def load_method_parts(method: nn.Module, own: dict[str, torch.Tensor], source: InitSource) -> InitReport:
    """Copy the SOURCE run's method tensors into ``method``'s own ones (``own``: ``Method.own_state``) by name;
    one of another shape is refused (the same method with other arguments: say which part)."""
    saved = source.method_state or {}
    report = InitReport(mapping="the run's method parts by name")
    for name, value in saved.items():
        if name not in own:
            report.unexpected.append(name)
        elif value.shape != own[name].shape:
            report.mismatched.append((name, tuple(value.shape), tuple(own[name].shape)))
        else:
            report.loaded.append(name)
    report.missing = [k for k in own if k not in saved]
    if report.mismatched:
        name, was, now = report.mismatched[0]
        raise SelfsupError(
            f"--init '{source.path}': its {source.method} part '{name}' is {list(was)} but this run's is {list(now)} "
            "(other --method-arg values, or data of another channel count?); use the same method arguments, or "
            "--init-parts encoder to start the method's parts afresh."
        )
    method.load_state_dict({k: saved[k] for k in report.loaded}, strict=False)
    return report


def report_table(report: InitReport, source: Path, what: str = "encoder") -> Any:
    """A rich table: counts and the first names of each kind, for the user to read before training starts."""
    from rich.table import Table

    table = Table(title=f"--init {source}: {what}  (mapping {report.mapping})", title_justify="left")
    table.add_column("tensors")
    table.add_column("count", justify="right")
    table.add_column("first names")
    rows = [
        ("loaded", report.loaded),
        ("missing (kept as built: random init, fitted statistics)", report.missing),
        ("unexpected (not used)", report.unexpected),
    ]
    for label, names in rows:
        table.add_row(label, str(len(names)), ", ".join(names[:4]) + (" ..." if len(names) > 4 else ""))
    if report.adapted:
        table.add_row(
            "adapted (first layer, position embeddings)",
            str(len(report.adapted)),
            ", ".join(f"{name}: {how}" for name, how in report.adapted),
        )
    shapes = [f"{n} {list(a)} vs {list(b)}" for n, a, b in report.mismatched]
    table.add_row(
        "shape mismatch (left at random init)",
        str(len(shapes)),
        ", ".join(shapes[:3]) + (" ..." if len(shapes) > 3 else ""),
    )
    return table
