"""Export formats beside selfsup's own (issue 20): a Hugging Face folder, timm's hub layout, ONNX and TorchScript.

Each format has a writer (its files, into a new folder) and a loader (those files read back by the target library,
as a function of a batch), so ``export_encoder`` checks an export on real samples before it keeps it. The formats'
conventions: huggingface_hub's ``PyTorchModelHubMixin`` and transformers' ``save_pretrained``
(https://huggingface.co/docs/huggingface_hub/guides/integrations), timm's ``save_for_hf`` / ``local-dir:`` folders
(https://huggingface.co/docs/timm), ``torch.onnx.export`` with a dynamic batch axis (https://onnx.ai, checked with
onnxruntime), ``torch.jit.trace``. The Hub folders' model card: ``workflows.model_card``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.pair import Projected
from selfsup.encoders.tokens import TokenTransformer, key_mask, pool_tokens
from selfsup.errors import SelfsupError, first_line, locate, require, unknown_name
from selfsup.outputs import EXPORT, OutputKind

FORMATS = ("selfsup", "hf", "timm", "onnx", "torchscript")
RECORD = "export.json"  # beside every export in another format: what it is, its files, its check against torch
ONNX_FILE = "encoder.onnx"
TORCHSCRIPT_FILE = "encoder.pt"
CHECK_SAMPLES = 16  # samples of the run's data each export is compared on
TOLERANCE = 1e-3  # largest difference kept, relative to the embeddings' largest magnitude (at least 1)
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
# keys of timm's pretrained_cfg that describe the architecture's own published weights, not these
TIMM_SOURCE_KEYS = ("tag", "license", "hf_hub_id", "url", "paper_ids", "paper_name", "origin_url", "notes")

Loader = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------------------------------------ what fits where


def text_encoder(encoder: Encoder) -> Any:
    """The transformers-backed text encoder inside ``encoder`` (a pair's side is projected), else None."""
    from selfsup.encoders.text import TextEncoder

    inner = encoder.encoder if isinstance(encoder, Projected) else encoder
    return inner if isinstance(inner, TextEncoder) else None


def transformers_folder(encoder: Encoder) -> bool:
    """Whether ``encoder`` is a transformers model as it is (not a projected side), which ``hf`` writes as
    transformers' own folder."""
    return text_encoder(encoder) is encoder


def check_format(fmt: str, config: dict[str, Any], run: Path) -> None:
    """Refuse, before any work, a format this encoder (``config``, as saved) cannot be exported to."""
    if fmt not in FORMATS:
        raise unknown_name("export format", fmt, FORMATS)
    if fmt == "selfsup":
        return
    if config.get("modality") == "pairs":
        from selfsup.encoders.pair import side_names

        a, b = (run / name for name in side_names(config))
        raise SelfsupError(
            f"'{run}' is a paired run (two encoders trained together), which --format {fmt} cannot hold; "
            f"export one side: --run {a} or --run {b}."
        )
    if fmt == "timm":
        name = config.get("name")
        if config.get("modality") != "image" or name in ("small_cnn", "vit") or "projection" in config:
            what = (
                f"a {config.get('modality')} encoder"
                if config.get("modality") != "image"
                else ("a projected side of a pair" if "projection" in config else f"selfsup's own '{name}'")
            )
            raise SelfsupError(
                f"--format timm holds timm models only, and this encoder is {what}; "
                "use --format hf, onnx, torchscript or selfsup."
            )
    if config.get("modality") == "text" and config.get("name") == "t5" and fmt in ("hf", "onnx"):
        raise SelfsupError(
            f"--format {fmt} cannot hold the t5 encoder (transformers' AutoModel reads a T5 folder as the whole "
            "encoder-decoder; ONNX export fails on T5's relative positions); use --format torchscript or selfsup."
        )
    if fmt == "onnx":
        for name in ONNX_PACKAGES:  # located, not imported: importing them takes seconds
            locate(name, "onnx", "--format onnx")


def check_timm(encoder: Encoder) -> None:
    """Refuse a timm backbone whose stem selfsup replaced (``encoders.image``: a resnet at 64 px or less), which
    ``timm.create_model`` cannot rebuild from its name."""
    backbone, size = getattr(encoder, "backbone", None), int(encoder.config["image_size"])
    if size <= 64 and hasattr(backbone, "conv1") and isinstance(getattr(backbone, "maxpool", None), nn.Identity):
        raise SelfsupError(
            f"--format timm cannot hold this {encoder.config['name']}: at image size {size} (64 or less) selfsup "
            "gives it a small-image stem (3x3 stride-1 first conv, no max-pool) that timm.create_model does not "
            "build; use --format hf, onnx or torchscript, or pre-train at --image-size 65 or more."
        )


def inputs(encoder: Encoder, samples: torch.Tensor) -> torch.Tensor:
    """Samples as the exported model takes them: images at the encoder's own size (resized as the encoder would,
    so the export needs no resize), token ids as int64, everything else float32."""
    config = encoder.config
    if text_encoder(encoder) is not None:
        return samples.round().long()
    if config["modality"] == "image" and samples.shape[-2:] != (config["image_size"],) * 2:
        size = int(config["image_size"])
        return F.interpolate(samples.float(), size=(size, size), mode="bilinear", align_corners=False)
    return samples.float()


# ------------------------------------------------------------------------------------------------ writers, loaders


def write_hf(encoder: Encoder, folder: Path) -> None:
    """A text encoder: transformers' own folder (``save_pretrained`` of its model and tokenizer); any other: a
    huggingface_hub ``PyTorchModelHubMixin`` folder that ``selfsup.encoders.hub.HubEncoder`` reads."""
    if transformers_folder(encoder):
        from selfsup.encoders.text import load_tokenizer, quiet_transformers

        text = text_encoder(encoder)
        with quiet_transformers():
            text.model.save_pretrained(folder)
            load_tokenizer(text.config["tokenizer"]).save_pretrained(folder)
        return
    from selfsup.encoders.hub import save_hub

    save_hub(encoder, folder)


def load_hf(folder: Path, encoder: Encoder) -> Loader:
    if transformers_folder(encoder):
        from selfsup.encoders.text import quiet_transformers, transformers_package

        library = transformers_package()
        AutoModel, AutoTokenizer = library.AutoModel, library.AutoTokenizer
        pooling = text_encoder(encoder).pooling
        with quiet_transformers():
            model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
            pad = AutoTokenizer.from_pretrained(folder, local_files_only=True).pad_token_id

        def embed(ids: torch.Tensor) -> torch.Tensor:
            mask = (ids != pad).long()
            with quiet_transformers():
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            if pooling == "cls":
                return hidden[:, 0]
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

        return embed
    from selfsup.encoders.hub import HubEncoder

    with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints where it loads from
        return HubEncoder.from_pretrained(folder)


def write_timm(encoder: Encoder, folder: Path) -> None:
    """``model.safetensors`` + ``config.json`` by timm's ``save_for_hf``, the pretrained config at the encoder's
    input: its image size, channels and normalisation, bilinear resize, no crop."""
    from timm.models import save_for_hf

    from selfsup.encoders.image import ImageEncoder

    assert isinstance(encoder, ImageEncoder)  # check_format lets only timm backbones through
    config, size = encoder.config, int(encoder.config["image_size"])
    data = {
        "input_size": [int(config["in_chans"]), size, size],
        "mean": list(config["mean"]),
        "std": list(config["std"]),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
    }
    save_for_hf(encoder.backbone, str(folder), safe_serialization=True, data_config=data)
    saved = json.loads((folder / "config.json").read_text())
    pretrained = {k: v for k, v in saved["pretrained_cfg"].items() if k not in TIMM_SOURCE_KEYS}
    pretrained |= data | {"num_classes": 0}
    pretrained.pop("test_input_size", None)
    saved["pretrained_cfg"] = pretrained
    (folder / "config.json").write_text(json.dumps(saved, indent=2))


def load_timm(folder: Path, encoder: Encoder) -> Loader:
    import timm

    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    data = timm.data.resolve_model_data_config(model)
    mean, std = (torch.tensor(data[key], dtype=torch.float32).view(1, -1, 1, 1) for key in ("mean", "std"))
    return lambda x: model((x - mean) / std)


class TokenIds(nn.Module):
    """A text encoder over int64 token ids ``(B, L)``, without its cut to the batch's longest text (a shape that
    depends on the data, which export cannot hold): padding is masked out, so the embedding is the same."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.text = text_encoder(encoder)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        valid = input_ids != self.text.pad_id
        hidden = self.text.model(input_ids=input_ids, attention_mask=valid.long()).last_hidden_state
        embedding = self.text.pool(hidden, valid)
        return self.encoder.projection(embedding) if isinstance(self.encoder, Projected) else embedding


class MaskedTokens(nn.Module):
    """A token transformer (``encoders.tokens``) as ``TokenTransformer.run`` computes its pooled embedding, but
    always with its attention mask, its batch size read from the tensors: ``run`` leaves the mask out when every
    token is valid, a branch on the data that export cannot hold (an all-true mask gives the same attention),
    and its mask's batch size is a Python number that a trace would fix."""

    def __init__(self, model: TokenTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        tokens, valid = m.tokenizer(x)
        if m.prefix is not None:
            tokens = torch.cat([m.prefix.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        p = m.n_prefix
        allowed = key_mask(torch.cat([valid.new_ones(valid.shape[0], p), valid], dim=1))
        if m.causal:  # as TokenTransformer._allowed: earlier tokens and the prefix
            n = allowed.shape[-1]
            order = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()
            order[:, :p] = True
            allowed = allowed & order
        z = tokens
        for block in m.blocks:
            z = block(z, allowed)
        z = m.norm(z)
        content = z[:, p:]
        if m.pool == "cls":
            return z[:, 0]
        if m.pool == "max":
            return pool_tokens(content, valid)
        weights = valid.unsqueeze(-1).to(content.dtype)
        return (content * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def exportable(encoder: Encoder) -> nn.Module:
    """What export captures: a text encoder over int64 ids, a token transformer always masked, others as they are."""
    if text_encoder(encoder) is not None:
        return TokenIds(encoder)
    inner = encoder.encoder if isinstance(encoder, Projected) else encoder
    if isinstance(inner, TokenTransformer):
        masked = MaskedTokens(inner)
        return nn.Sequential(masked, encoder.projection) if isinstance(encoder, Projected) else masked
    return encoder


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep exporters' progress lines and warnings off the user's screen."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def clean(message: str) -> str:
    """A library's message without terminal colour codes, cut before torch.export's list of next steps."""
    return re.sub(r"\x1b\[[0-9;]*m", "", message).split(" This is step")[0].rstrip(" .:;")


def _describe(encoder: Encoder) -> str:
    return f"{encoder.config['modality']} encoder '{encoder.config.get('name')}'"


def write_onnx(encoder: Encoder, folder: Path, example: torch.Tensor) -> None:
    """``encoder.onnx`` by torch's exporter (torch.export, opset of onnxscript), the batch axis dynamic."""
    module = exportable(encoder)
    name = "input_ids" if text_encoder(encoder) is not None else "input"
    big = sum(p.numel() * p.element_size() for p in module.parameters()) > 1 << 30  # over 2 GB ONNX needs a side file
    try:
        with _quiet():
            torch.onnx.export(
                module,
                (example,),
                str(folder / ONNX_FILE),
                input_names=[name],
                output_names=["output"],  # not "embedding": the name of aten.embedding's values
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                dynamo=True,
                external_data=big,
            )
    except Exception as err:
        raise SelfsupError(
            f"cannot export the {_describe(encoder)} to ONNX: {clean(first_line(err))}; use --format hf."
        ) from err


def load_onnx(folder: Path, encoder: Encoder) -> Loader:
    onnxruntime = require("onnxruntime", "onnx", "--format onnx")
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def write_torchscript(encoder: Encoder, folder: Path, example: torch.Tensor) -> None:
    """``encoder.pt``: ``torch.jit.trace`` of the encoder in eval mode."""
    try:
        with _quiet():
            traced = torch.jit.trace(exportable(encoder), (example,), check_trace=False)
            traced.save(str(folder / TORCHSCRIPT_FILE))
    except Exception as err:
        raise SelfsupError(
            f"cannot trace the {_describe(encoder)} with TorchScript: {clean(first_line(err))}; use --format hf."
        ) from err


def load_torchscript(folder: Path, encoder: Encoder) -> Loader:
    with _quiet():
        return torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location="cpu").eval()


LOADERS: dict[str, Callable[[Path, Encoder], Loader]] = {
    "hf": load_hf,
    "timm": load_timm,
    "onnx": load_onnx,
    "torchscript": load_torchscript,
}
CHECKED_WITH = {"hf": "huggingface_hub", "timm": "timm", "onnx": "onnxruntime", "torchscript": "torch"}


def write(fmt: str, encoder: Encoder, folder: Path, example: torch.Tensor) -> None:
    """Write ``encoder`` in format ``fmt`` into ``folder`` (new, empty); ``example``: a batch of its inputs."""
    if fmt == "hf":
        write_hf(encoder, folder)
    elif fmt == "timm":
        write_timm(encoder, folder)
    elif fmt == "onnx":
        write_onnx(encoder, folder, example)
    else:
        write_torchscript(encoder, folder, example)
    if fmt != "hf" and encoder.preprocessing is not None:  # how raw data becomes the input (hf: HubEncoder's)
        (folder / "preprocessing.json").write_text(json.dumps(encoder.preprocessing.as_dict(), indent=1))
    text = text_encoder(encoder)
    if fmt in ("onnx", "torchscript") and text is not None:  # its tokenizer, to make the token ids
        from selfsup.encoders.text import load_tokenizer, quiet_transformers

        with quiet_transformers():
            load_tokenizer(text.config["tokenizer"]).save_pretrained(folder)


# ------------------------------------------------------------------------------------------------ the export folder


def _plain(name: Any) -> bool:
    """A file name an export may list: relative, inside the folder, no glob characters."""
    return (
        isinstance(name, str)
        and bool(name)
        and not Path(name).is_absolute()
        and ".." not in Path(name).parts
        and not any(c in name for c in "*?[]")
    )


def written_by(out: Path) -> OutputKind:
    """The export in ``out`` as an output kind whose entries are the files its record lists (``--overwrite``
    removes those and nothing else)."""
    try:
        files = json.loads((out / RECORD).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        files = []
    listed = tuple(name for name in files if _plain(name)) if isinstance(files, list) else ()
    return OutputKind(EXPORT.name, EXPORT.markers, listed + EXPORT.entries)
