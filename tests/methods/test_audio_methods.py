"""View-based and masked methods train on the built-in spoken words (synthetic speech): the loss falls and
the encoder changes, with the audio views (log-mels) and with the spectrogram-patch token encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.methods.base import build_method
from selfsup.modalities import get_modality

SMALL_ENCODER = {
    "audio_cnn": {"n_mels": 32, "width": 8},
    "spec_transformer": {"n_mels": 32, "patch_freq": 8, "embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64},
}
SMALL_HEADS = {
    "simclr": {"hidden_dim": 64, "projection_dim": 32},
    "byol": {"hidden_dim": 64, "projection_dim": 32},
    "dino": {"prototypes": 64, "hidden_dim": 64, "bottleneck_dim": 32, "center_momentum": 1.0, "momentum": 1.0},
    "mae": {"decoder_dim": 32, "decoder_depth": 1},
    "data2vec": {"decoder_dim": 32, "decoder_depth": 1},
    "jepa": {"predictor_dim": 32, "predictor_depth": 1},
    "tera": {},
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def words():
    return load_builtin("spoken_words")


def _encoder(words, name: str) -> tuple[torch.nn.Module, dict]:
    module = get_modality("audio")
    torch.manual_seed(0)
    config = module.encoder_config(name, words, None, SMALL_ENCODER[name])
    return build_encoder(config), config


def _changed(before: dict, after: dict) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)


@pytest.mark.parametrize(
    "name, encoder_name",
    [("simclr", "audio_cnn"), ("byol", "audio_cnn"), ("dino", "audio_cnn"), ("simclr", "spec_transformer")],
)
def test_view_based_method_trains(words, name, encoder_name):
    encoder, config = _encoder(words, encoder_name)
    method = build_method(name, encoder, SMALL_HEADS[name])
    views = get_modality("audio").make_views(method.views, words, config)(
        words.train.x[::20], torch.Generator().manual_seed(0)
    )
    assert len(views) == method.views.n_global + method.views.n_local
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(10):
        out = method.training_loss(views)  # a fixed batch of views: the objective must go down on it
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_train_batch_end(step / 10)
        losses.append(out.loss.item())
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert out.embedding.shape == (16, encoder.embed_dim)
    assert _changed(before, method.encoder.state_dict())


@pytest.mark.parametrize("name", ["mae", "data2vec", "jepa", "tera"])
def test_masked_method_trains_on_spectrogram_patches(words, name, train_fixed):
    encoder, _ = _encoder(words, "spec_transformer")
    method = build_method(name, encoder, SMALL_HEADS[name])
    x = words.train.x[::10]
    method.check_data(x)
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = train_fixed(method, x, steps=12)
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert _changed(before, method.encoder.state_dict())


def test_mae_encodes_only_the_visible_patches_and_block_masking_fits_the_grid(words):
    encoder, _ = _encoder(words, "spec_transformer")
    x = words.train.x[:4]
    seen: list[torch.Size] = []
    encoder.blocks[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    build_method("mae", encoder, {"mask_ratio": 0.75}).eval().training_loss([x])
    n = math.prod(encoder.tokenizer.grid(x))
    assert n == 52 and seen == [torch.Size((4, n - round(0.75 * n), 32))]
    build_method("mae", encoder, {"masking": "block"}).training_loss([x])  # 2-D blocks on mel x time
    with pytest.raises(SelfsupError, match="span"):
        build_method("mae", encoder, {"masking": "span"}).check_data(x)


def test_masked_methods_refuse_the_cnn(words):
    encoder, _ = _encoder(words, "audio_cnn")
    with pytest.raises(SelfsupError, match="spec_transformer for audio"):
        build_method("mae", encoder, {})
