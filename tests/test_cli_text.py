"""The command line on text, end to end: pre-train the shipped MiniLM with SimCSE on a JSONL file of 40
different hand-written reviews, then evaluate it against the baselines with the label field, read with the run's
own tokenizer."""

from __future__ import annotations

import json

import pytest

from selfsup.cli import EXIT_USER_ERROR, main

GOOD = [
    "a wonderful film with great acting",
    "brilliant and moving story",
    "I loved every minute of it",
    "superb direction and a clever script",
    "funny, warm and beautifully shot",
    "the best movie I have seen this year",
    "a delightful comedy that made me laugh out loud",
    "an absolute triumph from start to finish",
    "gorgeous photography and a stirring score",
    "the cast is fantastic and the dialogue sparkles",
    "a heartfelt, charming little gem",
    "smart, tense and thoroughly gripping",
    "I would happily watch it again",
    "a masterpiece of modern cinema",
    "touching performances and a lovely ending",
    "an inventive and joyful adventure",
    "the script is witty and the pacing perfect",
    "a rare film that deserves every award",
    "sweet, uplifting and wonderfully acted",
    "a thrilling ride that never lets up",
]
BAD = [
    "a dull and boring mess",
    "terrible acting and a weak plot",
    "I wanted to leave after ten minutes",
    "clumsy, slow and forgettable",
    "a waste of a good cast",
    "the worst film I have seen in years",
    "a tedious slog with no laughs at all",
    "awful dialogue and a predictable ending",
    "ugly to look at and painful to sit through",
    "the story makes no sense and nobody cares",
    "a lazy, cynical cash grab",
    "flat characters and a plot full of holes",
    "I fell asleep halfway through",
    "an embarrassing failure from a talented director",
    "loud, stupid and far too long",
    "a joyless sequel that should never have been made",
    "the jokes fall flat and the pacing drags",
    "badly edited, badly written, badly acted",
    "a miserable experience I would not recommend",
    "a pointless remake that ruins the original",
]


@pytest.mark.slow
def test_pretrain_and_evaluate_a_jsonl_file(tmp_path, capsys) -> None:
    data = tmp_path / "reviews.jsonl"
    reviews = [(text, "good") for text in GOOD] + [(text, "bad") for text in BAD]
    assert len({text for text, _ in reviews}) == 40  # 40 different reviews: no near-duplicates to match
    data.write_text("".join(json.dumps({"review": text, "label": label}) + "\n" for text, label in reviews))
    run = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(data),
                "--text-column",
                "review",
                "--label",
                "label",
                "--method",
                "simcse",
                "--max-steps",
                "2",
                "--batch-size",
                "8",
                "--no-probe",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    meta = json.loads((run / "selfsup.json").read_text())
    assert meta["modality"] == "text" and meta["encoder"]["name"] == "minilm"
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(run),
                "--data",
                str(data),
                "--text-column",
                "review",
                "--label",
                "label",
                "--protocol",
                "knn",
                "--test-fraction",
                "0.5",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    rows = {r["encoder"]: r for r in json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]}
    assert set(rows) == {"pretrained", "random-init", "raw-input"} and rows["pretrained"]["n_test"] == 20
    # MiniLM's embeddings carry the sentiment (16 of 20 right by chance: p = 0.006); the reviews share few words,
    # so neither the bag of subwords nor a random MiniLM comes close
    accuracy = rows["pretrained"]["accuracy"]
    assert accuracy >= 0.8 and accuracy >= max(rows[b]["accuracy"] for b in ("random-init", "raw-input")) + 0.3


def test_a_missing_text_field_is_one_clear_line(tmp_path, capsys) -> None:
    data = tmp_path / "notes.jsonl"
    data.write_text('{"body": "hello"}\n{"body": "world"}\n')
    assert (
        main(["pretrain", "--data", str(data), "--method", "simcse", "--out", str(tmp_path / "run")]) == EXIT_USER_ERROR
    )
    err = capsys.readouterr().err
    assert "text" in err and "--text-column" in err and not (tmp_path / "run").exists()
