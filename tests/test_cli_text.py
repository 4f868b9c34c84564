"""The command line on text, end to end: pre-train the shipped MiniLM with SimCSE on a JSONL file, then
evaluate it against the baselines with the label field, read with the run's own tokenizer."""

from __future__ import annotations

import json

from selfsup.cli import EXIT_USER_ERROR, main

GOOD = ["a wonderful film with great acting", "brilliant and moving story", "I loved every minute of it",
        "superb direction and a clever script", "funny, warm and beautifully shot"]
BAD = ["a dull and boring mess", "terrible acting and a weak plot", "I wanted to leave after ten minutes",
       "clumsy, slow and forgettable", "a waste of a good cast"]


def test_pretrain_and_evaluate_a_jsonl_file(tmp_path, capsys) -> None:
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps({"review": (GOOD if i % 2 else BAD)[i % 5] + f" (seen {i} times)",
                                        "label": "good" if i % 2 else "bad"}) + "\n" for i in range(40)))
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(data), "--text-column", "review", "--label", "label", "--method", "simcse",
                 "--max-steps", "2", "--batch-size", "8", "--no-probe", "--out", str(run)]) == 0
    meta = json.loads((run / "selfsup.json").read_text())
    assert meta["modality"] == "text" and meta["encoder"]["name"] == "minilm"
    assert main(["evaluate", "--encoder", str(run), "--data", str(data), "--text-column", "review", "--label", "label",
                 "--protocol", "knn", "--out", str(tmp_path / "eval")]) == 0
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert {r["encoder"] for r in rows} == {"pretrained", "random-init", "raw-input"}
    pretrained = next(r for r in rows if r["encoder"] == "pretrained")
    assert pretrained["n_test"] == 10 and pretrained["accuracy"] >= 0.9  # MiniLM separates these reviews


def test_a_missing_text_field_is_one_clear_line(tmp_path, capsys) -> None:
    data = tmp_path / "notes.jsonl"
    data.write_text('{"body": "hello"}\n{"body": "world"}\n')
    assert main(["pretrain", "--data", str(data), "--method", "simcse", "--out", str(tmp_path / "run")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "text" in err and "--text-column" in err and not (tmp_path / "run").exists()
