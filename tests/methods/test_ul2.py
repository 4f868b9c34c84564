"""ul2: every denoiser's inputs and targets put back together give the text, S splits it into prefix and suffix,
mode tokens mark the denoiser, the mixture draws its weights, and a few steps on real reviews
(builtin:rottentomatoes) lower the loss and move the t5 encoder."""

from __future__ import annotations

import pytest
import torch

from selfsup.datasets.text import rotten_tomatoes_frame
from selfsup.encoders import build_encoder
from selfsup.encoders.text import extra_token_id, text_encoder_config, tokenize
from selfsup.errors import SelfsupError
from selfsup.methods import build_method
from selfsup.methods.ul2 import IGNORE, MODE_TOKEN, UL2_DENOISERS

TINY = {"embed_dim": 32, "depth": 1, "decoder_depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 48}


@pytest.fixture(scope="module")
def reviews() -> tuple[torch.Tensor, dict]:
    """The first 256 snippets of builtin:rottentomatoes as MiniLM token ids, and a tiny t5's config."""
    config = text_encoder_config("t5", **TINY)
    return tokenize(rotten_tomatoes_frame()["text"].tolist()[:256], config), config


def _rows(batch, i: int) -> tuple[list[int], list[int]]:
    inputs = [t for t in batch.inputs[i].tolist() if t != 0]
    return inputs, [t for t in batch.labels[i].tolist() if t != IGNORE]


def test_each_denoiser_hides_part_of_the_text_behind_its_mode_token(reviews):
    ids, config = reviews
    method = build_method("ul2", build_encoder(config), {})
    batch = method.corrupt(ids, torch.Generator().manual_seed(0))
    first = extra_token_id(config, "<extra_id_0>")
    sentinels = set(range(first, first + 100))
    cls, sep = 101, 102  # MiniLM's [CLS] and [SEP]
    seen = set()
    for i, row in enumerate(ids.tolist()):
        text = [t for t in row if t != 0]
        assert text[0] == cls and text[-1] == sep
        body = text[1:-1]
        denoiser = UL2_DENOISERS[int(batch.denoisers[i])]
        inputs, targets = _rows(batch, i)
        assert inputs[0] == extra_token_id(config, MODE_TOKEN[denoiser.kind])  # the paradigm token first
        assert inputs[1] == cls and inputs[-1] == sep and targets[-1] == sep  # [SEP] ends both, as T5's </s>
        given, wanted = inputs[2:-1], targets[:-1]
        if denoiser.kind == "S":  # prefix LM: the suffix from the prefix, no sentinel
            assert given + wanted == body and given and wanted
            assert not sentinels & set(given + wanted)
        else:  # put each span back where its sentinel stands
            pieces: dict[int, list[int]] = {}  # sentinel -> the tokens after it in the targets
            for token in wanted:
                if token in sentinels:
                    current = pieces[token] = []
                else:
                    current.append(token)
            restored: list[int] = []
            for token in given:
                restored += pieces[token] if token in sentinels else [token]
            assert restored == body
            corrupted = sum(map(len, pieces.values()))
            assert corrupted == min(max(round(len(body) * denoiser.rate), 1), len(body) - 1)
            assert [t for t in given if t in sentinels] == sorted(pieces)  # <extra_id_0>, <extra_id_1>, ...
        seen.add(denoiser.kind)
    assert seen == {"R", "X", "S"}
    # teacher forcing: the decoder reads [pad] + the targets shifted right
    assert (batch.decoder_inputs[:, 0] == 0).all()
    shifted = batch.labels[:, :-1]
    assert torch.equal(batch.decoder_inputs[:, 1:][shifted != IGNORE], shifted[shifted != IGNORE])


def test_the_mixture_draws_its_weights_and_r_alone_is_t5(reviews):
    ids, config = reviews
    encoder = build_encoder(config)
    g = torch.Generator().manual_seed(0)
    ul2 = build_method("ul2", encoder, {})
    counts = torch.bincount(torch.cat([ul2.corrupt(ids[:64], g).denoisers for _ in range(40)]), minlength=7)
    share = counts.float() / counts.sum()  # 2,560 draws: binomial sd sqrt(1/7 * 6/7 / 2560) = 0.007
    assert (share - 1 / 7).abs().max() < 0.03
    weighted = build_method("ul2", encoder, {"weights": [4, 0, 0, 0, 0, 0, 4]})  # R(3, 15%) and S, half each
    drawn = torch.cat([weighted.corrupt(ids[:64], g).denoisers for _ in range(20)])
    assert set(drawn.tolist()) == {0, 6} and abs(float((drawn == 6).float().mean()) - 0.5) < 0.05
    r = build_method("ul2", encoder, {"mixture": "r"})
    batch = r.corrupt(ids[:32], g)
    assert (batch.denoisers == 0).all() and (batch.inputs[:, 0] == 101).all()  # no mode token: plain T5
    with pytest.raises(SelfsupError, match="weights"):
        build_method("ul2", encoder, {"weights": [1, 2]})


def test_ul2_trains_the_t5_encoder_on_real_reviews(reviews, one_thread, train_fixed):
    ids, config = reviews
    torch.manual_seed(0)
    encoder = build_encoder(config)
    method = build_method("ul2", encoder, {})
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    losses = train_fixed(method, ids[:16], steps=6)
    assert losses[0] > 9 and losses[-1] < losses[0] - 1.5  # from about log(30,625 tokens) = 10.3 nats
    assert all(not torch.equal(v, before[k]) for k, v in encoder.state_dict().items())
    assert {k.split(".")[0] for k in method.own_state()} == {"decoder", "lm_head"}


def test_ul2_refuses_other_encoders():
    with pytest.raises(SelfsupError, match="--encoder t5"):
        build_method("ul2", build_encoder(text_encoder_config("small_bert", embed_dim=32, heads=2, depth=1)))


def test_ul2_gets_the_t5_encoder_when_none_is_named():
    from selfsup.recipe import make_recipe
    from selfsup.workflows.pretrain import _encoder_name

    assert _encoder_name(make_recipe(data="builtin:rottentomatoes", method="ul2"), "text", None) == "t5"
    named = make_recipe(data="builtin:rottentomatoes", method="ul2", encoder="small_bert")
    assert _encoder_name(named, "text", None) == "small_bert"  # then build_method refuses it in one line
    assert _encoder_name(make_recipe(data="builtin:rottentomatoes", method="mlm"), "text", None) != "t5"
