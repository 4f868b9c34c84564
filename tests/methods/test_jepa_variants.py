"""JEPA's variant options and their presets: T-JEPA's masks and regularisation tokens, ECG-JEPA's masks and
register token, SAR-JEPA's gradient targets, each against a hand-computed case, then a few training steps."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import torch

from selfsup.data import DataOptions
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.losses.gradient_targets import gradient_targets, paper_radii, ratio_gradient
from selfsup.methods import METHODS
from selfsup.methods.base import build_method
from selfsup.methods.jepa_masks import ecg_masks, keep_block_mask, tjepa_masks
from selfsup.modalities import get_modality

DATA = {
    "image": ("digits", {"embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64}),
    "timeseries": ("gunpoint", {"embed_dim": 32, "depth": 2, "heads": 4, "mlp_dim": 64, "patch_size": 5}),
    "tabular": ("breast_cancer", {"d_token": 32, "n_layers": 2, "n_heads": 4}),
}
SMALL = {"predictor_dim": 32, "predictor_depth": 1}

pytestmark = pytest.mark.usefixtures("one_thread")


def token_encoder(modality: str) -> tuple[torch.nn.Module, torch.Tensor]:
    name, args = DATA[modality]
    splits = load_builtin(name)
    module = get_modality(modality)
    torch.manual_seed(0)
    config = module.encoder_config(module.token_encoder, splits, DataOptions(), args)
    return build_encoder(config), splits.train.float_samples()[:32]


def scripted(draws: list[int], calls: list[tuple[int, int]]):
    """A ``randint(low, high)`` that returns ``draws`` in turn and records its ranges."""
    queue = list(draws)

    def randint(low: int, high: int) -> int:
        calls.append((low, high))
        value = queue.pop(0)
        assert low <= value <= high
        return value

    return randint


def test_ecg_keep_block_mask_matches_a_hand_traced_draw() -> None:
    # 20 patches, keep 5, runs >= 4. Draw free patch 0 -> interval [0, 20); run of 6 at 3 -> masked 3..8.
    # Free [0,3) + [9,20): patch 5 of 14 lies in [9, 20); run of 9 (all that is left) at 11 -> masked 11..19.
    calls: list[tuple[int, int]] = []
    kept = keep_block_mask(20, 5, 4, scripted([0, 6, 3, 5, 9, 11], calls))
    assert [i for i, k in enumerate(kept) if k] == [0, 1, 2, 9, 10]
    assert calls == [(0, 19), (4, 15), (0, 14), (0, 13), (4, 9), (9, 11)]
    # 10 patches, keep 3, runs >= 5: a run of 5 at 2 masks 2..6; the remaining 2 (< 5) are drawn into [7, 10)
    # and attached to the run before it (the interval touches the series end, so its start is the only choice).
    calls = []
    kept = keep_block_mask(10, 3, 5, scripted([0, 5, 2, 3, 0], calls))
    assert [i for i, k in enumerate(kept) if k] == [0, 1, 9]
    assert calls == [(0, 9), (5, 7), (0, 5), (0, 4), (0, 0)]


def _runs(row: np.ndarray) -> list[int]:
    """Lengths of the maximal runs of True in ``row``."""
    edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_ecg_masks_keep_a_share_and_mask_long_runs_along_time() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        context, [target] = ecg_masks(16, 40, context_scale=(0.15, 0.25), min_block=10, generator=generator)
        assert 6 <= context.shape[1] <= 10 and context.shape[1] + target.shape[1] == 40
        for keep, masked in zip(context, target):
            assert sorted(keep.tolist() + masked.tolist()) == list(range(40))
            row = np.zeros(40, dtype=bool)
            row[masked.numpy()] = True
            assert min(_runs(row)) >= 10, _runs(row)


def test_tjepa_masks_draw_the_context_first_and_targets_from_the_rest() -> None:
    generator = torch.Generator().manual_seed(0)
    context, targets = tjepa_masks(
        8, 30, n_targets=4, target_scale=(0.2, 0.4), context_scale=(0.2, 0.4), generator=generator
    )
    assert 6 <= context.shape[1] <= 12 and len(targets) == 4
    for target in targets:
        assert 6 <= target.shape[1] <= 12
        for keep, part in zip(context, target):
            assert not set(keep.tolist()) & set(part.tolist())  # never a context feature
            assert len(set(part.tolist())) == len(part)
    # half the features as context and half as each target: every target is exactly the other half
    context, targets = tjepa_masks(5, 4, n_targets=3, target_scale=(0.5, 0.5), context_scale=(0.5, 0.5))
    complement = [sorted(set(range(4)) - set(row)) for row in context.tolist()]
    assert all(target.tolist() == complement for target in targets)


def test_ratio_gradient_matches_hand_computed_values() -> None:
    x = torch.tensor([1.0, 1.0, 3.0, 3.0]).expand(1, 1, 4, 4).contiguous()  # a vertical edge
    g = ratio_gradient(x, 1)
    # reflect-padded columns 1 1 1 3 3 3; +0.01. Column 1 sees [1, 1, 3]: left 3*(1.01+1.01), right 3*(1.01+3.01);
    # column 2 sees [1, 3, 3]; columns 0 and 3 see flat windows; rows are all equal, so g_y = 0.
    a, b = abs(math.log(2.02 / 4.02)), abs(math.log(4.02 / 6.02))
    expected = torch.tensor([0.0, a, b, 0.0]).expand(4, 4)
    assert torch.allclose(g[0, 0], expected, atol=1e-6)
    tokens = gradient_targets(x, 2, (1,))
    assert tokens.shape == (1, 4, 4)
    assert torch.allclose(tokens[0, 0], torch.tensor([0.0, a, 0.0, a]), atol=1e-6)  # token 0: pixels (0,0..1), (1,0..1)
    assert torch.allclose(tokens[0, 1], torch.tensor([b, 0.0, b, 0.0]), atol=1e-6)
    assert gradient_targets(x, 2, (1, 2)).shape == (1, 4, 8)  # scales concatenated per token
    assert paper_radii(16) == (5, 9, 13, 17) and paper_radii(4) == (1, 2, 3, 4)
    with pytest.raises(SelfsupError, match="radius"):
        ratio_gradient(x, 4)


@pytest.mark.parametrize("modality", ["tabular", "timeseries"])
def test_register_tokens_join_the_sequence_and_leave_the_output(modality: str) -> None:
    encoder, x = token_encoder(modality)
    encoder.eval()
    prefix = encoder.n_prefix
    first = None if encoder.prefix is None else encoder.prefix[0].detach().clone()
    before = encoder.run(x)
    encoder.add_registers(2)
    assert encoder.n_prefix == prefix + 2 and encoder.prefix.shape[0] == prefix + 2
    assert encoder.config["registers"] == 2
    if first is not None:  # ft_transformer's [CLS] stays first: pool='cls' still reads it
        assert torch.equal(encoder.prefix[0], first)
    after = encoder.run(x)
    assert after.tokens.shape == before.tokens.shape  # dropped from the output tokens
    assert not torch.allclose(after.tokens, before.tokens)  # and attended to
    with torch.no_grad():
        encoder.prefix[-1].add_(1.0)
    assert not torch.allclose(encoder.run(x).tokens, after.tokens)
    rebuilt = build_encoder(encoder.config)  # a saved encoder rebuilds its registers and loads
    rebuilt.load_state_dict(encoder.state_dict())
    assert torch.allclose(rebuilt.eval()(x), encoder(x))
    encoder.add_registers(2)  # the same count again: nothing to do
    with pytest.raises(SelfsupError, match="2 register tokens"):
        encoder.add_registers(3)


def test_an_encoder_without_registers_is_unchanged() -> None:
    encoder, _ = token_encoder("image")
    assert "registers" not in encoder.config and encoder.prefix is None and encoder.n_registers == 0
    assert set(build_encoder(encoder.config).state_dict()) == set(encoder.state_dict())


def test_presets_turn_their_options_on_and_name_what_they_leave_out() -> None:
    assert METHODS["tjepa"].Config().masking == "tjepa" and METHODS["tjepa"].Config().registers == 1
    ecg = METHODS["ecg_jepa"].Config()
    assert (ecg.masking, ecg.loss, ecg.registers, ecg.context_scale) == ("ecg_jepa", "l1", 1, (0.15, 0.25))
    assert METHODS["sar_jepa"].Config().target == "gradient"
    assert "local windows" in METHODS["sar_jepa"].summary and "T-JEPA" not in METHODS["jepa"].paper
    for name in ("tjepa", "ecg_jepa", "sar_jepa"):
        assert "Simplifications" in str(importlib.import_module(METHODS[name].__module__).__doc__)


def test_gradient_targets_replace_the_teacher() -> None:
    encoder, x = token_encoder("image")
    method = build_method("sar_jepa", encoder, SMALL)
    assert method.teacher is None
    tokens, valid = method.targets(x)
    p = encoder.tokenizer.patch_size
    size = encoder.tokenizer.image_size
    resized = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    assert torch.allclose(tokens, gradient_targets(resized, p, paper_radii(p)))
    assert valid.all()


def test_variant_options_are_refused_where_they_do_not_fit() -> None:
    series, _ = token_encoder("timeseries")
    with pytest.raises(SelfsupError, match="image"):
        build_method("jepa", series, SMALL | {"target": "gradient"})
    table, x = token_encoder("tabular")
    with pytest.raises(SelfsupError, match="series"):
        build_method("jepa", table, SMALL | {"masking": "ecg_jepa"}).check_data(x)


@pytest.mark.parametrize(
    ("name", "modality"), [("tjepa", "tabular"), ("ecg_jepa", "timeseries"), ("sar_jepa", "image")]
)
def test_variant_trains_on_real_data(name: str, modality: str, train_fixed) -> None:
    encoder, x = token_encoder(modality)
    method = build_method(name, encoder, SMALL)
    method.check_data(x)
    if method.teacher is not None:  # the teacher is copied after the registers are added
        assert method.teacher.n_registers == method.encoder.n_registers
    before = {k: v.clone() for k, v in method.encoder.state_dict().items()}
    losses = train_fixed(method, x, steps=15)
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    after = method.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point)


def test_methods_lists_the_presets(capsys) -> None:
    from selfsup.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("tjepa", "ecg_jepa", "sar_jepa"))


def test_a_saved_run_rebuilds_its_register_token(tmp_path) -> None:
    from selfsup.cli import main

    out, data = tmp_path / "run", "builtin:italypowerdemand"
    tiny = ["--epochs", "1", "--max-steps", "2", "--batch-size", "32", "--encoder-arg", "depth=1"]
    assert main(["pretrain", "--data", data, "--method", "ecg_jepa", "--out", str(out), *tiny]) == 0
    assert json.loads((out / "selfsup.json").read_text())["encoder"]["registers"] == 1
    embeddings = tmp_path / "e.npy"
    assert main(["embed", "--encoder", str(out), "--data", data, "--out", str(embeddings)]) == 0  # loads strictly
    assert np.isfinite(np.load(embeddings)).all()


@pytest.mark.parametrize(("progress", "momentum"), [(0.0, 0.5), (0.5, 0.7), (1.0, 0.9)])
def test_the_momentum_moves_from_start_to_end_along_a_cosine(progress: float, momentum: float) -> None:
    encoder, _ = token_encoder("image")
    method = build_method("jepa", encoder, SMALL | {"momentum": 0.5, "momentum_end": 0.9})
    with torch.no_grad():
        for teacher, student in zip(method.teacher.parameters(), method.encoder.parameters()):
            teacher.zero_()
            student.fill_(1.0)
    method.on_train_batch_end(progress)  # teacher <- m * 0 + (1 - m) * 1
    assert all(torch.allclose(p, torch.full_like(p, 1 - momentum)) for p in method.teacher.parameters())
