"""data2vec: Baevski et al. 2022, "data2vec: A General Framework for Self-supervised Learning in
Speech, Vision and Language", in the efficient form of data2vec 2.0 (Baevski et al. 2023).

An EMA teacher encodes the full input; its targets are the average of its top ``top_k_layers``
block outputs, each layer-normalised, then layer-normalised again. The student encodes only the
visible tokens (as in data2vec 2.0 and MAE) and a light decoder regresses the teacher's targets at
the masked tokens.

Simplifications against data2vec 2.0: each layer's target is the block output after the residual,
layer-normed (2.0 instance-norms the FFN output before the residual); one mask per sample (2.0 uses
several); a transformer decoder (2.0: a convolutional one for images).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from selfsup.encoders import Encoder
from selfsup.encoders.tokens import TokenTransformer
from selfsup.losses.masked import masked_loss
from selfsup.methods.base import Method, StepOutput, register_method
from selfsup.methods.ema import cosine_momentum, ema_update, frozen_copy
from selfsup.methods.heads import TokenPredictor
from selfsup.methods.mae import HiddenTokenConfig, predict_hidden
from selfsup.methods.masking import check_masking
from selfsup.views import ViewSpec


class Data2VecConfig(HiddenTokenConfig):
    mask_ratio: float = Field(0.6, gt=0, lt=1, description="share of tokens hidden from the student")
    top_k_layers: int = Field(3, ge=1, description="teacher layers averaged into the target (all if fewer)")
    momentum: float = Field(0.999, ge=0, le=1, description="EMA momentum at the start; rises to 1")


def layer_average_targets(layers: list[torch.Tensor], top_k: int) -> torch.Tensor:
    """data2vec's targets: the mean of the top ``top_k`` layer outputs, each layer-normed, layer-normed again."""
    chosen = layers[-top_k:]
    dim = chosen[0].shape[-1]
    average = torch.stack([F.layer_norm(layer.float(), (dim,)) for layer in chosen]).mean(0)
    return F.layer_norm(average, (dim,))


@register_method
class Data2Vec(Method):
    name = "data2vec"
    summary = "self-distillation: regress an EMA teacher's averaged layer outputs at masked tokens"
    paper = "Baevski et al. 2022/2023, data2vec (1.0 and 2.0)"
    views = ViewSpec(n_global=0, original=True)
    needs_tokens = True
    default_lr = 1e-3
    Config = Data2VecConfig
    config: Data2VecConfig
    encoder: TokenTransformer

    def __init__(self, encoder: Encoder, config: Data2VecConfig) -> None:
        super().__init__(encoder, config)
        self.teacher = frozen_copy(self.encoder)
        dim = encoder.embed_dim
        self.decoder = TokenPredictor(dim, config.decoder_dim, config.decoder_depth, config.decoder_heads, dim)

    def check_data(self, x: torch.Tensor) -> None:
        check_masking(self.encoder, self.config.masking, x)

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        x = views[0]
        with torch.no_grad():
            self.teacher.eval()  # deterministic targets: no dropout in the teacher (Lightning sets train mode)
            full = self.teacher.run(x, layers=True)
            target = layer_average_targets(full.layers, self.config.top_k_layers)
        prediction, masked, visible = predict_hidden(self.encoder, self.decoder, x, self.config)
        loss = masked_loss(prediction, target, masked, full.valid)
        return StepOutput(loss, {}, visible.pooled)

    def on_train_batch_end(self, progress: float) -> None:
        ema_update(self.teacher, self.encoder, cosine_momentum(self.config.momentum, progress))
