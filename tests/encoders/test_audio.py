"""Audio encoders: the log-mel front end against librosa, both encoders' shapes and inputs, padding that
changes nothing, the tokenizer's layout, and the config checks."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.encoders.audio import LogMel, audio_encoder_config, mel_filterbank
from selfsup.errors import SelfsupError
from selfsup.modalities.audio import bin_statistics, encoder_config, make_views, raw_features
from selfsup.views import ViewSpec

SMALL = {
    "audio_cnn": {"n_mels": 32, "width": 8},
    "spec_transformer": {"n_mels": 32, "patch_freq": 8, "embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64},
}


@pytest.fixture(scope="module")
def words():
    return load_builtin("spoken_words")


@pytest.fixture(scope="module")
def clips(words) -> torch.Tensor:
    return words.train.x[::20]  # 16 real clips, NaN-padded to 1 s


@pytest.fixture(scope="module")
def configs(words) -> dict:
    return {name: encoder_config(name, words, None, args) for name, args in SMALL.items()}


# --------------------------------------------------------------------------- front end


@pytest.mark.parametrize("rate, n_fft, n_mels", [(16000, 400, 64), (22050, 1024, 128), (8000, 200, 40)])
def test_mel_filterbank_matches_librosa(rate, n_fft, n_mels):
    reference = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels)  # Slaney scale and area norm
    ours = mel_filterbank(rate, n_fft, n_mels).numpy()
    assert ours.shape == reference.shape
    assert np.allclose(ours, reference, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("rate, n_fft, hop, n_mels", [(16000, 400, 160, 64), (22050, 512, 256, 40)])
def test_log_mel_matches_librosa_on_a_chirp(rate, n_fft, hop, n_mels):
    wave = 0.5 * librosa.chirp(fmin=100, fmax=rate / 2 - 500, sr=rate, duration=1.0)
    power = librosa.feature.melspectrogram(y=wave, sr=rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    reference = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    ours = LogMel(rate, n_fft, hop, n_mels)(torch.tensor(wave, dtype=torch.float32).view(1, 1, -1))[0, 0].numpy()
    assert ours.shape == reference.shape
    loud = reference > reference.max() - 80  # float32 against float64: compare away from the -100 dB floor
    assert np.abs(ours - reference)[loud].max() < 0.01
    assert np.abs(ours - reference).max() < 0.5


def test_frames_past_the_clip_end_are_nan_and_padding_changes_nothing_before():
    rate, hop = 16000, 160
    wave = torch.sin(torch.arange(8000) * 0.3).view(1, 1, -1)
    padded = torch.cat([wave, torch.full((1, 1, 8000), float("nan"))], dim=-1)
    log_mel = LogMel(rate, 400, hop, 32)
    full, cut = log_mel(padded)[0, 0], log_mel(wave)[0, 0]
    valid = ~torch.isnan(full[0])
    assert valid.sum() == 51 and valid[:51].all()  # frame t is valid while t * hop <= 8000 samples
    assert torch.isnan(full[:, ~valid]).all() and not torch.isnan(cut).any()
    assert torch.allclose(full[:, :51], cut, atol=1e-4)  # padding is read as silence


def test_bin_statistics_leave_padding_out(clips):
    config = audio_encoder_config("audio_cnn", 16000, 1.0, n_mels=32)
    mean, std = bin_statistics(clips, config)
    db = LogMel.from_config(config)(clips)[:, 0]
    values = db.transpose(1, 2).reshape(-1, 32)
    values = values[~torch.isnan(values).any(dim=1)].double()
    assert np.allclose(mean, values.mean(0).numpy(), atol=1e-4)
    assert np.allclose(std, values.std(0, unbiased=False).clamp_min(1.0).numpy(), atol=1e-3)


# --------------------------------------------------------------------------- encoders


@pytest.mark.parametrize("name", sorted(SMALL))
def test_encoder_takes_waveforms_and_log_mels_and_ignores_padding(name, words, clips, configs):
    torch.manual_seed(0)
    config = configs[name]
    assert config["modality"] == "audio" and config["sample_rate"] == 16000 and len(config["mean"]) == 32
    encoder = build_encoder(config).eval()
    with torch.no_grad():
        out = encoder(clips)
        assert out.shape == (len(clips), encoder.embed_dim) and torch.isfinite(out).all()
        views = make_views(
            ViewSpec(1),
            words,
            config,
            {
                "crop_scale": (1.0, 1.0),
                "gain_db": 0,
                "mix": 0,
                "pitch": 0,
                "stretch": 1,
                "time_mask": 0,
                "freq_mask": 0,
            },
        )
        assert torch.allclose(encoder(views(clips)[0]), out, atol=1e-5)  # the views' log-mels: the same input
        longer = torch.cat([clips, torch.full_like(clips, float("nan"))], dim=-1)
        assert torch.allclose(encoder(longer), out, atol=1e-5)  # more padding after the clip changes nothing
        short = encoder(clips[:, :, :200])  # 2 frames: still an embedding
        assert short.shape == out.shape and torch.isfinite(short).all()
    state = build_encoder(config).state_dict()
    assert not any(k.endswith(("window", "filters")) for k in state)  # rebuilt from the config, not saved
    assert any(k.endswith("frontend.mean") for k in state)


def test_tokenizer_layout(clips, configs):
    encoder = build_encoder(configs["spec_transformer"])
    tokenizer = encoder.tokenizer
    assert tokenizer.spatial_dims == 2 and tokenizer.ordered and tokenizer.patch_shape == (1, 8, 8)
    assert tokenizer.grid(clips) == (4, 13)  # 32 / 8 mel rows x ceil(101 / 8) time columns
    patches, valid = tokenizer.patches(clips)
    assert patches.shape == (len(clips), 52, 1, 8, 8) and valid.shape == (len(clips), 52)
    h, frames = tokenizer.frontend(clips)
    grid = patches.view(len(clips), 4, 13, 8, 8).permute(0, 1, 3, 2, 4).reshape(len(clips), 32, 104)
    assert torch.equal(grid[:, :, :101], h[:, 0]) and (grid[:, :, 101:] == 0).all()  # row-major, time padded
    columns = frames.float().view(len(clips), 1, 101)
    expected = torch.nn.functional.pad(columns, (0, 3)).view(len(clips), 13, 8).amax(-1) > 0
    assert torch.equal(valid.view(len(clips), 4, 13), expected.unsqueeze(1).expand(-1, 4, -1))
    assert not valid.all()  # the clips are shorter than 1 s: their last columns are padding
    assert tokenizer.positions(52).shape == (52, 32)
    tokens, token_valid = encoder.forward_tokens(clips)
    assert tokens.shape == (len(clips), 52, 32) and torch.equal(token_valid, valid)


def test_raw_features_are_per_bin_mean_and_std(clips, configs):
    config = configs["audio_cnn"]
    features = raw_features(clips, config)
    assert features.shape == (len(clips), 64) and np.isfinite(features).all()
    db = LogMel.from_config(config)(clips[:1])[0, 0]
    h = (db - torch.tensor(config["mean"]).view(-1, 1)) / torch.tensor(config["std"]).view(-1, 1)
    h = h[:, ~torch.isnan(h[0])]
    assert np.allclose(features[0], torch.cat([h.mean(1), h.std(1, unbiased=False)]).numpy(), atol=1e-4)


def test_config_errors():
    with pytest.raises(SelfsupError, match="unknown audio encoder 'audio_cnnn'. Did you mean 'audio_cnn'"):
        audio_encoder_config("audio_cnnn", 16000, 1.0)
    with pytest.raises(SelfsupError, match="unknown encoder argument.*depth.*known: n_mels"):
        audio_encoder_config("audio_cnn", 16000, 1.0, depth=3)
    with pytest.raises(SelfsupError, match="patch_freq=10 does not divide n_mels=64"):
        audio_encoder_config("spec_transformer", 16000, 1.0, patch_freq=10)
    with pytest.raises(SelfsupError, match="n_mels=300 is more than the 201 frequency bins"):
        audio_encoder_config("audio_cnn", 16000, 1.0, n_mels=300)
    with pytest.raises(SelfsupError, match="width='wide'.*whole number"):
        audio_encoder_config("audio_cnn", 16000, 1.0, width="wide")
    assert audio_encoder_config("audio_cnn", 16000, 1.0, width="16")["width"] == 16  # --encoder-arg text
    encoder = build_encoder(audio_encoder_config("audio_cnn", 16000, 1.0, n_mels=32, width=4))
    with pytest.raises(SelfsupError, match=r"waveforms \(batch, 1, samples\) or log-mel.*\(batch, 1, 32, frames\)"):
        encoder(torch.zeros(2, 2, 1000))
