"""selfsup export --format hf|timm|onnx|torchscript (issue 20, part 1): each format read back by its own library
(huggingface_hub / transformers, timm, onnxruntime, torch.jit) gives the selfsup encoder's embeddings of real samples
(digits images, iris rows, JapaneseVowels series, Rotten Tomatoes texts); what a format cannot hold is refused in one line
with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from selfsup.checkpoint import load_encoder, save_encoder
from selfsup.cli import EXIT_USER_ERROR, EXPORT_FORMATS, main
from selfsup.datasets import load_builtin
from selfsup.encoders import build_encoder, preprocessing_of
from selfsup.errors import SelfsupError
from selfsup.workflows import formats
from selfsup.workflows.export import export_encoder

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # torch 2.14
TINY = ["--max-steps", "2", "--batch-size", "32", "--no-probe"]
CLOSE = 1e-4  # float32 through another runtime: differences of 1e-6 are usual


def _pretrain(tmp_path_factory, name: str, *args: str) -> Path:
    out = tmp_path_factory.mktemp(name) / "run"
    assert main(["pretrain", *TINY, *args, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """small_cnn, 2 steps of SimCLR on digits (16 px)."""
    return _pretrain(tmp_path_factory, "image", "--data", "builtin:digits", "--image-size", "16")


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> Path:
    """An MLP, 2 steps on iris, with a kNN evaluation report in RUN/eval."""
    run = _pretrain(tmp_path_factory, "table", "--data", "builtin:iris")
    assert main(["evaluate", "--encoder", str(run), "--data", "builtin:iris", "--protocol", "knn", "--k", "5"]) == 0
    return run


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory) -> Path:
    """timm's test_vit at 32 px (a 2 x 2 grid of 16 px patches), 2 steps on digits."""
    return _pretrain(tmp_path_factory, "vit", "--data", "builtin:digits", "--encoder", "test_vit", "--image-size", "32")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """A one-layer BERT with MiniLM's tokenizer, saved as a run on the spoken-word captions (random weights: a
    round trip needs no training)."""
    from selfsup.encoders.text import text_encoder_config

    config = text_encoder_config("small_bert", embed_dim=32, depth=1, heads=2, mlp_dim=64, max_length=32)
    torch.manual_seed(0)
    encoder = build_encoder(config).eval()
    encoder.preprocessing = preprocessing_of(encoder)
    recipe = {"data": "builtin:spoken_word_captions", "method": "simcse", "out": "run"}
    return save_encoder(encoder, tmp_path_factory.mktemp("text") / "run", recipe)


def _series_run(folder: Path, name: str, **encoder_args) -> Path:
    """A small series encoder fitted to JapaneseVowels (12 channels, ragged: NaN after each series' end), saved as
    a run (random weights: a round trip needs no training)."""
    from selfsup.data import DataOptions
    from selfsup.modalities.timeseries import encoder_config, preprocessing

    splits = load_builtin("japanesevowels")
    config = encoder_config(name, splits, encoder_args=encoder_args)
    torch.manual_seed(0)
    encoder = build_encoder(config).eval()
    encoder.preprocessing = preprocessing(splits, DataOptions(), config)
    return save_encoder(encoder, folder / "run", {"data": "builtin:japanesevowels", "method": "ts2vec", "out": "run"})


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> Path:
    """TS2Vec's dilated convolutions."""
    return _series_run(tmp_path_factory.mktemp("series"), "dilated_conv", hidden_dim=16, depth=2, embed_dim=32)


