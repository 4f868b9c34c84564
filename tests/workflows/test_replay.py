"""Replay: a fraction of each batch comes from the source-domain data, unlabeled for the probe."""

from __future__ import annotations

import json

import torch

from selfsup.cli import EXIT_USER_ERROR, main
from selfsup.data import UNLABELED, ArrayDataset, DataOptions, Splits
from selfsup.recipe import make_recipe
from selfsup.workflows.pretrain import _other_options, _with_replay, pretrain


def test_replay_fraction_of_draws() -> None:
    data = ArrayDataset(torch.zeros(300, 2), torch.zeros(300, dtype=torch.long), [str(i) for i in range(300)])
    replay = ArrayDataset(torch.ones(40, 2), torch.full((40,), UNLABELED), [str(i) for i in range(40)])
    dataset, sampler = _with_replay(data, replay, 0.25, seed=0)
    drawn = list(sampler)
    assert len(drawn) == 400  # 300 / (1 - 0.25): every target sample once, 100 replay draws
    assert sorted(i for i in drawn if i < 300) == list(range(300))
    assert sum(i >= 300 for i in drawn) == 100 and max(drawn) < 340
    first_batch = drawn[:64]
    assert 0 < sum(i >= 300 for i in first_batch) < 64  # mixed into the batches, not appended at the end
    sampler.set_epoch(1)
    assert list(sampler) != drawn  # another order each epoch
    assert dataset[320][1] == UNLABELED and dataset[5][1] == 0


def test_replay_runs_and_refuses_other_shapes(tmp_path, capsys) -> None:
    tiny = ["--epochs", "2", "--max-steps", "3", "--batch-size", "32"]
    assert (
        main(
            [
                "pretrain",
                "--data",
                "builtin:italypowerdemand",
                "--method",
                "ts2vec",
                "--replay",
                "builtin:gunpoint",
                "--replay-fraction",
                "0.3",
                "--out",
                str(tmp_path / "ok"),
                *tiny,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "pretrain",
                "--data",
                "builtin:italypowerdemand",
                "--replay",
                "builtin:basicmotions",
                "--out",
                str(tmp_path / "bad"),
                *tiny,
            ]
        )
        == EXIT_USER_ERROR
    )
    err = capsys.readouterr().err
    assert "--replay 'builtin:basicmotions'" in err and "takes 1 channel(s)" in err and "has 6" in err
    assert not (tmp_path / "bad").exists()


def test_text_replay_is_read_without_the_targets_label(tmp_path, one_thread) -> None:
    """--label and --text-column name the target's fields: a .txt replay file has none, and a .jsonl one need not
    have the label."""
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text(
        "".join(
            json.dumps({"review": text, "y": label}) + "\n"
            for text, label in [
                ("a warm and funny film", "good"),
                ("wonderful acting", "good"),
                ("a delight", "good"),
                ("a dull mess", "bad"),
                ("badly acted and far too long", "bad"),
                ("boring from the first scene", "bad"),
            ]
        )
    )
    wiki = tmp_path / "wiki.txt"
    wiki.write_text("The Nile is a river in Africa.\nParis is the capital of France.\nWater boils at 100 C.\n")
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"review": "an old note without a label"}) + "\n")
    for replay in (wiki, notes):
        recipe = make_recipe(
            data=str(reviews),
            text_field="review",
            label="y",
            replay=str(replay),
            method="simcse",
            encoder="small_bert",
            encoder_args={"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 16},
            epochs=1,
            max_steps=2,
            batch_size=4,
            out=str(tmp_path / replay.stem),
        )
        result = pretrain(recipe, progress=False)
        assert result.splits.train.classes == ["bad", "good"] and len(result.loss_history) > 0


def test_replay_options_keep_only_what_the_replay_source_can_take() -> None:
    clips = Splits(
        ArrayDataset(torch.zeros(2, 1, 4000), torch.zeros(2, dtype=torch.long), ["a", "b"]), None, "clips", "audio"
    )
    recipe = make_recipe(data="clips", label="word", sample_rate=8000, bad_files="skip", replay="builtin:spoken_words")
    replay = _other_options(recipe, "builtin:spoken_words", clips, labelled=False)
    assert replay == DataOptions(bad_files="skip")  # built-in data takes no reading flags
    other = _other_options(recipe, "more_clips", clips, labelled=False)
    assert other.label is None and other.sample_rate == 8000 and other.bad_files == "skip"
    assert _other_options(recipe, "more_clips", clips, labelled=True).label == "word"  # --watch scores labels
