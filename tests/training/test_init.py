"""--init: continued pre-training from a selfsup export, a timm weights file or a local model folder;
mismatches are reported, bad checkpoints refused before anything is written; head warm-up keeps the
checkpoint's features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from selfsup.checkpoint import load_encoder, save_encoder
from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.embed import embed
from selfsup.evaluation.knn import knn_predict
from selfsup.modalities.image import encoder_config as image_config
from selfsup.recipe import make_recipe
from selfsup.training.init import load_into, match_state, read_init
from selfsup.workflows.pretrain import pretrain

TINY = ["--epochs", "1", "--max-steps", "2", "--batch-size", "32"]


@pytest.fixture(scope="module")
def table_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    assert main(["pretrain", "--data", "builtin:iris", "--method", "simclr", "--out", str(out), *TINY]) == 0
    return out


def test_continuing_an_export_starts_from_its_weights(table_export) -> None:
    source = load_encoder(table_export)
    encoder = build_encoder(source.config)
    report = load_into(encoder, read_init(table_export))
    assert not report.missing and not report.unexpected and not report.mismatched
    x = load_builtin("iris").train.float_samples()
    assert torch.equal(encoder.eval()(x), source(x))


def test_the_run_keeps_an_init_report(table_export, tmp_path) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                "builtin:iris",
                "--method",
                "byol",
                "--init",
                str(table_export),
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    report = json.loads((out / "init.json").read_text())
    assert report["missing"] == [] and report["unexpected"] == [] and len(report["loaded"]) > 0


def _resnet_state() -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=10).state_dict()  # ImageNet stem + fc


def test_timm_weights_are_mapped_and_mismatches_reported(digits) -> None:
    encoder = build_encoder(image_config("resnet18", digits, 32))  # CIFAR stem: conv1 is 3x3
    state = {"module." + k: v for k, v in _resnet_state().items()}  # as DDP saves it
    mapped, report = match_state(encoder, state)
    assert report.mapping == "'module.*' -> 'backbone.*'"
    assert ("backbone.conv1.weight", (64, 3, 7, 7), (64, 1, 3, 3)) in report.mismatched
    assert "module.fc.weight" in report.unexpected and "module.fc.bias" in report.unexpected
    # kept as built: the input statistics fitted on the data, and the random-init 3x3 stem
    assert sorted(report.missing) == ["backbone.conv1.weight", "mean", "std"]
    assert torch.equal(mapped["backbone.layer1.0.conv1.weight"], state["module.layer1.0.conv1.weight"])


@pytest.mark.parametrize("layout", ["safetensors", "pth", "hf_folder"])
def test_weights_files_and_model_folders(layout, digits, tmp_path) -> None:
    state = _resnet_state()
    if layout == "safetensors":
        source = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(source))
    elif layout == "pth":
        source = tmp_path / "w.pth"
        torch.save({"state_dict": state, "epoch": 3}, source)
    else:
        source = tmp_path / "resnet"
        source.mkdir()
        (source / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 10}))
        save_file({k: v.contiguous() for k, v in state.items()}, str(source / "model.safetensors"))
    init = read_init(source)
    assert init.architecture == ("resnet18" if layout == "hf_folder" else None)
    encoder = build_encoder(image_config("resnet18", digits, 32))
    report = load_into(encoder, init)
    assert len(report.loaded) == len(encoder.state_dict()) - 3  # all but the CIFAR stem and the input statistics


def test_hf_folder_names_the_encoder(digits, tmp_path) -> None:
    folder = tmp_path / "resnet"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet18"}))
    save_file({k: v.contiguous() for k, v in _resnet_state().items()}, str(folder / "model.safetensors"))
    out = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                "builtin:digits",
                "--init",
                str(folder),
                "--out",
                str(out),
                *TINY,
                "--image-size",
                "32",
            ]
        )
        == 0
    )
    assert json.loads((out / "selfsup.json").read_text())["encoder"]["name"] == "resnet18"


class _NotWeights:
    pass


@pytest.mark.parametrize(
    "case, message",
    [
        ("pickle", "only code execution could rebuild"),
        ("corrupt_pth", "not a checkpoint"),
        ("corrupt_safetensors", "corrupted or truncated"),
        ("other_modality", "is a tabular encoder but 'builtin:digits' is image data"),
        ("other_architecture", "fits encoder 'small_cnn'"),
        ("missing", "does not exist"),
        ("suffix", "unknown weights format"),
    ],
)
def test_bad_checkpoints_fail_before_writing(case, message, table_export, tmp_path, capsys) -> None:
    source = {"other_modality": table_export, "missing": tmp_path / "nope.pth"}.get(case, tmp_path / "w.pth")
    if case == "pickle":
        torch.save({"state_dict": {"w": torch.ones(1)}, "extra": _NotWeights()}, source)
    elif case == "corrupt_pth":
        source.write_bytes(b"not a zip or pickle")
    elif case == "corrupt_safetensors":
        source = tmp_path / "w.safetensors"
        source.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    elif case == "other_architecture":
        torch.save(_resnet_state(), source)
    elif case == "suffix":
        source = tmp_path / "w.onnx"
        source.write_bytes(b"x")
    out = tmp_path / "run"
    capsys.readouterr()
    assert (
        main(["pretrain", "--data", "builtin:digits", "--init", str(source), "--out", str(out), *TINY])
        == EXIT_USER_ERROR
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err and message in err, err
    assert not out.exists()


def test_an_export_refuses_another_encoder_name_or_arguments(table_export, tmp_path) -> None:
    for extra, message in (
        (dict(encoder="ft_transformer"), "not 'ft_transformer'"),
        (dict(encoder_args={"width": 8}), "cannot change the architecture"),
    ):
        recipe = make_recipe(data="builtin:iris", init=str(table_export), out=str(tmp_path / "run"), **extra)
        with pytest.raises(SelfsupError, match=message):
            pretrain(recipe, progress=False)
        assert not (tmp_path / "run").exists()


def _knn(encoder, splits) -> float:
    train, test = splits.train, splits.test
    predicted = knn_predict(
        embed(encoder, train.float_samples()), train.y.numpy(), embed(encoder, test.float_samples())
    )
    return float((predicted == test.y.numpy()).mean())


def test_head_warm_up_leaves_the_encoder_untouched(table_export) -> None:
    """While frozen, the encoder's weights and batch-norm statistics stay as loaded, across epochs and the
    online probe's validation passes (which toggle train/eval); BYOL's heads and target do train."""
    import lightning as L
    from torch.utils.data import DataLoader

    from selfsup.methods.base import build_method
    from selfsup.modalities import get_modality
    from selfsup.training.module import PretrainModule
    from selfsup.training.probe import OnlineProbe

    splits = load_builtin("iris")
    encoder = load_encoder(table_export).train()
    start = {k: v.clone() for k, v in encoder.state_dict().items()}
    method = build_method("byol", encoder, {"hidden_dim": 32, "projection_dim": 16})
    heads = {k: v.clone() for k, v in method.projector.state_dict().items()}
    views = get_modality("tabular").make_views(method.views, splits, encoder.config, {})
    module = PretrainModule(method, views, lr=1e-2, weight_decay=0.1, warmup_fraction=0.0, freeze_encoder_steps=8)
    loader = DataLoader(splits.train, batch_size=32, shuffle=True, drop_last=True)  # 3 steps per epoch
    trainer = L.Trainer(
        max_steps=8,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[OnlineProbe(encoder.embed_dim, 3)],
    )
    trainer.fit(module, loader, DataLoader(splits.test, batch_size=64))
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in start.items())
    assert any(not torch.equal(v, method.projector.state_dict()[k]) for k, v in heads.items())


def test_freezing_longer_than_the_run_is_refused(table_export, tmp_path) -> None:
    recipe = make_recipe(
        data="builtin:iris", init=str(table_export), freeze_encoder_steps=10, max_steps=10, out=str(tmp_path / "run")
    )
    with pytest.raises(SelfsupError, match="not below the run's 10 steps"):
        pretrain(recipe, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_head_warm_up_keeps_the_checkpoint_features(tmp_path, digits) -> None:
    """Continued pre-training from a checkpoint, BYOL's new heads warmed up with the encoder frozen: a short
    run keeps kNN accuracy on the source data within 3 points of the checkpoint's."""
    torch.manual_seed(0)
    source = tmp_path / "source"
    save_encoder(build_encoder(image_config("small_cnn", digits, 16)), source)  # the checkpoint
    before = _knn(load_encoder(source), digits)
    start = load_encoder(source).state_dict()
    run = pretrain(
        make_recipe(
            data="builtin:digits",
            method="byol",
            init=str(source),
            freeze_encoder_steps=5,
            max_steps=15,
            epochs=2,
            batch_size=64,
            lr=1e-4,
            out=str(tmp_path / "run"),
        ),
        progress=False,
    )
    assert any(not torch.equal(v, run.encoder.state_dict()[k]) for k, v in start.items() if v.is_floating_point())
    after = _knn(run.encoder, digits)
    assert abs(after - before) <= 0.03, (before, after)
    assert np.isfinite([loss for _, loss in run.loss_history]).all()


