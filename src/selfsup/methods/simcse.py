"""SimCSE: Gao, Yao & Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings" (unsupervised).

Dropout is the only augmentation: the same batch of texts goes through the encoder twice in train mode
(one forward pass of the batch stacked on itself, as the official code does, so each copy gets its own
dropout masks), and each text's second embedding is its positive against every other text's, by
InfoNCE on cosine similarities at temperature 0.05. The loss is on the pooled embeddings themselves (the
paper's training-only MLP over [CLS] is left out).

Supervised SimCSE: with ``--pair-data`` (a positive text per text, matched by id, e.g. NLI entailment
hypotheses for their premises) the second view of each text is its pair instead of itself, through the
same encoder; the batch's other pairs are the negatives. The paper's contradiction hard negatives are
not used (its "entailment pairs only" variant).
"""

from __future__ import annotations

import torch
from pydantic import Field

from selfsup.losses import simcse_loss
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec


class SimCSEConfig(MethodConfig):
    temperature: float = Field(0.05, gt=0)


@register_method
class SimCSE(Method):
    name = "simcse"
    summary = "contrastive: two forward passes of the same text differ by dropout only; InfoNCE at t=0.05 (text)"
    paper = "Gao, Yao & Chen 2021, SimCSE: Simple Contrastive Learning of Sentence Embeddings"
    views = ViewSpec(n_global=2)  # text views are the ids themselves: the encoder's dropout makes them differ
    modalities = ("text",)
    accepts_pairs = True  # supervised: [text, its positive]
    default_lr = 3e-5
    Config = SimCSEConfig
    config: SimCSEConfig

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        h = self.encoder(torch.cat(views[:2]))
        z1, z2 = h.chunk(2)
        return StepOutput(simcse_loss(z1, z2, temperature=self.config.temperature), {}, z1)
