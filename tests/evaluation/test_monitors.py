"""Label-free quality of a real encoder on real data."""

from __future__ import annotations

import torch

from selfsup.encoders import build_encoder
from selfsup.evaluation.monitors import label_free
from selfsup.modalities.image import encoder_config, make_views
from selfsup.views import ViewSpec


def test_label_free_on_a_real_encoder(digits) -> None:
    torch.manual_seed(0)
    config = encoder_config("small_cnn", digits, 16)
    encoder = build_encoder(config)
    views = make_views(ViewSpec(n_global=2), digits, config, {})
    x = digits.train.float_samples()[:256]
    result = label_free(encoder, x, views)
    assert 1.0 <= result["rankme"] <= encoder.embed_dim
    assert result["alignment"] > 0 and result["uniformity"] < 0 and 0 < result["embedding_spread"] < 2
