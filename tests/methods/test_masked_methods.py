"""MAE, MFM, data2vec and JEPA on real images, series and tables: they train, mask as promised,
and their EMA teachers follow the schedule without gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.losses.masked import masked_loss
from selfsup.methods.base import build_method
from selfsup.methods.data2vec import layer_average_targets
from selfsup.methods.ema import cosine_momentum
from selfsup.methods.masking import jepa_masks
from selfsup.modalities import get_modality

MASKED = ("mae", "mfm", "data2vec", "jepa")
# small token encoders, one per modality, each on a real built-in dataset
DATA = {
    "image": ("digits", {"embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64}),
    "timeseries": ("gunpoint", {"embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64, "patch_size": 10}),
    "tabular": ("breast_cancer", {"d_token": 32, "n_layers": 2, "n_heads": 4}),
}
SMALL_HEAD = {
    "mae": {"decoder_dim": 32, "decoder_depth": 1},
    "mfm": {"decoder_dim": 32, "decoder_depth": 1},
    "data2vec": {"decoder_dim": 32, "decoder_depth": 1},
    "jepa": {"predictor_dim": 32, "predictor_depth": 1},
}

pytestmark = pytest.mark.usefixtures("one_thread")


def token_encoder(modality: str) -> tuple[torch.nn.Module, torch.Tensor]:
    name, args = DATA[modality]
    splits = load_builtin(name)
    module = get_modality(modality)
    torch.manual_seed(0)
    config = module.encoder_config(module.token_encoder, splits, DataOptions(), args)
    return build_encoder(config), splits.train.float_samples()[:32]


@pytest.mark.parametrize("modality", sorted(DATA))
@pytest.mark.parametrize("name", MASKED)
def test_method_trains_on_real_data(name: str, modality: str, train_fixed) -> None:
    encoder, x = token_encoder(modality)
    method = build_method(name, encoder, SMALL_HEAD[name])
    assert method.views.original and method.views.n_global == 0  # no augmentation: the input itself
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = train_fixed(method, x, steps=15)
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    after = method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)


@pytest.mark.parametrize("modality", sorted(DATA))
def test_mae_encoder_never_receives_masked_tokens(modality: str) -> None:
    encoder, x = token_encoder(modality)
    method = build_method("mae", encoder, {"mask_ratio": 0.75}).eval()
    seen: list[torch.Size] = []
    encoder.blocks[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    torch.manual_seed(1)
    method.training_loss([x])
    n = int(np.prod(encoder.tokenizer.grid(x)))
    visible = n - min(max(1, round(0.75 * n)), n - 1)
    assert seen == [torch.Size((len(x), encoder.n_prefix + visible, encoder.embed_dim))]


def test_hidden_table_columns_do_not_reach_the_encoder() -> None:
    encoder, x = token_encoder("tabular")
    encoder.eval()
    n = x.shape[1]
    torch.manual_seed(1)
    keep = torch.rand(len(x), n).argsort(1)[:, : n // 4].sort(1).values
    hidden = torch.ones(len(x), n, dtype=torch.bool).scatter(1, keep, False)
    changed = x.clone()
    changed[hidden] += 3.0
    assert torch.allclose(encoder.run(changed, keep).tokens, encoder.run(x, keep).tokens, atol=1e-5)
    assert not torch.allclose(encoder.run(changed).tokens, encoder.run(x).tokens, atol=1e-5)


def test_hidden_image_patches_do_not_reach_the_encoder() -> None:
    encoder, x = token_encoder("image")
    encoder.eval()
    side = encoder.tokenizer.side
    p = encoder.image_size // side
    x = torch.nn.functional.interpolate(x, size=(encoder.image_size,) * 2, mode="bilinear", align_corners=False)
    keep = torch.tensor([[0, 5, 10, 15]] * len(x))
    changed = x.clone()
    changed[:, :, :p, p:] = 1.0  # patch 1 (row 0, column 1) is hidden
    assert torch.allclose(encoder.run(changed, keep).tokens, encoder.run(x, keep).tokens, atol=1e-5)
    assert not torch.allclose(encoder.run(changed).tokens, encoder.run(x).tokens, atol=1e-5)


@pytest.mark.parametrize("name", ["data2vec", "jepa"])
def test_ema_teacher_gets_no_gradient_and_follows_the_schedule(name: str) -> None:
    encoder, x = token_encoder("tabular")
    method = build_method(name, encoder, SMALL_HEAD[name] | {"momentum": 0.9})
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    teacher_before = [p.clone() for p in method.teacher.parameters()]
    method.training_loss([x]).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in method.teacher.parameters())
    optimizer.step()
    assert all(
        torch.equal(a, b) for a, b in zip(teacher_before, method.teacher.parameters())
    )  # not an optimiser target
    method.on_train_batch_end(progress=0.5)
    momentum = cosine_momentum(0.9, 0.5)  # 0.95
    for old, new, student in zip(teacher_before, method.teacher.parameters(), method.encoder.parameters()):
        assert torch.allclose(new, momentum * old + (1 - momentum) * student, atol=1e-6)


@pytest.mark.parametrize("modality", sorted(DATA))
def test_jepa_prediction_matches_target_blocks(modality: str) -> None:
    encoder, x = token_encoder(modality)
    method = build_method("jepa", encoder, SMALL_HEAD["jepa"] | {"n_targets": 2})
    torch.manual_seed(0)
    prediction, target, index, _valid, embedding = method.predict(x)
    n_targets = len(prediction) // len(x)
    assert 1 <= n_targets <= 2 and len(prediction) == n_targets * len(x)
    torch.manual_seed(0)  # the same draw: row i * B + b of the stack is target block i of sample b
    tokenizer = encoder.tokenizer
    _, targets = jepa_masks(
        len(x),
        tokenizer.grid(x),
        method._policy(),
        tokenizer.ordered,
        n_targets=2,
        target_scale=(0.15, 0.2),
        context_scale=(0.85, 1.0),
    )
    assert torch.equal(index, torch.cat(targets))
    assert prediction.shape == (len(x) * n_targets, index.shape[1], encoder.embed_dim)
    assert target.gather(1, index.unsqueeze(-1).expand(-1, -1, target.shape[-1])).shape == prediction.shape
    assert embedding.shape == (len(x), encoder.embed_dim)


def test_masked_methods_need_a_token_encoder() -> None:
    splits = load_builtin("breast_cancer")
    config = get_modality("tabular").encoder_config("mlp", splits, DataOptions(), {})
    with pytest.raises(SelfsupError, match="needs a token encoder"):
        build_method("mae", build_encoder(config), {})


def test_hog_target_refused_on_tables() -> None:
    encoder, _ = token_encoder("tabular")
    with pytest.raises(SelfsupError, match="'hog' target needs tokens with spatial extent"):
        build_method("mae", encoder, {"target": "hog"})  # at build time: before a run writes anything


@pytest.mark.parametrize("name", ["mae", "jepa"])
def test_ragged_series_train_and_padding_is_never_a_target(name: str, train_fixed) -> None:
    """Japanese Vowels: 7-29 steps padded with NaN; with patches of 4 steps many tokens are padding."""
    splits = load_builtin("japanesevowels")
    module = get_modality("timeseries")
    torch.manual_seed(0)
    args = {"embed_dim": 32, "depth": 1, "heads": 4, "mlp_dim": 64, "patch_size": 4}
    encoder = build_encoder(module.encoder_config("patch_transformer", splits, DataOptions(), args))
    x = splits.train.float_samples()[:48]
    _, valid = encoder.tokenizer.patches(x)
    assert not valid.all()  # padding tokens exist
    method = build_method(name, encoder, SMALL_HEAD[name])
    losses = train_fixed(method, x, steps=10)
    assert all(np.isfinite(losses)) and sum(losses[-3:]) < sum(losses[:3]), losses
    if name == "jepa":  # padding tokens drawn as targets are left out of the loss
        torch.manual_seed(0)
        prediction, target, index, valid_rows, _ = method.predict(x)
        assert not valid_rows.gather(1, index).all()  # some target tokens are padding
        changed = target.clone()
        changed[~valid_rows] = 1e3
        assert torch.equal(
            masked_loss(prediction, target, index, valid_rows), masked_loss(prediction, changed, index, valid_rows)
        )


def test_data2vec_targets_hand_computed() -> None:
    a = torch.tensor([[[1.0, 3.0]]])  # layer-normed: [-1, 1]
    b = torch.tensor([[[0.0, 0.0]]])  # layer-normed: [0, 0]
    c = torch.tensor([[[5.0, 1.0]]])  # layer-normed: [1, -1]
    # top 2 of [a, b, c]: mean([0, 0], [1, -1]) = [0.5, -0.5] -> layer-normed [1, -1]
    assert torch.allclose(layer_average_targets([a, b, c], 2), torch.tensor([[[1.0, -1.0]]]), atol=1e-3)
    # top 3: mean([-1, 1], [0, 0], [1, -1]) = [0, 0] -> [0, 0]
    assert torch.allclose(layer_average_targets([a, b, c], 3), torch.zeros(1, 1, 2), atol=1e-3)
    assert torch.allclose(layer_average_targets([a, b, c], 5), torch.zeros(1, 1, 2), atol=1e-3)  # all if fewer
