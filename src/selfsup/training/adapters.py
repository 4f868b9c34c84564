"""Parameter-efficient continued pre-training: LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of
Large Language Models"), injected through the ``peft`` library.

:func:`add_lora` puts a trainable low-rank update beside the attention projections and MLP linears of an
encoder's transformer blocks, ``W x + (alpha / r) B A x`` with ``B`` zero at the start (the adapted encoder
begins as the encoder itself), and freezes every other weight (norms too, unless ``train_norms``). It works in
place: the encoder stays the same object with the same ``forward``, ``embed_dim``, ``config`` and
``preprocessing``, so methods, their deep-copied EMA teachers and the trainer see the same encoder, of which
only the adapters get gradients. :func:`merge_lora` folds the adapters into plain weights (the state dict of an
un-adapted encoder, which ``save_encoder`` / ``load_encoder`` read as ever); :func:`lora_state` and
:func:`load_lora_state` keep them apart.

The layers adapted, per encoder family:

- the token transformer (``vit``, ``ft_transformer``, ``patch_transformer``, ``spec_transformer``): each
  block's ``qkv``, ``proj``, ``ffn_in`` and ``ffn_out``;
- a Hugging Face text encoder (``minilm``, ``small_bert``, a model folder): every Linear of the model (BERT:
  ``query``, ``key``, ``value`` and the ``dense`` layers; its embeddings are no Linear);
- a timm image model: the Linear layers timm's transformer blocks name ``qkv``, ``q``, ``k``, ``v``, ``kv``,
  ``q_proj``, ``k_proj``, ``v_proj``, ``proj``, ``fc1``, ``fc2`` (ViT, DeiT, Swin, PVT, ...; ConvNeXt's MLPs
  too), but for a ``qkv`` that its attention bypasses (BEiT, EVA, Swin V2 call ``F.linear`` on its weight).

Other encoders (``small_cnn``, ``mlp``, ``dilated_conv``, ``audio_cnn``, timm CNNs such as ResNets, pairs)
are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

from selfsup.encoders.image import ImageEncoder
from selfsup.encoders.small_cnn import SmallCNN
from selfsup.encoders.text import TextEncoder
from selfsup.encoders.tokens import TokenTransformer
from selfsup.errors import SelfsupError, require
from selfsup.files import write_atomic

ADAPTED = (
    "the token transformers (vit, ft_transformer, patch_transformer, spec_transformer), Hugging Face text "
    "encoders (minilm, small_bert, a model folder) and timm transformers (e.g. vit_tiny_patch16_224)"
)
TOKEN_LAYERS = frozenset({"qkv", "proj", "ffn_in", "ffn_out"})
TIMM_LAYERS = frozenset({"qkv", "q", "k", "v", "kv", "q_proj", "k_proj", "v_proj", "proj", "fc1", "fc2"})
ADAPTER_WEIGHTS, ADAPTER_META = "adapter.safetensors", "adapter.json"  # beside a run's (merged) encoder
ADAPTER = "default"  # peft's adapter name: part of every adapter tensor's key (``qkv.lora_A.default.weight``)
NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)


@dataclass
class AdapterSummary:
    """What :func:`add_lora` did: the adapters' shape, the parameters that train, and the training state's size
    (float weights, plus gradients and AdamW's two moments of what trains) next to full continued pre-training's."""

    rank: int
    alpha: float
    dropout: float
    train_norms: bool
    targets: list[str]  # the adapted layers' names within their block, e.g. ["fc1", "fc2", "proj", "qkv"]
    layers: int  # how many Linear layers carry an adapter
    trainable: int  # parameters that train: the adapters (and the norms' with train_norms)
    total: int  # every parameter of the adapted encoder, adapters included
    full: int  # the encoder's parameters without adapters: all of them train in full continued pre-training
    state_bytes: int  # weights + (gradient + 2 AdamW moments) of the trainable ones, with adapters
    full_state_bytes: int  # the same for full continued pre-training: 4 copies of every weight

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _target_layers(encoder: nn.Module) -> list[str]:
    """The names of the Linear layers of ``encoder`` that take an adapter (see the module docstring)."""
    if isinstance(encoder, TokenTransformer):
        keep = lambda name: name.startswith("blocks.") and name.rsplit(".", 1)[-1] in TOKEN_LAYERS
    elif isinstance(encoder, TextEncoder):
        keep = lambda name: name.startswith("model.")
    elif isinstance(encoder, ImageEncoder) and not isinstance(encoder.backbone, SmallCNN):
        keep = lambda name: name.rsplit(".", 1)[-1] in TIMM_LAYERS and not _bypassed(encoder, name)
    else:
        return []
    return [name for name, module in encoder.named_modules() if isinstance(module, nn.Linear) and keep(name)]


def _bypassed(encoder: nn.Module, name: str) -> bool:
    """Whether a timm ``qkv`` layer is skipped by its attention: BEiT, EVA and Swin V2 attentions with separate
    q/v biases call ``F.linear(x, self.qkv.weight, bias)``, which an adapter on ``qkv`` would never see."""
    parent, _, child = name.rpartition(".")
    return child == "qkv" and getattr(encoder.get_submodule(parent), "q_bias", None) is not None


def _is_norm(module: nn.Module) -> bool:
    """A normalisation layer: torch's, or another library's by its class name (timm's ``RmsNorm``)."""
    return isinstance(module, NORMS) or "norm" in type(module).__name__.lower()


def _norm_parameters(encoder: nn.Module) -> dict[str, nn.Parameter]:
    return {
        f"{prefix}.{name}" if prefix else name: p
        for prefix, module in encoder.named_modules()
        if _is_norm(module)
        for name, p in module.named_parameters(recurse=False)
    }


def _is_adapter(name: str) -> bool:
    return ".lora_" in name


def _bytes(params: list[nn.Parameter]) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def add_lora(
    encoder: nn.Module, rank: int = 8, alpha: float | None = None, dropout: float = 0.0, train_norms: bool = False
) -> AdapterSummary:
    """Inject LoRA adapters of ``rank`` into ``encoder`` in place and freeze everything else (but its norms'
    weights and biases with ``train_norms``). ``alpha`` scales the update by ``alpha / rank`` (default ``rank``:
    a scale of 1); ``dropout`` is applied to an adapter's input. An encoder with no layer to adapt is refused
    with one line that says which encoders take an adapter."""
    if hasattr(encoder, "peft_config"):
        raise ValueError("the encoder already carries adapters")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise SelfsupError(f"the LoRA rank must be a whole number of at least 1, got {rank!r}.")
    if alpha is not None and not alpha > 0:
        raise SelfsupError(f"the LoRA alpha must be above 0, got {alpha!r}.")
    if not 0 <= dropout < 1:
        raise SelfsupError(f"the LoRA dropout must be in [0, 1), got {dropout!r}.")
    targets = _target_layers(encoder)
    if not targets:
        name = getattr(encoder, "config", {}).get("name", type(encoder).__name__)
        raise SelfsupError(
            f"the '{name}' encoder cannot take a LoRA adapter: it has no transformer attention or MLP layers; "
            f"adapters go on {ADAPTED}. Train it without an adapter (full continued pre-training)."
        )
    peft = require("peft", "lora", "--adapter lora")
    base = list(encoder.parameters())
    scale = float(rank if alpha is None else alpha)
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=scale,  # typed int by peft; it only divides it by the rank
        lora_dropout=dropout,
        target_modules=targets,
        bias="none",
    )
    peft.inject_adapter_in_model(config, encoder, adapter_name=ADAPTER)
    for name, p in encoder.named_parameters():
        p.requires_grad_(_is_adapter(name))
    if train_norms:
        for p in _norm_parameters(encoder).values():
            p.requires_grad_(True)
    params = list(encoder.parameters())
    trainable = [p for p in params if p.requires_grad]
    return AdapterSummary(
        rank=rank,
        alpha=scale,
        dropout=float(dropout),
        train_norms=train_norms,
        targets=sorted({name.rsplit(".", 1)[-1] for name in targets}),
        layers=len(targets),
        trainable=sum(p.numel() for p in trainable),
        total=sum(p.numel() for p in params),
        full=sum(p.numel() for p in base),
        state_bytes=_bytes(params) + 3 * _bytes(trainable),
        full_state_bytes=4 * _bytes(base),
    )


def _adapted_layers(encoder: nn.Module) -> list[tuple[str, Any]]:
    """The peft layers (``BaseTunerLayer``) in ``encoder``, by name."""
    BaseTunerLayer = require("peft.tuners.tuners_utils", "lora", "--adapter lora").BaseTunerLayer
    layers = [(name, module) for name, module in encoder.named_modules() if isinstance(module, BaseTunerLayer)]
    if not layers:
        raise ValueError("the encoder carries no LoRA adapters (add_lora first)")
    return layers


def merge_lora(encoder: nn.Module) -> None:
    """Fold the adapters into the weights they adapt (``W + (alpha / r) B A``), in place, and put each plain
    layer back: the encoder's state dict then has the keys and shapes of an un-adapted encoder of its config,
    its outputs are the adapted encoder's (to float rounding) and every weight is trainable again, as
    ``build_encoder`` makes it. Merge a deep copy to keep training the adapters."""
    for name, layer in _adapted_layers(encoder):
        layer.merge(safe_merge=True)  # safe: adapters that diverged to NaN are an error, not NaN weights
        parent, _, child = name.rpartition(".")
        setattr(encoder.get_submodule(parent), child, layer.get_base_layer())
    del encoder.peft_config
    encoder.requires_grad_(True)


def merged_state(state: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A state dict that holds adapted layers (peft's names: ``qkv.base_layer.weight``, ``qkv.lora_A.default.weight``,
    ``qkv.lora_B.default.weight``) with the adapters folded in, ``W + scale B A``, under plain names: what
    :func:`merge_lora` makes of a live encoder, for tensors read from a checkpoint or a method's own (its EMA teacher
    carries adapters too). ``scale`` is alpha / rank. Tensors of no adapted layer pass through."""
    merged: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if _is_adapter(name):
            continue
        if ".base_layer." in name:
            layer, _, leaf = name.partition(".base_layer.")
            down, up = state.get(f"{layer}.lora_A.{ADAPTER}.weight"), state.get(f"{layer}.lora_B.{ADAPTER}.weight")
            if leaf == "weight" and down is not None and up is not None:
                tensor = tensor + (scale * (up.double() @ down.double())).to(tensor.dtype)
            name = f"{layer}.{leaf}"
        merged[name] = tensor
    return merged


def onto_adapted(state: dict[str, torch.Tensor], adapted: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state``'s plain names (``qkv.weight``) renamed to those of ``adapted``'s layers that carry adapters
    (``qkv.base_layer.weight``), where ``adapted`` has no plain one: e.g. a saved EMA teacher carried into a method
    whose teacher was copied from an adapted encoder. Other names pass through."""
    renamed = {}
    for name, tensor in state.items():
        layer, _, leaf = name.rpartition(".")
        base = f"{layer}.base_layer.{leaf}"
        renamed[base if name not in adapted and base in adapted else name] = tensor
    return renamed


def lora_state(encoder: nn.Module, norms: bool = False) -> dict[str, torch.Tensor]:
    """The adapter tensors alone, under their names in the adapted encoder's state dict
    (``blocks.0.qkv.lora_A.default.weight``), and the norms' weights and biases with ``norms`` (when they
    trained, ``add_lora(train_norms=True)``): what an export that keeps the adapters apart writes beside the
    base encoder (:func:`base_state`). The encoder's own tensors, not copies."""
    _adapted_layers(encoder)
    state = {name: t for name, t in encoder.state_dict().items() if _is_adapter(name)}
    if norms:
        state |= {name: p.detach() for name, p in _norm_parameters(encoder).items()}
    return state


def base_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The adapted encoder's weights without the adapters, under an un-adapted encoder's names
    (``qkv.base_layer.weight`` -> ``qkv.weight``): ``save_encoder``'s format, which with :func:`lora_state`
    beside it keeps the adapters apart. Trained norms (``train_norms``) are in it as trained."""
    _adapted_layers(encoder)
    state = encoder.state_dict()
    return {name.replace(".base_layer.", "."): t for name, t in state.items() if not _is_adapter(name)}


def load_lora_state(encoder: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load :func:`lora_state`'s tensors into ``encoder``, built from the same config, holding the same base
    weights and given adapters by :func:`add_lora` with the same rank. Adapters that do not fit (another
    rank, other layers, another architecture) are refused with one line. Load the base weights
    (:func:`base_state`) before ``add_lora``: the adapted encoder names them otherwise."""
    _adapted_layers(encoder)
    own = encoder.state_dict()
    missing = sorted(name for name in own if _is_adapter(name) and name not in state)
    unexpected = sorted(name for name in state if name not in own)
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise SelfsupError(
            f"the adapters do not fit this encoder ({len(missing)} missing, {len(unexpected)} unexpected tensors, "
            f"e.g. '{first}'); they were trained on another architecture or other layers."
        )
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise SelfsupError(
                f"adapter tensor '{name}' has shape {tuple(tensor.shape)} but this encoder's has "
                f"{tuple(own[name].shape)}; add the adapters with the rank they were trained with."
            )
    encoder.load_state_dict(state, strict=False)


def save_adapters(encoder: nn.Module, out: Path, summary: AdapterSummary, base: str | None) -> None:
    """Write the adapters apart (``adapter.safetensors``: :func:`lora_state`, norms included when they trained) and
    what they are (``adapter.json``: the summary, and the weights they adapt, ``base``), atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in lora_state(encoder, norms=summary.train_norms).items()}
    write_atomic(out / ADAPTER_WEIGHTS, save(state))
    write_atomic(out / ADAPTER_META, json.dumps(summary.as_dict() | {"base": base}, indent=1))
