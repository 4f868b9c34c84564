"""Paired encoders: a projected side rebuilds from its config alone, and the side folders are named by modality."""

from __future__ import annotations

import torch

from selfsup.checkpoint import load_encoder, save_encoder
from selfsup.encoders import build_encoder
from selfsup.encoders.pair import PairEncoder, Projected, side_names


def _table_config() -> dict:
    from selfsup.datasets import load_builtin
    from selfsup.modalities import get_modality

    return get_modality("tabular").encoder_config("mlp", load_builtin("iris"), None, {"width": 16, "depth": 1})


def test_projected_side_round_trips_through_its_config(tmp_path) -> None:
    torch.manual_seed(0)
    side = Projected(build_encoder(_table_config()), 3)
    assert side.embed_dim == 3 and side.config["projection"] == 3 and side.config["modality"] == "tabular"
    rebuilt = build_encoder(side.config)
    assert isinstance(rebuilt, Projected) and rebuilt.state_dict().keys() == side.state_dict().keys()
    loaded = load_encoder(save_encoder(side, tmp_path / "side"))
    x = torch.randn(5, 4)
    assert torch.allclose(loaded(x), side.eval()(x))
    assert loaded(x).shape == (5, 3)


def test_pair_embeds_side_a_and_names_its_sides() -> None:
    a, b = Projected(build_encoder(_table_config()), 3), Projected(build_encoder(_table_config()), 3)
    pair = PairEncoder(a, b).eval()
    x = torch.randn(2, 4)
    assert torch.equal(pair((x, x)), a(x)) and pair.embed_dim == 3
    assert isinstance(build_encoder(pair.config), PairEncoder)
    assert side_names(pair.config) == ("tabular_a", "tabular_b")
    assert side_names({"a": {"modality": "audio"}, "b": {"modality": "text"}}) == ("audio", "text")
