"""Encoder export: encoder.safetensors + selfsup.json (+ preprocessing.json) round trip, and every way loading can go
wrong."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from selfsup.checkpoint import META, PREPROCESSING, WEIGHTS, load_encoder, read_meta, save_encoder, write_meta
from selfsup.data import Preprocessing
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError


@pytest.fixture(scope="module")
def trained_like(digits):
    """A small CNN whose weights and batch-norm statistics differ from a fresh initialisation."""
    from selfsup.modalities.image import encoder_config

    torch.manual_seed(0)
    encoder = build_encoder(encoder_config("small_cnn", digits, 16))
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
        encoder.train()
        encoder(digits.train.float_samples()[:32])  # moves the batch-norm running statistics
    return encoder.eval()


@pytest.fixture
def saved(trained_like, tmp_path) -> Path:
    out = tmp_path / "export"
    save_encoder(trained_like, out, recipe={"method": "simclr", "epochs": 3})
    return out


def _embed(encoder, digits) -> torch.Tensor:
    """Embeddings of real digits (a slice of the test split keeps this fast)."""
    with torch.no_grad():
        return encoder(digits.test.float_samples()[:16])


def test_round_trip_gives_identical_embeddings(trained_like, saved, digits):
    loaded = load_encoder(saved)
    assert not loaded.training
    assert all(not m.training for m in loaded.modules())
    expected, got = _embed(trained_like, digits), _embed(loaded, digits)
    assert got.shape == (16, trained_like.embed_dim)
    assert torch.equal(expected, got)
    # weights, buffers (normalisation, batch-norm statistics) all restored
    for (k1, v1), (k2, v2) in zip(trained_like.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    assert loaded.config == trained_like.config


def test_a_fresh_encoder_differs(trained_like, digits, small_encoder_config):
    """Guards the round-trip test: identical embeddings are not what any encoder of this config gives."""
    torch.manual_seed(1)
    fresh = build_encoder(small_encoder_config).eval()
    assert not torch.allclose(_embed(fresh, digits), _embed(trained_like, digits))


def test_meta_describes_the_encoder(saved, trained_like):
    meta = json.loads((saved / META).read_text())
    assert meta["format"] == "selfsup-encoder"
    assert meta["modality"] == "image"
    assert meta["encoder"] == trained_like.config
    assert meta["embed_dim"] == trained_like.embed_dim
    assert meta["recipe"] == {"method": "simclr", "epochs": 3}
    assert set(meta["versions"]) >= {"selfsup", "torch", "timm"}
    assert meta["versions"]["torch"] == torch.__version__
    assert read_meta(saved) == meta


def test_no_temporary_files_left(saved):
    assert sorted(p.name for p in saved.iterdir()) == sorted([WEIGHTS, META])
    assert not list(saved.rglob("*.tmp"))


def test_save_replaces_a_previous_export(saved, small_encoder_config, digits):
    torch.manual_seed(3)
    other = build_encoder(small_encoder_config).eval()
    save_encoder(other, saved)
    assert torch.equal(_embed(load_encoder(saved), digits), _embed(other, digits))
    assert not list(saved.rglob("*.tmp"))


@pytest.mark.parametrize("which", ["folder", "weights", "meta", "folder-str"])
def test_load_from_folder_weights_or_meta_path(saved, trained_like, digits, which):
    path = {"folder": saved, "weights": saved / WEIGHTS, "meta": saved / META, "folder-str": str(saved)}[which]
    assert torch.equal(_embed(load_encoder(path), digits), _embed(trained_like, digits))


def test_expected_modality(saved):
    assert load_encoder(saved, expect_modality="image") is not None
    with pytest.raises(SelfsupError, match="trained on image data"):
        load_encoder(saved, expect_modality="audio")


def test_truncated_weights_are_reported_as_corrupted(saved):
    weights = saved / WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(SelfsupError, match="corrupted") as info:
        load_encoder(saved)
    assert str(weights) in str(info.value)


def test_empty_weights_file(saved):
    (saved / WEIGHTS).write_bytes(b"")
    with pytest.raises(SelfsupError, match="corrupted"):
        load_encoder(saved)


def test_meta_with_other_channel_count_does_not_fit(saved):
    meta_path = saved / META
    meta = json.loads(meta_path.read_text())
    meta["encoder"]["in_chans"] = 3
    meta["encoder"]["mean"] = meta["encoder"]["mean"] * 3
    meta["encoder"]["std"] = meta["encoder"]["std"] * 3
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SelfsupError, match="do not fit"):
        load_encoder(saved)


def test_meta_with_other_architecture_does_not_fit(saved):
    meta_path = saved / META
    meta = json.loads(meta_path.read_text())
    meta["encoder"]["name"] = "resnet18"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SelfsupError, match="do not fit"):
        load_encoder(saved)


@pytest.mark.parametrize("broken", ["drop-in_chans", "in_chans-text", "mean-missing"])
def test_meta_with_an_incomplete_encoder_description(saved, broken):
    meta_path = saved / META
    meta = json.loads(meta_path.read_text())
    if broken == "drop-in_chans":
        del meta["encoder"]["in_chans"]
    elif broken == "in_chans-text":
        meta["encoder"]["in_chans"] = "one"
    else:
        del meta["encoder"]["mean"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SelfsupError, match="selfsup.json"):
        load_encoder(saved)


def test_meta_with_other_image_size_still_loads_the_same_weights(saved, trained_like):
    """image_size only sets the input resize: the weights fit and are the same."""
    meta_path = saved / META
    meta = json.loads(meta_path.read_text())
    meta["encoder"]["image_size"] = 24
    meta_path.write_text(json.dumps(meta))
    loaded = load_encoder(saved)
    assert loaded.image_size == 24
    for (k1, v1), (k2, v2) in zip(trained_like.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_missing_folder(tmp_path):
    with pytest.raises(SelfsupError, match="does not exist"):
        load_encoder(tmp_path / "no-such-run")


def test_folder_without_meta(tmp_path):
    with pytest.raises(SelfsupError, match="selfsup.json"):
        load_encoder(tmp_path)


def test_meta_not_json(saved):
    (saved / META).write_text("{not json")
    with pytest.raises(SelfsupError, match="not valid JSON"):
        load_encoder(saved)


def test_meta_of_something_else(saved):
    (saved / META).write_text(json.dumps({"format": "other", "encoder": {}}))
    with pytest.raises(SelfsupError, match="not a selfsup encoder"):
        load_encoder(saved)


def test_unfinished_run_points_to_export(trained_like, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_meta(trained_like, run, {"method": "simclr"})  # what a run writes at its start
    assert [p.name for p in run.iterdir()] == [META]
    with pytest.raises(SelfsupError) as info:
        load_encoder(run)
    message = str(info.value)
    assert "selfsup export" in message
    assert "last.ckpt" in message


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_disguised_as_safetensors_is_refused_without_running_code(saved, tmp_path):
    marker = tmp_path / "code-was-executed"
    payload = pickle.dumps({"backbone.features.0.weight": _Payload(str(marker))})
    # sanity: unpickling the payload really would run code
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()

    (saved / WEIGHTS).write_bytes(payload)
    with pytest.raises(SelfsupError, match="corrupted"):
        load_encoder(saved)
    assert not marker.exists()


def test_torch_save_file_disguised_as_safetensors_is_refused(saved, trained_like, tmp_path):
    marker = tmp_path / "code-was-executed"
    torch.save({"state": trained_like.state_dict(), "evil": _Payload(str(marker))}, saved / WEIGHTS)
    with pytest.raises(SelfsupError):
        load_encoder(saved)
    assert not marker.exists()
    assert not os.path.exists(marker)


def test_a_token_encoder_saved_before_the_rewrite_is_refused_clearly(tmp_path):
    from selfsup.data import DataOptions
    from selfsup.datasets import load_builtin
    from selfsup.modalities.tabular import encoder_config

    config = encoder_config("ft_transformer", load_builtin("iris"), DataOptions(), {"n_layers": 1})
    save_encoder(build_encoder(config), tmp_path)
    assert load_encoder(tmp_path).config["name"] == "ft_transformer"  # the current format loads
    meta = json.loads((tmp_path / META).read_text())
    meta["format_version"] = 1  # written before ft_transformer became a token transformer
    (tmp_path / META).write_text(json.dumps(meta))
    with pytest.raises(SelfsupError, match="saved by an older selfsup .* pre-train it again"):
        load_encoder(tmp_path)


# --------------------------------------------------------------------------- preprocessing.json

IMAGE_READ = Preprocessing("image", {"image_size": 16})


@pytest.fixture
def with_preprocessing(small_encoder_config, tmp_path) -> Path:
    """An export whose encoder knows how its images are read: preprocessing.json beside the weights."""
    torch.manual_seed(0)
    encoder = build_encoder(small_encoder_config).eval()
    assert encoder.preprocessing is None  # an encoder built from a config by hand has none
    encoder.preprocessing = IMAGE_READ
    return save_encoder(encoder, tmp_path / "export")


def test_preprocessing_is_saved_beside_the_weights_and_loaded_back(with_preprocessing, small_encoder_config):
    assert sorted(p.name for p in with_preprocessing.iterdir()) == sorted([WEIGHTS, META, PREPROCESSING])
    saved = json.loads((with_preprocessing / PREPROCESSING).read_text())
    assert saved == {
        "format": "selfsup-preprocessing",
        "format_version": 1,
        "modality": "image",
        "settings": {"image_size": 16},
    }
    assert saved == IMAGE_READ.as_dict()
    assert read_meta(with_preprocessing)["encoder"] == small_encoder_config  # the network's description only
    assert load_encoder(with_preprocessing).preprocessing == IMAGE_READ


def test_a_run_writes_the_preprocessing_at_its_start(small_encoder_config, tmp_path):
    encoder = build_encoder(small_encoder_config)
    encoder.preprocessing = IMAGE_READ
    write_meta(encoder, tmp_path, {"method": "simclr"})  # what a run writes before training
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([META, PREPROCESSING])
    assert Preprocessing.from_dict(json.loads((tmp_path / PREPROCESSING).read_text()), "here") == IMAGE_READ


def test_an_export_without_preprocessing_json_reads_as_its_config_says(saved, trained_like):
    """Exports written before preprocessing.json existed: the reading settings their config carries."""
    assert not (saved / PREPROCESSING).exists()
    loaded = load_encoder(saved)
    assert loaded.preprocessing == Preprocessing("image", {"image_size": trained_like.config["image_size"]})


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe\x00garbage", "is not valid JSON"),
        (b"[1, 2]", "is not a selfsup preprocessing description"),
        (json.dumps({"format": "other", "settings": {}}).encode(), "is not a selfsup preprocessing description"),
        (
            json.dumps({"format": "selfsup-preprocessing", "modality": "image", "settings": [16]}).encode(),
            "is not a selfsup preprocessing description",
        ),
        (
            json.dumps(IMAGE_READ.as_dict() | {"format_version": 99}).encode(),
            "written by a newer selfsup \\(format 99\\); upgrade selfsup",
        ),
        (
            json.dumps(Preprocessing("audio", {"sample_rate": 16000, "segment_seconds": 1.0}).as_dict()).encode(),
            "describes audio data but the encoder beside it is image",
        ),
    ],
    ids=["not-json", "not-utf8", "a-list", "other-format", "settings-not-a-dict", "newer", "other-modality"],
)
def test_a_corrupt_or_mismatched_preprocessing_json_is_one_line_naming_the_file(with_preprocessing, content, message):
    (with_preprocessing / PREPROCESSING).write_bytes(content)
    with pytest.raises(SelfsupError, match=message) as info:
        load_encoder(with_preprocessing)
    assert str(with_preprocessing / PREPROCESSING) in str(info.value) and "\n" not in str(info.value)
