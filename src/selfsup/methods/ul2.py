"""UL2's mixture of denoisers: Tay et al. 2022, "UL2: Unifying Language Learning Paradigms".

An encoder-decoder (the ``t5`` text encoder and a T5 decoder held here, as ``mlm`` holds its head) learns to
restore each text from one of seven denoisers, drawn anew for every text of every step:

* R (regular: T5's span corruption): mean span 3 at 15% corruption, and mean span 8 at 15%;
* X (extreme): mean span 3 at 50%, 8 at 50%, 64 at 15% and 64 at 50%;
* S (sequential, prefix LM): the text cut at a uniformly random place, the suffix predicted from the prefix.

R and X corrupt with :func:`~selfsup.methods.span_corruption.random_spans_noise_mask` and
:func:`~selfsup.methods.span_corruption.corrupt_spans` (T5's sentinels ``<extra_id_i>``). Each input begins
with its denoiser's mode token, ``[NLU]`` (R), ``[NLG]`` (X) or ``[S2S]`` (S): the t5 encoder's extra tokens.
Only the text between the tokenizer's framing tokens (``[CLS]`` ... ``[SEP]``) is corrupted or split; the
closing one ends the inputs and the targets, as T5's ``</s>``. The loss is the cross-entropy of the target
tokens under teacher forcing (the decoder reads ``[pad] + targets[:-1]``), averaged over the batch's target
tokens. The embedding that ``evaluate`` and ``embed`` use is the ``t5`` encoder's, pooled over the text
alone (no mode token, nothing corrupted); a training step's embedding (monitors) is of its corrupted inputs.

``mixture=r`` is T5's span corruption alone (R at mean span 3, 15%), without mode tokens: the baseline UL2
extends.

Simplifications: a small model (``t5`` encoder's defaults: 4 + 4 layers, 256 wide) instead of 20B; MiniLM's
WordPiece tokenizer instead of T5's SentencePiece (which would need a download); the mixture's weights are
uniform over the seven denoisers by default (the card does not fix the rates; ``weights`` sets them); span
lengths follow T5's random segmentation (see ``span_corruption``); texts are not packed together, each is
one example; mode tokens are not prepended at embedding time (no mode switching downstream); the output
layer starts at std ``d_model ** -0.5``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.methods.base import Method, MethodConfig, StepOutput, register_method
from selfsup.methods.span_corruption import corrupt_spans, prefix_split, random_spans_noise_mask
from selfsup.views import ViewSpec

if TYPE_CHECKING:
    from selfsup.encoders.text import TextEncoder

IGNORE = -100  # label of the padding after each target


class Denoiser(NamedTuple):
    kind: str  # R, X or S
    mean_span: float  # R and X
    rate: float  # R and X: share of the text corrupted


UL2_DENOISERS = (
    Denoiser("R", 3, 0.15),
    Denoiser("R", 8, 0.15),
    Denoiser("X", 3, 0.5),
    Denoiser("X", 8, 0.5),
    Denoiser("X", 64, 0.15),
    Denoiser("X", 64, 0.5),
    Denoiser("S", 0, 0),
)
SPAN_DENOISERS = (Denoiser("R", 3, 0.15),)  # T5's span corruption
MODE_TOKEN = {"R": "[NLU]", "S": "[S2S]", "X": "[NLG]"}


class UL2Config(MethodConfig):
    mixture: Literal["ul2", "r"] = Field(
        "ul2", description="ul2: the seven denoisers; r: T5's span corruption alone (mean span 3, 15%)"
    )
    weights: list[float] | None = Field(
        None, description="sampling weights of the mixture's denoisers, in order (default: equal)"
    )
    mode_tokens: bool | None = Field(None, description="prepend each denoiser's mode token (default: for ul2 only)")

    @model_validator(mode="after")
    def _weights(self) -> UL2Config:
        count = len(UL2_DENOISERS if self.mixture == "ul2" else SPAN_DENOISERS)
        if self.weights is not None and (len(self.weights) != count or min(self.weights) < 0 or sum(self.weights) <= 0):
            raise ValueError(f"weights must be {count} non-negative numbers, not all 0, one per denoiser")
        return self


class Corrupted(NamedTuple):
    """A batch made ready for the encoder-decoder: every tensor right-padded."""

    inputs: torch.Tensor  # (B, Li) the encoder's, pad-padded
    decoder_inputs: torch.Tensor  # (B, Lt) [pad] + targets[:-1], pad-padded
    labels: torch.Tensor  # (B, Lt) the targets, IGNORE-padded
    denoisers: torch.Tensor  # (B,) which denoiser made each row


def _padded(rows: list[list[int]], fill: int) -> torch.Tensor:
    out = torch.full((len(rows), max(1, max(map(len, rows)))), fill, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


@register_method
class UL2(Method):
    name = "ul2"
    summary = (
        "mixture of 7 denoisers, drawn uniformly: T5 span corruption (regular, extreme) and prefix LM, each "
        "input led by its mode token; a small T5 with MiniLM's tokenizer (text; its encoder is t5)"
    )
    paper = "Tay et al. 2022, UL2; Raffel et al. 2020, T5 (span corruption)"
    views = ViewSpec(n_global=0, original=True)
    modalities = ("text",)
    default_encoder = "t5"
    default_lr = 1e-3
    Config = UL2Config
    config: UL2Config
    encoder: TextEncoder
    framing: torch.Tensor
    probabilities: torch.Tensor

    def __init__(self, encoder: Encoder, config: UL2Config) -> None:
        super().__init__(encoder, config)
        settings = getattr(encoder, "config", {})
        if settings.get("modality") != "text" or settings.get("name") != "t5":
            raise SelfsupError("ul2 needs the t5 text encoder (an encoder-decoder): pass --encoder t5.")
        from selfsup.encoders.text import extra_token_id, t5_config, transformers_package

        self.denoisers = UL2_DENOISERS if config.mixture == "ul2" else SPAN_DENOISERS
        weights = torch.tensor(config.weights or [1.0] * len(self.denoisers), dtype=torch.float64)
        self.register_buffer("probabilities", weights / weights.sum(), persistent=False)
        modes = config.mixture == "ul2" if config.mode_tokens is None else config.mode_tokens
        self.mode_ids = {k: extra_token_id(settings, t) for k, t in MODE_TOKEN.items()} if modes else {}
        first = extra_token_id(settings, "<extra_id_0>")
        self.sentinels = list(range(first, first + sum(t.startswith("<extra_id_") for t in settings["extra_tokens"])))
        self.pad_id = int(settings["pad_id"])
        self.register_buffer("framing", torch.tensor(settings["special_ids"]), persistent=False)
        full = transformers_package().T5ForConditionalGeneration(t5_config(settings))
        self.decoder = full.decoder
        self.decoder.embed_tokens = None  # reads the encoder's input embeddings (T5 shares them)
        self.lm_head = full.lm_head
        # output layer at std d_model ** -0.5, so the first logits have unit variance (transformers' T5 draws it
        # at std 1 when untied, which starts a small model at several times log(vocabulary) of loss)
        torch.nn.init.normal_(self.lm_head.weight, std=self.lm_head.in_features**-0.5)

    def corrupt(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> Corrupted:
        """This step's denoising task for each text of token ids ``(B, L)``: a denoiser drawn by the mixture's
        weights, applied to the text between the framing tokens (see the module docstring)."""
        ids = ids.cpu()
        chosen = torch.multinomial(self.probabilities.cpu(), len(ids), replacement=True, generator=generator)
        framing = set(self.framing.tolist())
        inputs, targets = [], []
        for row, which in zip(ids.tolist(), chosen.tolist()):
            text = [t for t in row if t != self.pad_id]
            lead = text[:1] if text and text[0] in framing else []
            text = text[len(lead) :]
            end = text[-1:] if text and text[-1] in framing else []
            body = text[: len(text) - len(end)]
            denoiser = self.denoisers[which]
            if denoiser.kind == "S":
                cut = prefix_split(len(body), generator)
                given, wanted = body[:cut], body[cut:]
            else:
                noise = random_spans_noise_mask(len(body), denoiser.rate, denoiser.mean_span, generator)
                given, wanted = corrupt_spans(body, noise, self.sentinels)
            mode = [self.mode_ids[denoiser.kind]] if self.mode_ids else []
            inputs.append(mode + lead + given + end)
            targets.append(wanted + end)
        labels = _padded(targets, IGNORE)
        decoder_inputs = torch.cat([torch.full((len(ids), 1), self.pad_id), labels[:, :-1]], dim=1)
        decoder_inputs = decoder_inputs.masked_fill(decoder_inputs == IGNORE, self.pad_id)
        return Corrupted(_padded(inputs, self.pad_id), decoder_inputs, labels, chosen)

    def decode(self, inputs: torch.Tensor, decoder_inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(decoder states (B, Lt, D), encoder hidden (B, Li, D), valid (B, Li))`` under teacher forcing; the
        output layer (``lm_head``) turns a state into logits."""
        hidden, valid = self.encoder.forward_tokens(inputs)
        embed = self.encoder.model.encoder.embed_tokens
        out = self.decoder(
            inputs_embeds=embed(decoder_inputs),
            encoder_hidden_states=hidden,
            encoder_attention_mask=valid.long(),
        ).last_hidden_state
        return out, hidden, valid

    def training_loss(self, views: list[torch.Tensor]) -> StepOutput:
        ids = self.encoder.token_ids(views[0])
        batch = self.corrupt(ids)
        device = ids.device
        states, hidden, valid = self.decode(batch.inputs.to(device), batch.decoder_inputs.to(device))
        labels = batch.labels.to(device)
        wanted = labels != IGNORE
        if not bool(wanted.any()):  # nothing to predict (texts of framing tokens only)
            return StepOutput(states.sum() * 0.0, {}, self.encoder.pool(hidden, valid))
        logits = self.lm_head(states[wanted]).float()  # the target tokens only, not the padding after them
        loss = F.cross_entropy(logits, labels[wanted])
        accuracy = (logits.argmax(-1) == labels[wanted]).float().mean().detach()
        return StepOutput(loss, {"ul2_accuracy": accuracy}, self.encoder.pool(hidden, valid))
