"""VIME (self-supervised part): Yoon et al. 2020, "VIME: Extending the Success of Self- and
Semi-supervised Learning to Tabular Domain".

The encoder sees the corrupted row ``x_tilde`` (made by the tabular views: features swapped with the
same column of random rows) and two heads estimate which features were corrupted and what the clean
row was.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.encoders.table import category_codes, table_layout
from selfsup.errors import SelfsupError
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec


class VIMEConfig(MethodConfig):
    # Weight of the feature-reconstruction loss; 2.0 is the default of the authors' code (main_vime.py).
    alpha: float = Field(2.0, ge=0)


@register_method
class VIME(Method):
    name = "vime"
    summary = "pretext tasks (tables): from a corrupted row, predict which features changed and the clean row"
    paper = "Yoon et al. 2020, VIME: Extending the Success of Self- and Semi-supervised Learning to Tabular Domain"
    views = ViewSpec(n_global=1, original=True)
    # the authors' p_m; no noise, or every numeric entry would count as corrupted in the mask target
    view_defaults: ClassVar[dict[str, Any]] = {"corrupt_rate": 0.3, "noise_std": 0.0}
    modalities = ("tabular",)
    default_lr = 1e-3
    Config = VIMEConfig
    config: VIMEConfig
    _cards: torch.Tensor

    def __init__(self, encoder: Encoder, config: VIMEConfig) -> None:
        super().__init__(encoder, config)
        config_of = getattr(encoder, "config", {})
        if "columns" not in config_of and "schema" not in config_of:  # "schema": an export before December 2026
            raise SelfsupError(
                "VIME needs a tabular encoder (its config holds the table's column layout); "
                "pre-train on a table, or pick a method for this modality."
            )
        self.n_continuous, cardinalities = table_layout(config_of)
        self.cardinalities = cardinalities
        self.n_features = self.n_continuous + len(cardinalities)
        self.register_buffer("_cards", torch.tensor(cardinalities, dtype=torch.long), persistent=False)
        # Linear estimators, as in the authors' code (one dense layer each on top of the encoder).
        self.mask_head = nn.Linear(encoder.embed_dim, self.n_features)
        self.feature_head = nn.Linear(encoder.embed_dim, self.n_continuous + sum(cardinalities))

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        """``views = [x, x_tilde]``; loss = mask BCE + ``alpha`` * reconstruction of ``x``.

        The mask target is ``x_tilde != x``: a feature swapped for an equal value (frequent for
        categorical, indicator and repeated numeric values) is indistinguishable from an untouched one,
        so only the features that actually changed can be estimated from ``x_tilde``; it is also all
        the views tell us. (View noise, ``noise_std > 0``, changes every numeric entry and so makes this
        target all ones there: use corruption and masking only.) The reconstruction follows the paper:
        squared error on the numeric and indicator columns, cross-entropy on each categorical column's
        code, averaged over the features.

        ``StepOutput.embedding`` is the clean ``x``'s embedding (the first view, what the online probe
        and evaluation see), computed without gradient since no loss uses it (in training mode this pass
        also updates batch-norm running statistics with clean rows, the rows the encoder embeds later).
        """
        x, x_tilde = views[0].float(), views[1].float()
        h = self.encoder(x_tilde)
        with torch.no_grad():
            embedding = self.encoder(x)
        target_mask = (torch.nan_to_num(x_tilde) != torch.nan_to_num(x)).float()
        mask_loss = F.binary_cross_entropy_with_logits(self.mask_head(h), target_mask)

        out = self.feature_head(h)
        c = self.n_continuous
        per_feature = F.mse_loss(out[:, :c], torch.nan_to_num(x[:, :c]), reduction="none").sum(dim=1)
        codes = category_codes(x[:, c:], self._cards)
        for j, logits in enumerate(out[:, c:].split(self.cardinalities, dim=1)):
            per_feature = per_feature + F.cross_entropy(logits, codes[:, j], reduction="none")
        reconstruction_loss = (per_feature / self.n_features).mean()

        loss = mask_loss + self.config.alpha * reconstruction_loss
        logs: dict[str, float | torch.Tensor] = {
            "mask_loss": mask_loss.item(),
            "reconstruction_loss": reconstruction_loss.item(),
        }
        return StepOutput(loss, logs, embedding)
