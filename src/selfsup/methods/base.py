"""What every method is: heads + objective + teacher policy over an encoder, registered by name.

A method never knows the modality: it receives a list of already-augmented views (tensors the
encoder accepts) and returns a loss. Its ``views`` spec tells the modality which views to make.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from selfsup.checkpoint import own_tensors
from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.views import ViewSpec


class MethodConfig(BaseModel):
    """Base of every method's hyperparameters; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


def check_heads(config: MethodConfig, width: str, heads: str) -> MethodConfig:
    """Refuse a transformer head width that its head count does not divide (a config validator)."""
    if getattr(config, width) % getattr(config, heads):
        raise ValueError(f"{width}={getattr(config, width)} must be a multiple of {heads}={getattr(config, heads)}")
    return config


@dataclass
class StepOutput:
    """What ``training_loss`` returns: the loss, numbers to log, and the first view's embedding."""

    loss: torch.Tensor
    logs: dict[str, float | torch.Tensor]  # tensors are logged without a host sync
    embedding: torch.Tensor


class Method(nn.Module):
    """Base class: subclasses set the class attributes and implement ``training_loss``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    paper: ClassVar[str]
    views: ClassVar[ViewSpec] = ViewSpec()
    modalities: ClassVar[tuple[str, ...] | None] = None  # None: any modality
    needs_tokens: ClassVar[bool] = False  # masked methods: the encoder must be a token transformer
    paired: ClassVar[bool] = False  # trains two encoders on paired data (--pair-data): views are [side a, side b]
    accepts_pairs: ClassVar[bool] = False  # with --pair-data, views are [sample, its pair] through the one encoder
    encoder_defaults: ClassVar[dict[str, Any]] = {}  # encoder arguments the method needs (the recipe's win)
    default_encoder: ClassVar[str | None] = None  # the architecture it needs when --encoder is unset (ul2: t5)
    view_defaults: ClassVar[dict[str, Any]] = {}  # view arguments from the method's paper (the recipe's win)
    default_lr: ClassVar[float] = 1e-3
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, encoder: Encoder, config: MethodConfig) -> None:
        super().__init__()
        if self.needs_tokens and not hasattr(encoder, "tokenizer"):
            raise SelfsupError(
                f"method '{self.name}' masks tokens, so it needs a token encoder (vit for images, "
                "patch_transformer for series, ft_transformer for tables, spec_transformer for audio); leave "
                "--encoder unset to get the data's token encoder (text has none: use mlm)."
            )
        self.encoder = encoder
        self.config = config

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    def own_state(self) -> dict[str, torch.Tensor]:
        """The method's tensors but its encoder's (heads, projectors, predictors, teachers, centres, decoders, the
        logit scale), tied ones once: what continued pre-training with the same method carries over
        (``--init-parts``)."""
        return own_tensors(self.state_dict(), "encoder.")

    def backbone(self) -> nn.Module:
        """The pre-trainable weights that head warm-up (``--freeze-encoder-steps``) freezes: the encoder, less
        any heads a method puts inside it (CLIP's projections)."""
        return self.encoder

    def check_data(self, x: torch.Tensor) -> None:
        """Refuse training samples this method cannot use (e.g. too short), before anything is written."""

    def on_train_batch_end(self, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1] (EMA teachers update here)."""


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    METHODS[cls.name] = cls
    return cls


def method_class(name: str) -> type[Method]:
    """The registered class of method ``name``, importing its module on first use."""
    from selfsup.methods import method_class as load

    return load(name)


def build_method(name: str, encoder: Encoder, args: dict[str, Any] | None = None) -> Method:
    """Instantiate a registered method, validating its hyperparameters."""
    cls = method_class(name)
    try:
        config = cls.Config(**(args or {}))
    except ValidationError as err:
        fields = ", ".join(cls.Config.model_fields) or "none"
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise SelfsupError(f"invalid argument for method '{name}': {problems} (its arguments: {fields})") from err
    return cls(encoder, config)