def _images(run: Path, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Real digits (8 x 8) and the same resized to the encoder's size, as the exports take them."""
    x = load_builtin("digits").test.float_samples()[:n]
    size = int(load_encoder(run).config["image_size"])
    return x, F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _iris_rows(run: Path) -> torch.Tensor:
    from selfsup.sources import load_data

    return load_data("builtin:iris", preprocessing=preprocessing_of(load_encoder(run))).train.float_samples()[-30:]


def _expected(run: Path, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_encoder(run)(x)


def _max_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor) -> float:
    return float((torch.as_tensor(a).float() - b).abs().max())


def _record(out: Path) -> dict:
    record = json.loads((out / "export.json").read_text())
    assert record["format"] == "selfsup-export" and set(record["files"]) <= {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
    }
    return record


def _fails(capsys, argv: list[str]) -> str:
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err, err
    return err


# ------------------------------------------------------------------------------------------------ hf


def test_hf_image_folder_loads_offline_with_huggingface_hub_and_has_a_model_card(image_run, tmp_path, capsys):
    from huggingface_hub import ModelCard

    from selfsup.encoders.hub import HubEncoder

    out = tmp_path / "hf"
    assert main(["export", "--run", str(image_run), "--format", "hf", "--out", str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "read back with huggingface_hub: max abs difference" in said
    assert {"config.json", "model.safetensors", "README.md", "preprocessing.json", "export.json"} <= {
        p.name for p in out.iterdir()
    }
    loaded = HubEncoder.from_pretrained(out, local_files_only=True)
    raw, _ = _images(image_run)
    with torch.no_grad():
        assert _max_diff(loaded(raw), _expected(image_run, raw)) < CLOSE
    assert loaded.encoder.preprocessing.as_dict() == load_encoder(image_run).preprocessing.as_dict()
    card = ModelCard.load(out / "README.md")  # the Hub's own reader of the front matter
    assert card.data.library_name == "selfsup" and card.data.license == "other"
    assert {"selfsup", "self-supervised", "image", "simclr"} <= set(card.data.tags)
    for section in ("## How to use", "## Training recipe", "## Training data", "## Evaluation", "## Intended use"):
        assert section in card.text
    assert "1,797 handwritten digits" in card.text  # the built-in data's description
    recipe = yaml.safe_load(card.text.split("```yaml\n")[1].split("```")[0])
    assert recipe["method"] == "simclr" and recipe["data"] == "builtin:digits" and recipe["max_steps"] == 2
    assert "no evaluation report" in card.text
    assert _record(out)["check"]["max_abs_diff"] < CLOSE


def test_hf_table_card_carries_the_runs_evaluation_table(table_run, tmp_path):
    from selfsup.encoders.hub import HubEncoder

    out = export_encoder(table_run, tmp_path / "hf", format="hf")
    loaded = HubEncoder.from_pretrained(out)
    rows = _iris_rows(table_run)
    with torch.no_grad():
        assert _max_diff(loaded(rows), _expected(table_run, rows)) < CLOSE
    report = json.loads((table_run / "eval" / "results.json").read_text())
    card = (out / "README.md").read_text()
    for row in report["rows"]:  # every row of the report, its accuracy as the report has it
        assert f"| builtin:iris | {row['encoder']} | {row['protocol']} | {row['accuracy']:.1%} |" in card


def test_hf_text_folder_is_what_transformers_reads(text_run, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from selfsup.encoders.text import tokenize

    out = export_encoder(text_run, tmp_path / "hf", format="hf")
    encoder = load_encoder(text_run)
    texts = _texts()
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModel.from_pretrained(out, local_files_only=True).eval()
    batch = tokenizer(texts, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    with pytest.warns(UserWarning, match="3 of 12 texts are longer than small_bert's 32 tokens"):
        ids = tokenize(texts, encoder.config)
    assert torch.equal(batch.input_ids, ids)  # the folder's tokenizer gives selfsup's ids
    with torch.no_grad():
        hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        mask = batch.attention_mask.unsqueeze(-1)
        pooled = (hidden * mask).sum(1) / mask.sum(1)  # the card's mean pooling
        assert _max_diff(pooled, encoder(ids)) < CLOSE
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "AutoModel.from_pretrained" in card


def _texts() -> list[str]:
    """Real texts: Rotten Tomatoes snippets, some longer than the encoder's 32 tokens."""
    from selfsup.datasets.text import rotten_tomatoes_frame

    return rotten_tomatoes_frame()["text"].tolist()[:12]


# ------------------------------------------------------------------------------------------------ timm


def test_timm_folder_loads_with_timm_at_the_runs_image_size(vit_run, tmp_path):
    import timm

    out = tmp_path / "timm"
    assert main(["export", "--run", str(vit_run), "--format", "timm", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    encoder = load_encoder(vit_run)
    assert config["architecture"] == "test_vit" and config["num_classes"] == 0
    assert config["pretrained_cfg"]["input_size"] == [1, 32, 32]
    assert config["pretrained_cfg"]["mean"] == encoder.config["mean"] and "tag" not in config["pretrained_cfg"]
    raw, resized = _images(vit_run)
    expected = _expected(vit_run, raw)
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    data = timm.data.resolve_model_data_config(model)
    assert data["input_size"] == (1, 32, 32)
    mean, std = (torch.tensor(data[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    overlay = timm.create_model(  # the other way: the architecture by name, the weights from the file
        "test_vit",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(out / "model.safetensors")},
        num_classes=0,
        in_chans=1,
        img_size=32,
    ).eval()
    with torch.no_grad():
        assert _max_diff(model((resized - mean) / std), expected) < CLOSE
        assert _max_diff(overlay((resized - mean) / std), expected) < CLOSE
    assert "library_name: timm" in (out / "README.md").read_text()


def test_timm_refuses_what_timm_cannot_build(image_run, tmp_path, capsys, digits):
    from selfsup.modalities.image import encoder_config

    out = tmp_path / "timm"
    err = _fails(capsys, ["export", "--run", str(image_run), "--format", "timm", "--out", str(out)])
    assert "selfsup's own 'small_cnn'" in err and "--format hf, onnx, torchscript" in err
    resnet = build_encoder(encoder_config("resnet18", digits, 32))  # selfsup's small-image stem at 32 px
    run = save_encoder(resnet, tmp_path / "resnet", {"data": "builtin:digits"})
    err = _fails(capsys, ["export", "--run", str(run), "--format", "timm", "--out", str(out)])
    assert "small-image stem" in err and "--image-size 65" in err
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ onnx


def _session(out: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    return session, session.get_inputs()[0].name


def test_onnx_image_and_table_match_torch_with_any_batch_size(image_run, table_run, tmp_path, capsys):
    out = tmp_path / "image"
    assert main(["export", "--run", str(image_run), "--format", "onnx", "--out", str(out)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "read back with onnxruntime: max abs difference from the encoder" in said
    session, name = _session(out)
    raw, resized = _images(image_run)
    expected = _expected(image_run, raw)
    for n in (1, 5, len(raw)):  # the batch axis is dynamic
        assert _max_diff(session.run(None, {name: resized[:n].numpy()})[0], expected[:n]) < CLOSE
    record = _record(out)
    assert record["check"]["with"] == "onnxruntime" and record["check"]["max_abs_diff"] < CLOSE
    assert record["input"] == {"shape": [None, 1, 16, 16], "dtype": "float32"}

    out = export_encoder(table_run, tmp_path / "table", format="onnx")
    session, name = _session(out)
    rows = _iris_rows(table_run)
    assert _max_diff(session.run(None, {name: rows.numpy()})[0], _expected(table_run, rows)) < CLOSE


def test_onnx_series_and_text(series_run, text_run, tmp_path):
    out = export_encoder(series_run, tmp_path / "series", format="onnx")
    session, name = _session(out)
    series = load_builtin("japanesevowels", preprocessing_of(load_encoder(series_run))).test.float_samples()[:20]
    assert series.isnan().any()  # ragged: padded with NaN
    assert _max_diff(session.run(None, {name: series.numpy()})[0], _expected(series_run, series)) < CLOSE

    from selfsup.encoders.text import tokenize

    out = export_encoder(text_run, tmp_path / "text", format="onnx")
    session, name = _session(out)
    with pytest.warns(UserWarning, match="cut to 32"):
        ids = tokenize(_texts(), load_encoder(text_run).config)
    assert name == "input_ids" and (out / "tokenizer.json").is_file()
    assert _max_diff(session.run(None, {name: ids.numpy()})[0], _expected(text_run, ids)) < CLOSE


def test_a_token_transformer_exports_with_its_padding_mask(tmp_path):
    """A patch transformer over ragged series: padded patches are masked out of attention in the exports too
    (``formats.MaskedTokens``), with any batch size."""
    run = _series_run(tmp_path, "patch_transformer", embed_dim=32, depth=1, heads=2, mlp_dim=32, patch_size=4)
    series = load_builtin("japanesevowels", preprocessing_of(load_encoder(run))).test.float_samples()[:20]
    short = series[:, 0].isnan().any(dim=1)
    assert short.any() and not short.all()  # some series padded, some full length
    expected = _expected(run, series)
    session, name = _session(export_encoder(run, tmp_path / "onnx", format="onnx"))
    assert _max_diff(session.run(None, {name: series.numpy()})[0], expected) < CLOSE
    traced = torch.jit.load(str(export_encoder(run, tmp_path / "ts", format="torchscript") / "encoder.pt"))
    with torch.no_grad():
        assert _max_diff(traced(series), expected) < CLOSE


# ------------------------------------------------------------------------------------------------ torchscript


def test_torchscript_image_and_table_round_trip_also_from_a_checkpoint(image_run, table_run, tmp_path):
    raw, resized = _images(image_run)
    rows = _iris_rows(table_run)
    for kind, run, x, given in (("image", image_run, raw, resized), ("table", table_run, rows, rows)):
        out = export_encoder(run, tmp_path / kind, format="torchscript")
        traced = torch.jit.load(str(out / "encoder.pt"))
        with torch.no_grad():
            assert _max_diff(traced(given), _expected(run, x)) < CLOSE
    # from the run's last training checkpoint: the encoder in it (here the same weights as the run's export)
    out = export_encoder(
        image_run, tmp_path / "ckpt", checkpoint=image_run / "checkpoints" / "last.ckpt", format="torchscript"
    )
    with torch.no_grad():
        assert _max_diff(torch.jit.load(str(out / "encoder.pt"))(resized), _expected(image_run, raw)) < CLOSE
    assert _record(out)["checkpoint"].endswith("last.ckpt")


# ------------------------------------------------------------------------------------------------ refusals, folders


def test_bad_formats_and_pairs_are_one_line_with_nothing_written(table_run, tmp_path, capsys):
    out = tmp_path / "out"
    err = _fails(capsys, ["export", "--run", str(table_run), "--format", "onnnx", "--out", str(out)])
    assert "invalid choice: 'onnnx'" in err
    with pytest.raises(SelfsupError, match="unknown export format 'onnnx'. Did you mean 'onnx'"):
        export_encoder(table_run, out, format="onnnx")
    side = load_encoder(table_run).config
    pair = build_encoder(
        {"name": "pair", "modality": "pairs", "a": side | {"projection": 8}, "b": side | {"projection": 8}}
    )
    paired = save_encoder(pair, tmp_path / "paired", {"data": "builtin:iris"})
    err = _fails(capsys, ["export", "--run", str(paired), "--format", "onnx", "--out", str(out)])
    assert "paired run" in err and "tabular_a" in err and "tabular_b" in err
    err = _fails(capsys, ["export", "--run", str(table_run), "--check-data", "builtin:iris", "--out", str(out)])
    assert "--check-data checks exports in other formats" in err
    err = _fails(
        capsys,
        ["export", "--run", str(table_run), "--format", "hf", "--check-data", "builtin:digits", "--out", str(out)],
    )
    assert "cannot read samples from 'builtin:digits'" in err and "--check-data" in err
    assert not out.exists()


def test_overwrite_replaces_only_an_earlier_export(table_run, tmp_path, capsys):
    out = export_encoder(table_run, tmp_path / "out", format="torchscript")
    (out / "notes.txt").write_text("mine")
    argv = ["export", "--run", str(table_run), "--format", "hf", "--out", str(out)]
    assert "--overwrite" in _fails(capsys, argv)
    (out / "README.md").write_text("my notes")  # where the hf export's model card would go
    assert "holds 'README.md', which selfsup did not write" in _fails(capsys, [*argv, "--overwrite"])
    assert (out / "README.md").read_text() == "my notes" and (out / "encoder.pt").is_file()  # nothing changed
    (out / "README.md").unlink()
    assert main([*argv, "--overwrite"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "encoder.pt" not in names and {"model.safetensors", "notes.txt", "export.json"} <= names
    assert _record(out)["export_format"] == "hf"
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("a\n1\n")
    assert "did not write" in _fails(capsys, [*argv[:-1], str(other), "--overwrite"])
    assert [p.name for p in other.iterdir()] == ["data.csv"]


def test_the_cli_lists_every_format_with_how_to_load_it(capsys):
    assert set(EXPORT_FORMATS) == set(formats.FORMATS)
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    said = capsys.readouterr().out
    for name, line in EXPORT_FORMATS.items():
        assert f"{name:<12} {line}" in said
