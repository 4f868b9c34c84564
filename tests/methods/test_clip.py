"""CLIP on real pairs (the built-in spoken words and their captions): a few steps lower the loss and move
both sides, a locked side stays as it was while its projection trains, and a single encoder is refused."""

from __future__ import annotations

import math

import pytest
import torch

from selfsup.data import DataOptions, pair_by_id
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.encoders.pair import PairEncoder, Projected
from selfsup.encoders.text import text_encoder_config
from selfsup.errors import SelfsupError
from selfsup.methods.base import build_method
from selfsup.modalities import get_modality

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT = {"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 24}


@pytest.fixture(scope="module")
def batch():
    """16 clips of 8 words and their captions, as both encoders read them, and the two configs."""
    words = load_builtin("spoken_words")
    text_config = text_encoder_config("small_bert", **TEXT)
    reading = get_modality("text").planned_preprocessing("small_bert", DataOptions(), TEXT)  # its tokenizer
    captions = load_builtin("spoken_word_captions", reading)
    assert captions.train.x.shape[1] == TEXT["max_length"]
    pairs = pair_by_id(words.train, captions.train, "words", "captions")
    chosen = torch.arange(0, len(pairs), len(pairs) // 16)[:16]
    audio_config = get_modality("audio").encoder_config("audio_cnn", words, None, {"n_mels": 32, "width": 8})
    return pairs.a.x[chosen].float(), pairs.b.x[chosen], audio_config, text_config


def _method(batch, **args):
    torch.manual_seed(0)
    _, _, audio_config, text_config = batch
    return build_method("clip", PairEncoder(build_encoder(audio_config), build_encoder(text_config)), args)


def _steps(method, batch, steps: int) -> list[float]:
    audio, text = batch[0], batch[1]
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)  # dropout repeats: a fixed objective
        out = method.training_loss([audio, text])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert out.embedding.shape == (len(audio), method.config.dim)
    return losses


def test_clip_loss_falls_and_both_sides_change(batch) -> None:
    method = _method(batch, dim=16)
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = _steps(method, batch, 15)
    assert math.isclose(losses[0], math.log(16), rel_tol=0.15)  # untrained: about chance, log(batch)
    assert losses[-1] < 0.6 * losses[0]
    after = method.encoder.state_dict()
    for side in ("a.encoder.", "b.encoder.", "a.projection.", "b.projection."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(side)), side
    assert isinstance(method.encoder.a, Projected) and method.encoder.config["a"]["projection"] == 16


def test_locked_side_keeps_its_encoder_and_trains_its_projection(batch) -> None:
    method = _method(batch, dim=16, lock="b")
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = _steps(method, batch, 10)
    assert losses[-1] < losses[0]
    after = method.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("b.encoder."))
    assert not torch.equal(before["b.projection.weight"], after["b.projection.weight"])


def test_temperature_is_learned_unless_fixed(batch) -> None:
    learned = _method(batch, dim=16)
    _steps(learned, batch, 3)
    assert learned.log_scale.item() != pytest.approx(math.log(1 / 0.07))
    fixed = _method(batch, dim=16, learn_temperature=False, temperature=0.1)
    _steps(fixed, batch, 3)
    assert fixed.log_scale.item() == pytest.approx(math.log(10))


def test_clip_refuses_a_single_encoder(batch) -> None:
    with pytest.raises(SelfsupError, match="--pair-data"):
        build_method("clip", build_encoder(batch[2]), {})


def test_head_warm_up_freezes_the_encoders_but_not_the_projections(batch) -> None:
    method = _method(batch, dim=16)
    frozen = {id(p) for p in method.backbone().parameters()}
    assert frozen == {id(p) for side in (method.encoder.a, method.encoder.b) for p in side.encoder.parameters()}
    assert not frozen & {id(p) for p in method.encoder.a.projection.parameters()}


def test_the_logit_scale_is_capped_on_the_parameter(batch) -> None:
    method = _method(batch, dim=16)
    with torch.no_grad():
        method.log_scale.fill_(10.0)
    method.on_train_batch_end(0.5)
    assert method.log_scale.item() == pytest.approx(math.log(100))


def test_sigmoid_loss_starts_at_the_papers_scale_and_bias_and_learns_both(batch) -> None:
    method = _method(batch, dim=16, loss="sigmoid")
    assert method.log_scale.item() == pytest.approx(math.log(10)) and method.bias.item() == pytest.approx(-10.0)
    losses = _steps(method, batch, 10)
    assert losses[-1] < 0.6 * losses[0]
    assert method.bias.item() != pytest.approx(-10.0)
    assert _method(batch, dim=16).bias is None  # the bias is SigLIP's only: CLIP's state is unchanged


@pytest.mark.parametrize("loss", ["infonce", "sigmoid"])
def test_token_interaction_trains_on_both_sides_tokens(batch, loss) -> None:
    method = _method(batch, dim=16, interaction="token", loss=loss)
    text_tokens, valid = method.tokens("b", batch[1])
    assert text_tokens.shape[-1] == 16 and not valid.all()  # captions are padded
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = _steps(method, batch, 10)
    assert losses[-1] < losses[0]
    after = method.encoder.state_dict()
    for side in ("a.encoder.", "b.encoder."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(side)), side


def test_token_interaction_refuses_a_side_without_tokens(batch) -> None:
    iris = load_builtin("iris")
    table = build_encoder(get_modality("tabular").encoder_config("mlp", iris, None, {}))
    pair = PairEncoder(table, build_encoder(batch[3]))
    with pytest.raises(SelfsupError, match="side a's encoder 'mlp' yields none"):
        build_method("clip", pair, {"interaction": "token"})
