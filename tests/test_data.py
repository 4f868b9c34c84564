"""Pairing samples of two sources by id."""

from __future__ import annotations

import pytest
import torch

from selfsup.data import UNLABELED, ArrayDataset, pair_by_id, pair_key
from selfsup.errors import SelfsupError


def _data(ids: list[str], values: list[float], labels: list[int] | None = None) -> ArrayDataset:
    y = torch.tensor(labels if labels is not None else [UNLABELED] * len(ids))
    return ArrayDataset(torch.tensor(values).view(-1, 1), y, ids, ["no", "yes"] if labels is not None else None)


@pytest.mark.parametrize(
    ("sample_id", "key"),
    [
        ("yes/clip-1.flac", "yes/clip-1"),
        ("yes/clip-1.flac#3", "yes/clip-1"),
        ("yes/clip-1", "yes/clip-1"),
        ("yes\\clip-1.wav", "yes/clip-1"),
        ("line-4", "line-4"),
        ("a.b.png", "a.b"),
        (".hidden", ".hidden"),
        ("take.1", "take.1"),
        ("dir.v2/file", "dir.v2/file"),
        ("x/1.JPG", "x/1"),
    ],
)
def test_pair_key_drops_suffix_and_segment(sample_id, key) -> None:
    assert pair_key(sample_id) == key


def test_pair_by_id_matches_in_a_order_and_leaves_out_unmatched() -> None:
    a = _data(["x/1.wav#0", "x/1.wav#1", "x/2.wav", "x/3.wav"], [1.0, 1.5, 2.0, 3.0], [0, 0, 1, 1])
    b = _data(["x/3", "x/1", "x/9"], [30.0, 10.0, 90.0])
    pairs = pair_by_id(a, b, "a", "b")
    assert len(pairs) == 3 and pairs.ids == ["x/1.wav#0", "x/1.wav#1", "x/3.wav"]
    assert pairs.b.x.view(-1).tolist() == [10.0, 10.0, 30.0]  # both segments of x/1 get its caption
    (first_a, first_b), label = pairs[2]
    assert first_a.item() == 3.0 and first_b.item() == 30.0 and label == 1
    assert pairs.classes == ["no", "yes"] and pairs.labeled
    assert pairs.subset([1]).b.x.item() == 10.0


def test_pair_by_id_refuses_no_match_and_repeated_ids() -> None:
    a = _data(["x/1.wav"], [1.0])
    with pytest.raises(SelfsupError, match="no sample of 'a' has a match in 'b'.*'x/1.wav' and 'line-1'"):
        pair_by_id(a, _data(["line-1"], [1.0]), "a", "b")
    assert pair_by_id(a, _data(["line-1"], [1.0]), "a", "b", required=False) is None
    with pytest.raises(SelfsupError, match="two samples with id 'x/1'"):
        pair_by_id(a, _data(["x/1", "x/1.txt"], [1.0, 2.0]), "a", "b")
