"""Masked language modelling: Devlin et al. 2019 (BERT), with RoBERTa's dynamic masking (Liu et al. 2019).

A new mask every step: each non-special, non-padding token is chosen with probability ``mask_rate``
(15%); a chosen token becomes ``[MASK]`` (80%), a random non-special token (10%) or stays (10%), and
the loss is the cross-entropy of the original token at the chosen positions only. ``whole_word``
chooses words instead of tokens (all the subword tokens of a chosen word, as BERT's whole-word masking
release; each token then gets its own 80/10/10 draw).

The head is the transformers masked-LM head of the encoder's architecture (BERT's ``cls``, RoBERTa's
``lm_head``, ...): read from the model folder when the folder has one, else fresh (MiniLM's folder has
none), its output layer tied to the encoder's input embeddings when the architecture ties them. It is
applied at the chosen positions only. For continued pre-training of a checkpoint on a domain
(Gururangan et al. 2020, "Don't Stop Pretraining") use a small learning rate, as the default does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.views import ViewSpec

if TYPE_CHECKING:
    from selfsup.encoders.text import TextEncoder

IGNORE = -100  # target of the positions that are not predicted


def word_starts(tokens: list[str]) -> torch.Tensor:
    """``(V,)`` bool: which vocabulary entries begin a word. WordPiece marks the rest with ``##``; byte-level
    BPE (``Ġ``) and SentencePiece (``▁``) mark the beginnings."""
    if any(t.startswith("##") for t in tokens):
        return torch.tensor([not t.startswith("##") for t in tokens])
    if any(t.startswith(("Ġ", "▁")) for t in tokens):
        return torch.tensor([t.startswith(("Ġ", "▁")) for t in tokens])
    raise SelfsupError(
        "whole_word masking needs a WordPiece, byte-level BPE or SentencePiece tokenizer, whose "
        "tokens show where words begin; set whole_word=false."
    )


def mask_tokens(
    ids: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: int,
    replacements: torch.Tensor,
    rate: float = 0.15,
    starts: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of ``ids (B, L)``: returns ``(inputs, targets)``, ``targets`` the original id at the
    chosen positions and ``IGNORE`` elsewhere.

    ``maskable (B, L)``: positions that may be chosen (not special, not padding); ``replacements``: the ids a
    random replacement is drawn from; ``starts (B, L)``: where words begin (whole-word masking: a word is
    chosen by the draw at its first token).
    """

    def draw() -> torch.Tensor:
        return torch.rand(ids.shape, generator=generator, device=ids.device)

    score = draw()
    if starts is not None:
        position = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        first = torch.cummax(torch.where(starts | ~maskable, position, 0), dim=1).values  # the word's first token
        score = score.gather(1, first)
    chosen = maskable & (score < rate)
    action = draw()
    inputs = ids.masked_fill(chosen & (action < 0.8), mask_id)
    pick = torch.randint(len(replacements), ids.shape, generator=generator, device=ids.device)
    swap = chosen & (action >= 0.8) & (action < 0.9)
    inputs = torch.where(swap, replacements.to(ids.device)[pick], inputs)
    return inputs, ids.masked_fill(~chosen, IGNORE)


def masked_lm_head(encoder: TextEncoder) -> nn.Module:
    """The transformers masked-LM head for ``encoder``'s architecture (see the module docstring)."""
    from selfsup.encoders.text import quiet_transformers, transformers_package, weights_folder

    AutoModelForMaskedLM = transformers_package().AutoModelForMaskedLM
    folder = weights_folder(encoder.config)
    try:
        with quiet_transformers():
            full = (
                AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True)
                if folder is not None
                else AutoModelForMaskedLM.from_config(encoder.model.config)
            )
    except ValueError:  # transformers has no masked-LM model for this architecture
        full = None
    heads = (
        []
        if full is None
        else [
            module
            for name, module in full.named_children()
            if name != full.base_model_prefix and any(True for _ in module.parameters())
        ]
    )
    if len(heads) != 1:
        kind = type(encoder.model).__name__
        raise SelfsupError(
            f"mlm needs a masked-LM head, which transformers has in one piece for BERT-like models but "
            f"not for {kind}; pre-train this encoder with simcse instead."
        )
    output = full.get_output_embeddings()
    if getattr(full.config, "tie_word_embeddings", False) and output is not None:
        output.weight = encoder.model.get_input_embeddings().weight  # the encoder's, not the discarded copy's
    return heads[0].train()  # from_pretrained leaves models in eval mode


class MLMConfig(MethodConfig):
    mask_rate: float = Field(0.15, gt=0, lt=1, description="share of the text tokens chosen for prediction")
    whole_word: bool = Field(False, description="choose whole words (all their subword tokens) instead of tokens")


@register_method
class MLM(Method):
    name = "mlm"
    summary = "masked language modelling: predict 15% of the tokens, masked BERT's 80/10/10 way (text)"
    paper = "Devlin et al. 2019, BERT; Liu et al. 2019, RoBERTa (dynamic masking)"
    views = ViewSpec(n_global=0, original=True)
    modalities = ("text",)
    default_lr = 5e-5
    Config = MLMConfig
    config: MLMConfig
    encoder: TextEncoder
    special: torch.Tensor
    replacements: torch.Tensor
    starts: torch.Tensor | None

    def __init__(self, encoder: Encoder, config: MLMConfig) -> None:
        super().__init__(encoder, config)
        settings = getattr(encoder, "config", {})
        if settings.get("modality") != "text" or not hasattr(encoder, "forward_tokens"):
            raise SelfsupError("mlm needs a text encoder (minilm, small_bert or a model folder).")
        if settings.get("mask_id") is None:
            raise SelfsupError(
                f"the tokenizer of text encoder '{settings['name']}' has no mask token, which mlm "
                "needs; use simcse, or an encoder whose tokenizer has one (BERT-like)."
            )
        self.head = masked_lm_head(self.encoder)
        vocab = torch.arange(int(settings["vocab_size"]))
        special = torch.tensor(settings["special_ids"] + [settings["pad_id"]])
        self.register_buffer("special", special, persistent=False)
        self.register_buffer("replacements", vocab[~torch.isin(vocab, special)], persistent=False)
        starts = None
        if config.whole_word:
            from selfsup.encoders.text import load_tokenizer

            starts = word_starts(load_tokenizer(settings["tokenizer"]).convert_ids_to_tokens(vocab.tolist()))
        self.register_buffer("starts", starts, persistent=False)

    def mask(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's masking of token ids ``(B, L)``: ``(inputs, targets)`` of :func:`mask_tokens`, never at
        the tokenizer's special tokens or padding."""
        maskable = ~torch.isin(ids, self.special)
        starts = self.starts[ids] if self.starts is not None else None
        return mask_tokens(
            ids,
            maskable,
            int(self.encoder.config["mask_id"]),
            self.replacements,
            self.config.mask_rate,
            starts,
            generator,
        )

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        inputs, targets = self.mask(self.encoder.token_ids(views[0]))
        hidden, valid = self.encoder.forward_tokens(inputs)
        chosen = targets != IGNORE
        if not bool(chosen.any()):  # nothing drawn (a tiny batch): no prediction this step
            return StepOutput(hidden.sum() * 0.0, {}, self.encoder.pool(hidden, valid))
        logits = self.head(hidden[chosen]).float()
        loss = F.cross_entropy(logits, targets[chosen])
        accuracy = (logits.argmax(-1) == targets[chosen]).float().mean().detach()  # a tensor: no host sync
        return StepOutput(loss, {"mlm_accuracy": accuracy}, self.encoder.pool(hidden, valid))
