"""Paired pre-training end to end (CLIP on the built-in spoken words and their captions): the run writes the
pair and each side as an ordinary export, a side evaluates with zero-shot rows, a resumed run and an export
from a checkpoint keep the sides, and misuse is refused in one line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from selfsup.checkpoint import PREPROCESSING, load_encoder, read_meta
from selfsup.cli import main
from selfsup.errors import SelfsupError
from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
from selfsup.recipe import make_recipe
from selfsup.sources import load_data
from selfsup.workflows.export import export_encoder
from selfsup.workflows.pretrain import pretrain, resume_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL_RUN = [
    "--encoder-arg",
    "n_mels=32",
    "--encoder-arg",
    "width=8",
    "--pair-encoder",
    "small_bert",
    "--pair-encoder-arg",
    "embed_dim=32",
    "--pair-encoder-arg",
    "depth=1",
    "--pair-encoder-arg",
    "heads=2",
    "--pair-encoder-arg",
    "mlp_dim=64",
    "--pair-encoder-arg",
    "max_length=24",
    "--method-arg",
    "dim=16",
    "--batch-size",
    "32",
    "--epochs",
    "1",
    "--max-steps",
    "3",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip") / "run"
    code = main(
        [
            "pretrain",
            "--method",
            "clip",
            "--data",
            "builtin:spoken_words",
            "--pair-data",
            "builtin:spoken_word_captions",
            "--out",
            str(out),
        ]
        + SMALL_RUN
    )
    assert code == 0
    return out


def test_run_writes_the_pair_and_each_side(run) -> None:
    assert read_meta(run)["modality"] == "pairs"
    audio, text = load_encoder(run / "audio"), load_encoder(run / "text")
    assert audio.config["modality"] == "audio" and audio.embed_dim == 16 and audio.config["projection"] == 16
    assert text.config["name"] == "small_bert" and text.embed_dim == 16
    assert read_meta(run / "audio")["paired_with"] == "../text"
    assert read_meta(run / "text")["paired_with"] == "../audio"
    with pytest.raises(SelfsupError, match="holds a pair of encoders.*pass one side: '.*audio' or '.*text'"):
        load_encoder(run)


@pytest.mark.slow
def test_a_side_evaluates_with_zero_shot_rows(run, tmp_path) -> None:
    result = evaluate(
        run / "audio",
        "builtin:spoken_words",
        EvaluationOptions(protocols=("knn", "zeroshot"), k=5, prompt="the word {}"),
        out=tmp_path / "eval",
    )
    zero = {r["encoder"]: r for r in result.rows if r["protocol"] == "zeroshot"}
    assert set(zero) == {"pretrained", "random-init"} and zero["pretrained"]["n_test"] == 160
    assert all(0 <= r["accuracy"] <= 1 and r["ci_low"] <= r["accuracy"] <= r["ci_high"] for r in zero.values())
    assert result.meta["zero_shot"]["prompts"][:2] == ["the word down", "the word go"]
    assert "**zeroshot**" in (tmp_path / "eval" / "summary.md").read_text()
    # by default a side with a text partner gets zero-shot rows; asking for other protocols leaves them out
    default = evaluate(run / "audio", "builtin:spoken_words", EvaluationOptions(k=5, baselines=False))
    assert {r["protocol"] for r in default.rows} == {"knn", "linear", "zeroshot"}
    assert {
        r["protocol"]
        for r in evaluate(
            run / "audio", "builtin:spoken_words", EvaluationOptions(protocols=("knn",), k=5, baselines=False)
        ).rows
    } == {"knn"}
    # the text side's partner is audio: no label prompts to embed, so no zero-shot rows, and no error
    text = evaluate(run / "text", "builtin:spoken_word_captions", EvaluationOptions(k=5, baselines=False))
    assert {r["protocol"] for r in text.rows} == {"knn", "linear"}
    with pytest.raises(SelfsupError, match="needs the text encoder trained with .*pass --partner"):
        evaluate(run / "text", "builtin:spoken_word_captions", EvaluationOptions(protocols=("zeroshot",)))
    with pytest.raises(SelfsupError, match="--partner is the text encoder for zero-shot rows; add zeroshot"):
        EvaluationOptions(protocols=("knn",), partner=run / "text")
    with pytest.raises(SelfsupError, match="encoder '.*nothing-here' does not exist"):
        evaluate(run / "nothing-here", "builtin:spoken_words")


def test_evaluate_cli_takes_prompt_and_refuses_a_bad_one(run, tmp_path, capsys) -> None:
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(run / "audio"),
                "--data",
                "builtin:spoken_words",
                "--protocol",
                "zeroshot",
                "--prompt",
                "the word {}",
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "e" / "results.json").read_text())["rows"]
    assert {(r["encoder"], r["protocol"]) for r in rows} == {("pretrained", "zeroshot"), ("random-init", "zeroshot")}
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(run / "audio"),
                "--data",
                "builtin:spoken_words",
                "--prompt",
                "the word",
                "--out",
                str(tmp_path / "f"),
            ]
        )
        != 0
    )
    assert "--prompt must hold '{}' once" in capsys.readouterr().err


def test_resume_and_export_keep_the_sides(run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    resumed = pretrain(resume_recipe(copy, max_steps=5), resume=True, progress=False)
    assert resumed.sides is not None and load_encoder(resumed.sides[0]).embed_dim == 16
    for checkpoint in (copy / "checkpoints" / "last.ckpt", None):
        out = export_encoder(copy, tmp_path / f"export-{checkpoint is None}", checkpoint=checkpoint)
        assert read_meta(out)["modality"] == "pairs"
        assert load_encoder(out / "audio").config["modality"] == "audio"
        assert read_meta(out / "text")["paired_with"] == "../audio"


def test_a_run_from_a_side_resumes_and_a_killed_run_says_how_to_export(run, tmp_path) -> None:
    recipe = make_recipe(
        data="builtin:spoken_words",
        pair_data="builtin:spoken_word_captions",
        method="clip",
        init=str(run / "audio"),
        pair_encoder="small_bert",
        max_steps=2,
        batch_size=32,
        method_args={"dim": 16},
        online_probe=False,
        out=str(tmp_path / "again"),
        pair_encoder_args={"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 24},
    )
    pretrain(recipe, progress=False)
    resumed = pretrain(resume_recipe(tmp_path / "again", max_steps=3), resume=True, progress=False)
    assert load_encoder(resumed.sides[0]).config["projection"] == 16  # the side's projection, not a second one
    shutil.rmtree(tmp_path / "again" / "audio")
    shutil.rmtree(tmp_path / "again" / "text")
    with pytest.raises(SelfsupError, match="has not written its sides yet; export them with 'selfsup export"):
        load_encoder(tmp_path / "again")
    # the root's preprocessing.json (written at the run's start) gives each exported side how its data is read
    out = export_encoder(
        tmp_path / "again", tmp_path / "export", checkpoint=tmp_path / "again" / "checkpoints" / "last.ckpt"
    )
    audio, text = load_encoder(out / "audio").preprocessing, load_encoder(out / "text").preprocessing
    assert audio.settings == {"sample_rate": 16000, "segment_seconds": 1.0}
    assert (text.modality, text.get("tokenizer"), text.get("max_length")) == ("text", "minilm", 24)


def test_captions_in_a_csv_with_an_id_column(tmp_path) -> None:
    """A CSV of captions pairs by its id column; each side saves how its data is read."""
    import pandas as pd

    from selfsup.datasets.speech import FOLDER, caption

    files = sorted((FOLDER / "train").glob("*/*.flac"))[::4]
    pd.DataFrame(
        {"id": [f"{f.parent.name}/{f.stem}" for f in files], "caption": [caption(f.parent.name, f.stem) for f in files]}
    ).to_csv(tmp_path / "c.csv", index=False)
    recipe = make_recipe(
        data="builtin:spoken_words",
        pair_data=str(tmp_path / "c.csv"),
        pair_modality="text",
        pair_text_field="caption",
        method="clip",
        pair_encoder="small_bert",
        max_steps=1,
        batch_size=16,
        method_args={"dim": 8},
        online_probe=False,
        out=str(tmp_path / "r"),
        encoder_args={"n_mels": 32, "width": 8},
        pair_encoder_args={"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 24},
    )
    result = pretrain(recipe, progress=False)
    assert len(result.splits.train) == len(files) and result.splits.test is None  # no test clip has a caption
    # each side is an ordinary export whose preprocessing.json says how its data is read: the text side, the CSV
    # column its captions came from, so 'selfsup embed --encoder r/text' reads the file pre-training read
    audio, captions = result.sides
    assert (audio / PREPROCESSING).is_file() and (captions / PREPROCESSING).is_file()
    side = load_encoder(captions).preprocessing
    assert (side.get("text_field"), side.get("max_length")) == ("caption", 24)
    assert len(load_data(str(tmp_path / "c.csv"), preprocessing=side).train) == len(files)
    assert load_encoder(audio).preprocessing.settings == {"sample_rate": 16000, "segment_seconds": 1.0}


def test_misuse_is_refused_in_one_line(tmp_path) -> None:
    base = {"data": "builtin:spoken_words", "out": str(tmp_path / "r"), "max_steps": 1}
    with pytest.raises(SelfsupError, match="method 'clip' trains on pairs: give the second side with --pair-data"):
        pretrain(make_recipe(**base, method="clip"), progress=False)
    with pytest.raises(SelfsupError, match="--pair-data is for paired methods.*'simclr' trains on --data alone"):
        pretrain(make_recipe(**base, pair_data="builtin:spoken_word_captions"), progress=False)
    captions = tmp_path / "captions.jsonl"
    captions.write_text('{"id": "elsewhere/1", "text": "a word"}\n')
    with pytest.raises(SelfsupError, match="no sample of 'builtin:spoken_words' has a match"):
        pretrain(make_recipe(**base, method="clip", pair_data=str(captions), pair_encoder="small_bert"), progress=False)
    assert not (tmp_path / "r").exists()  # nothing written


def test_images_pair_with_captions_too(tmp_path) -> None:
    """Any two modalities: the built-in digits (ids digits-NNNN) with a caption each, given as a .jsonl."""
    from selfsup.datasets import load_builtin

    digits = load_builtin("digits")
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        "\n".join(
            json.dumps({"id": i, "text": f"a handwritten {names[int(y)]}"})
            for part in (digits.train, digits.test)
            for i, y in zip(part.ids, part.y.tolist())
        )
    )
    recipe = make_recipe(
        data="builtin:digits",
        pair_data=str(captions),
        method="clip",
        pair_encoder="small_bert",
        max_steps=2,
        batch_size=32,
        method_args={"dim": 8},
        out=str(tmp_path / "r"),
        pair_encoder_args={"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 8},
    )
    result = pretrain(recipe, progress=False)
    assert [p.name for p in result.sides] == ["image", "text"] and len(result.splits.test) == 450
    report = evaluate(
        result.sides[0], "builtin:digits", EvaluationOptions(protocols=("zeroshot",), prompt="a handwritten {}")
    )
    assert report.meta["zero_shot"]["prompts"][7] == "a handwritten 7"
    assert {r["encoder"] for r in report.rows} == {"pretrained", "random-init"}


def test_supervised_simcse_takes_each_text_with_its_positive(tmp_path) -> None:
    """simcse with --pair-data: one encoder, the second view of a text is its pair (read the encoder's way)."""
    from selfsup.methods.simcse import SimCSE
    from selfsup.modalities.text import TextViews
    from selfsup.training.pairs import PairViews

    premises = [
        "a man plays a guitar on stage",
        "two dogs run across a field",
        "a child reads a book",
        "a woman cooks dinner",
        "people wait for a bus",
        "a cat sleeps on a sofa",
    ]
    positives = [
        "someone makes music",
        "animals are outside",
        "a kid is reading",
        "a meal is prepared",
        "a group is at a bus stop",
        "an animal is resting",
    ]
    (tmp_path / "p.jsonl").write_text(
        "\n".join(json.dumps({"id": f"s{i}", "sentence": t}) for i, t in enumerate(premises))
    )
    (tmp_path / "h.jsonl").write_text(
        "\n".join(json.dumps({"id": f"s{i}", "sentence": t}) for i, t in reversed(list(enumerate(positives))))
    )
    recipe = make_recipe(
        data=str(tmp_path / "p.jsonl"),
        pair_data=str(tmp_path / "h.jsonl"),
        method="simcse",
        text_field="sentence",
        pair_text_field="sentence",
        encoder="small_bert",
        max_steps=3,
        batch_size=3,
        encoder_args={"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 16},
        out=str(tmp_path / "run"),
    )
    result = pretrain(recipe, progress=False)
    assert load_encoder(result.out).config["modality"] == "text" and result.sides is None
    pair = result.splits.train
    assert pair.b.ids == pair.a.ids and len(pair) == 6  # matched by id, whatever the order in the file
    views = PairViews(TextViews(SimCSE.views), TextViews(SimCSE.views))
    first = views([pair.a.x[:2], pair.b.x[:2]])
    assert torch.equal(first[0], pair.a.x[:2]) and torch.equal(first[1], pair.b.x[:2])
    assert not torch.equal(first[0], first[1])
    for bad, match in (
        ({"pair_encoder": "minilm"}, "--pair-encoder and --pair-encoder-arg are for two-encoder"),
        ({"method": "mlm"}, "--pair-data is for paired methods"),
        ({"pair_modality": "text"}, "leave --pair-modality out"),
        ({"pair_text_field": None}, "has no text field 'text' .* with --pair-text-column"),
    ):
        with pytest.raises(SelfsupError, match=match):
            pretrain(make_recipe(**(recipe.model_dump() | {"out": str(tmp_path / "bad")} | bad)), progress=False)


def test_lock_auto_locks_the_pre_trained_side_facing_a_fresh_encoder() -> None:
    from selfsup.encoders.text import text_encoder_config
    from selfsup.training.pairs import resolved_lock, starts_pre_trained

    recipe = make_recipe(data="builtin:spoken_words", method="clip", pair_data="builtin:spoken_word_captions")
    assert starts_pre_trained(text_encoder_config("minilm")) and not starts_pre_trained(
        text_encoder_config("small_bert")
    )
    assert starts_pre_trained({"modality": "audio"}, init="runs/a") and not starts_pre_trained({"modality": "audio"})
    assert resolved_lock(recipe, False, True)["lock"] == "b"
    assert resolved_lock(recipe, True, False)["lock"] == "a"  # e.g. MiniLM captions as --data, images as pairs
    assert resolved_lock(recipe, True, True)["lock"] == "none" and resolved_lock(recipe, False, False)["lock"] == "none"
    fixed = make_recipe(**(recipe.model_dump() | {"method_args": {"lock": "none", "dim": 8}}))
    assert resolved_lock(fixed, False, True) == {"lock": "none", "dim": 8}
    with pytest.warns(UserWarning, match="lock=a keeps side a's encoder fixed at random weights"):
        resolved_lock(make_recipe(**(recipe.model_dump() | {"method_args": {"lock": "a"}})), False, True)


def test_run_records_the_lock_it_applied(run) -> None:
    # SMALL_RUN's small_bert text side has no pre-trained weights, so auto locks nothing
    assert read_meta(run / "audio")["recipe"]["method_args"]["lock"] == "none"
    assert read_meta(run)["recipe"]["method_args"].get("lock", "auto") == "auto"  # the recipe as given