def test_a_checkpoint_that_fits_only_in_part_is_refused(digits, tmp_path) -> None:
    shallow = build_encoder(image_config("vit", digits, 16, {"depth": 1}))  # the default vit has 4 blocks
    save_file({k: v.contiguous() for k, v in shallow.state_dict().items()}, str(tmp_path / "w.safetensors"))
    encoder = build_encoder(image_config("vit", digits, 16))
    with pytest.raises(SelfsupError, match=r"only \d+% of encoder 'vit''s weights"):
        load_into(encoder, read_init(tmp_path / "w.safetensors"))


def test_an_rgb_export_continues_on_grey_data_with_its_first_layer_adapted(digits, tmp_path, capsys) -> None:
    """3 -> 1 channels: the run's encoder takes the data's channel and statistics; init.json says what was adapted."""
    config = image_config("small_cnn", digits, 16) | {"in_chans": 3, "mean": [0.5] * 3, "std": [0.2] * 3}
    rgb = build_encoder(config)
    save_encoder(rgb, tmp_path / "rgb")
    first = next(n for n, m in rgb.named_modules() if isinstance(m, torch.nn.Conv2d)) + ".weight"
    out = tmp_path / "run"
    argv = ["pretrain", "--data", "builtin:digits", "--init", str(tmp_path / "rgb"), "--out", str(out), *TINY]
    assert main(argv) == 0
    report = json.loads((out / "init.json").read_text())
    assert report["adapted"] == [[first, "3 -> 1 channels"]]
    assert sorted(report["missing"]) == ["mean", "std"] and report["shape_mismatch"] == [] and not report["unexpected"]
    encoder = load_encoder(out)
    grey = image_config("small_cnn", digits, 16)
    assert encoder.config["in_chans"] == 1 and encoder.config["mean"] == pytest.approx(grey["mean"])
    assert encoder.config["image_size"] == 16


@pytest.mark.parametrize(
    "name, args",
    [
        ("byol", {"hidden_dim": 32, "projection_dim": 16}),
        ("dino", {"hidden_dim": 32, "bottleneck_dim": 16, "prototypes": 32}),
    ],
)
def test_bootstrap_teachers_start_from_the_checkpoint(name, args, table_export) -> None:
    from selfsup.methods.base import build_method

    encoder = build_encoder(load_encoder(table_export).config)
    load_into(encoder, read_init(table_export))
    method = build_method(name, encoder, args)
    teacher = method.target[0] if name == "byol" else method.teacher[0]
    checkpoint = load_encoder(table_export).state_dict()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in checkpoint.items())
