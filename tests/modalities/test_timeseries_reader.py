"""The time-series readers (.ts, .npy/.npz, CSV wide and long, train/test folders), the encoder
config, the raw baseline and the view arguments, on real UCR/UEA data and small hand-written files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from selfsup.data import UNLABELED, ArrayDataset, DataOptions, Splits
from selfsup.datasets.ucr import sktime_data_folder
from selfsup.errors import SelfsupError
from selfsup.modalities import timeseries as ts
from selfsup.sources import load_data
from selfsup.views import ViewSpec

SERIES = DataOptions(modality="timeseries")


def _ucr(name: str, split: str = "TRAIN") -> Path:
    return sktime_data_folder() / name / f"{name}_{split}.ts"


@pytest.fixture(scope="module")
def gunpoint() -> Splits:
    return ts.load_files(_ucr("GunPoint"), _ucr("GunPoint", "TEST"))


@pytest.fixture(scope="module")
def basicmotions() -> Splits:
    return ts.load_files(_ucr("BasicMotions"), _ucr("BasicMotions", "TEST"))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HEADER = "# a comment\n@problemName Toy\n@timeStamps false\n@missing true\n"


def _error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(SelfsupError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- .ts


def test_ts_univariate_labels_missing_and_comments(tmp_path):
    path = _write(
        tmp_path / "toy.ts",
        HEADER + "@univariate true\n@classLabel true 10 2 b\n@data\n"
        "1.5,2,?,4:10\n# comment inside the data\n\n-1,?,0.25,1e3:2\n5,6,7,8:b\n",
    )
    data = ts.read_ts(path)
    assert data.x.dtype == torch.float32 and data.x.shape == (3, 1, 4)
    assert data.classes == ["10", "2", "b"]  # not all numbers: string order
    assert [data.classes[i] for i in data.y.tolist()] == ["10", "2", "b"]
    expected = np.array([[1.5, 2, np.nan, 4], [-1, np.nan, 0.25, 1000], [5, 6, 7, 8]], dtype=np.float32)
    np.testing.assert_array_equal(data.x[:, 0].numpy(), expected)  # '?' -> NaN, in place
    assert data.ids == ["toy/0", "toy/1", "toy/2"]


def test_ts_numeric_classes_sort_numerically(tmp_path):
    path = _write(tmp_path / "n.ts", "@classLabel true 10 9 1\n@data\n1,2:10\n3,4:9\n5,6:1\n")
    data = ts.read_ts(path)
    assert data.classes == ["1", "9", "10"]
    assert data.y.tolist() == [2, 1, 0]


def test_ts_multivariate_real_file(basicmotions):
    train = basicmotions.train
    assert train.x.shape == (40, 6, 100) and not torch.isnan(train.x).any()
    assert train.classes == ["Badminton", "Running", "Standing", "Walking"]
    # the first line of data, parsed independently: 6 channels split by ':', the label last
    lines = _ucr("BasicMotions").read_text().splitlines()
    first = lines[lines.index("@data") + 1].split(":")
    assert len(first) == 7
    for c in range(6):
        np.testing.assert_allclose(train.x[0, c].numpy(), np.array(first[c].split(","), dtype=np.float32))
    assert train.classes[int(train.y[0])] == first[6]


def test_ts_ragged_real_file_lengths_and_padding():
    path = _ucr("JapaneseVowels", "TEST")
    data = ts.read_ts(path)
    lines = path.read_text().splitlines()
    rows = [line for line in lines[lines.index("@data") + 1 :] if line.strip()]
    lengths = np.array([len(row.split(":")[0].split(",")) for row in rows])
    assert data.x.shape == (len(rows), 12, lengths.max()) and lengths.max() == 29 and lengths.min() == 7
    observed = ~torch.isnan(data.x)
    recovered = observed.any(dim=1).sum(dim=1).numpy()
    np.testing.assert_array_equal(recovered, lengths)
    for i in (0, int(lengths.argmin()), int(lengths.argmax())):
        assert observed[i, :, : lengths[i]].all()  # every channel observed up to the length,
        assert not observed[i, :, lengths[i] :].any()  # NaN padding after it


def test_ts_ragged_channels_and_unlabeled(tmp_path):
    path = _write(
        tmp_path / "r.ts",
        "@univariate false\n@dimensions 2\n@equalLength false\n@classLabel false\n@data\n1,2,3:4,5,6\n7:8\n",
    )
    data = ts.read_ts(path)
    assert data.x.shape == (2, 2, 3) and data.classes is None
    assert data.y.tolist() == [UNLABELED, UNLABELED]
    assert torch.isnan(data.x[1, :, 1:]).all() and data.x[1, :, 0].tolist() == [7.0, 8.0]


def test_ts_regression_file_is_read_unlabeled():
    path = sktime_data_folder() / "Covid3Month" / "Covid3Month_TRAIN.ts"  # lower-case tags, @targetlabel true
    data = ts.read_ts(path)
    assert data.classes is None and data.y.tolist() == [UNLABELED] * len(data) and len(data) > 0
    assert data.x.shape[1] == 1 and not torch.isnan(data.x).all(dim=(1, 2)).any()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("@timeStamps true\n@data\n(0,1),(1,2):a\n", "timestamps"),
        ("@classLabel false\n@data\n(0,1),(1,2)\n", "timestamped"),
        ("@classLabel true a\n@data\n", "no series"),
        ("@classLabel true a\n", "no @data"),
        ("1,2,3\n", "before the @data"),
        ("@classLabel true a\n@data\n1,2,3\n", "no label"),
        ("@classLabel true a b\n@data\n1,2:c\n", "label 'c' is not one of the @classLabel"),
        ("@classLabel false\n@data\n1,2:3,4\n5,6\n", "line 4 has 1 channel.* first series has 2"),
        ("@dimensions 3\n@classLabel false\n@data\n1,2:3,4\n", "@dimensions 3"),
        ("@univariate true\n@classLabel false\n@data\n1,2:3,4\n", "@univariate true"),
        ("@classLabel false\n@data\n1,abc,3\n", "'abc', not a number"),
        ("@classLabel false\n@data\n1,,3\n", "empty value"),
        ("@classLabel true a\n@data\n1,2:a\n:a\n", "line 4 channel 0 is empty \\(length 0\\)"),
        ("@classLabel false\n@data\n1,2:?,?\n3,4:?,?\n", "channel 1 is missing \\(NaN\\) in every series.*drop it"),
        ("@classLabel false\n@data\n1,2\n?,?\n", "empty \\(length 0 or every value missing\\)"),
        ("@classLabel false\n@data\n1,1e999\n", "infinite"),
        ("@classLabel maybe\n@data\n1,2\n", "true or false"),
    ],
)
def test_ts_bad_files(tmp_path, body, match):
    _error(match, ts.read_ts, _write(tmp_path / "bad.ts", body))


# --------------------------------------------------------------------------- .npy / .npz


def test_npy_2d_and_3d(tmp_path, basicmotions):
    x3 = basicmotions.train.x.numpy()
    np.save(tmp_path / "m.npy", x3)
    np.save(tmp_path / "u.npy", x3[:, 0].astype(np.float64))
    multi, uni = ts.read_array(tmp_path / "m.npy"), ts.read_array(tmp_path / "u.npy")
    assert torch.equal(multi.x, basicmotions.train.x) and multi.classes is None
    assert multi.y.tolist() == [UNLABELED] * 40 and multi.ids[0] == "m/0"  # one per series
    assert uni.x.shape == (40, 1, 100) and uni.x.dtype == torch.float32


def test_npz_labels_nan_padding_and_upper_case_keys(tmp_path, gunpoint):
    x = gunpoint.train.x[:, 0].numpy().copy()
    x[0, 100:] = np.nan  # a shorter series, NaN-padded
    names = np.array([gunpoint.train.classes[i] for i in gunpoint.train.y.tolist()])
    np.savez(tmp_path / "a.npz", x=x, y=names)
    np.savez(tmp_path / "b.npz", X=x, Y=gunpoint.train.y.numpy().astype(np.float64) + 1)
    a, b = ts.read_array(tmp_path / "a.npz"), ts.read_array(tmp_path / "b.npz")
    assert a.x.shape == (50, 1, 150) and torch.isnan(a.x[0, 0, 100:]).all()
    assert a.classes == ["1", "2"] and torch.equal(a.y, gunpoint.train.y)
    assert b.classes == ["1", "2"] and torch.equal(b.y, gunpoint.train.y)  # 1.0 / 2.0 read as "1" / "2"


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.array([np.zeros(3), np.zeros(2)], dtype=object)}, "object array"),
        ({"x": np.array([["a", "b"], ["c", "d"]])}, "series must be numbers"),
        ({"x": np.zeros(5)}, "shape \\(5,\\)"),
        ({"x": np.zeros((3, 0))}, "length 0"),
        ({"x": np.zeros((0, 5))}, "no series"),
        ({"series": np.zeros((3, 5))}, "no array named 'x'.*series"),
        ({"x": np.zeros((3, 5)), "y": np.zeros(4)}, "one label per series \\(3\\)"),
        ({"x": np.zeros((3, 5)), "y": np.array([0.5, 1.0, 2.0])}, "non-integer.*class labels"),
        ({"x": np.zeros((2, 2, 5)) + np.array([0.0, np.nan])[None, :, None]}, "channel 1 is missing"),
    ],
)
def test_npz_bad_arrays(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    _error(match, ts.read_array, path)


def test_npy_object_array(tmp_path):
    np.save(tmp_path / "o.npy", np.array([np.zeros(3), np.zeros(2)], dtype=object), allow_pickle=True)
    _error("object array", ts.read_array, tmp_path / "o.npy")


# --------------------------------------------------------------------------- CSV


def test_csv_wide_with_label_ignore_and_ragged_rows(tmp_path, gunpoint):
    x = gunpoint.train.x[:, 0].numpy()
    frame = pd.DataFrame(x, columns=[f"t{i}" for i in range(150)])
    frame.insert(0, "who", [f"s{i}" for i in range(50)])
    frame["label"] = [["gun", "point"][i] for i in gunpoint.train.y.tolist()]
    frame.loc[3, [f"t{i}" for i in range(120, 150)]] = np.nan  # ragged: row 3 ends early
    frame.to_csv(tmp_path / "wide.csv", index=False)
    splits = load_data(str(tmp_path / "wide.csv"), DataOptions(modality="timeseries", label="label", ignore=("who",)))
    data = splits.train
    assert splits.modality == "timeseries" and splits.test is None
    assert data.x.shape == (50, 1, 150) and data.classes == ["gun", "point"]
    assert torch.equal(data.y, gunpoint.train.y)
    np.testing.assert_allclose(data.x[5, 0].numpy(), x[5], rtol=1e-6)
    assert torch.isnan(data.x[3, 0, 120:]).all() and not torch.isnan(data.x[3, 0, :120]).any()
    _error(
        "column 'who' .* is not numeric \\(e.g. 's0'\\).*--ignore",
        ts.read_table,
        tmp_path / "wide.csv",
        DataOptions(label="label"),
    )
    _error("--label column 'target' is not in", ts.read_table, tmp_path / "wide.csv", DataOptions(label="target"))


def test_csv_wide_bad_rows(tmp_path):
    _write(tmp_path / "empty_row.csv", "a,b,c\n1,2,3\n,,\n4,5,6\n")
    _error("empty \\(length 0", ts.read_table, tmp_path / "empty_row.csv")
    _write(tmp_path / "text.csv", "a,b,c\n1,2,3\n4,x,6\n")
    _error("column 'b' .* not numeric \\(e.g. 'x'\\)", ts.read_table, tmp_path / "text.csv")
    _write(tmp_path / "header.csv", "a,b,c\n")
    _error("no series", ts.read_table, tmp_path / "header.csv")
    _write(tmp_path / "nothing.csv", "")
    _error("is empty", ts.read_table, tmp_path / "nothing.csv")


def test_csv_with_a_repeated_column_name_is_refused(tmp_path, gunpoint):
    x = gunpoint.train.x[:10, 0, :6].numpy()
    pd.DataFrame(x, columns=["t0", "t1", "t2", "t1", "t4", "t5"]).to_csv(tmp_path / "dup.csv", index=False)
    expected = f"table '{tmp_path / 'dup.csv'}' has duplicate columns 't1'; rename them."
    _error("^" + re.escape(expected) + "$", ts.read_table, tmp_path / "dup.csv")
    pd.DataFrame(x, columns=["t0", "t1", "t2", "t1.1", "t4", "t5"]).to_csv(tmp_path / "ok.csv", index=False)
    assert ts.read_table(tmp_path / "ok.csv").x.shape == (10, 1, 6)


def _long_frame(basicmotions, lengths: list[int], seed: int = 0) -> pd.DataFrame:
    """BasicMotions series 0..len(lengths)-1 cut to ``lengths``, one row per step, rows shuffled."""
    data = basicmotions.train
    rows = []
    for i, length in enumerate(lengths):
        for t in range(length):
            rows.append(
                {
                    "series": f"m{i}",
                    "step": float(t),
                    "activity": data.classes[int(data.y[i])],
                    **{f"ch{c}": float(data.x[i, c, t]) for c in range(6)},
                }
            )
    frame = pd.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_csv_long_sorted_by_time_and_ragged(tmp_path, basicmotions):
    lengths = [100, 60, 80, 35]
    frame = _long_frame(basicmotions, lengths)
    frame.to_csv(tmp_path / "long.csv", index=False)
    options = DataOptions(modality="timeseries", series_id="series", time_column="step", label="activity")
    data = ts.load(str(tmp_path / "long.csv"), options).train
    first_seen = list(pd.unique(frame["series"]))
    assert data.ids == first_seen  # series in order of first appearance
    assert data.x.shape == (4, 6, 100)
    for row, name in enumerate(data.ids):
        i = int(name[1:])
        expected = basicmotions.train.x[i, :, : lengths[i]]
        np.testing.assert_allclose(data.x[row, :, : lengths[i]].numpy(), expected.numpy(), rtol=1e-6)
        assert torch.isnan(data.x[row, :, lengths[i] :]).all()
        assert data.classes[int(data.y[row])] == basicmotions.train.classes[int(basicmotions.train.y[i])]
    # no time column: rows stay in file order, so the shuffled series differ from the originals
    unordered = ts.read_table(
        tmp_path / "long.csv", DataOptions(series_id="series", label="activity", ignore=("step",))
    ).x
    assert unordered.shape == data.x.shape and not torch.allclose(torch.nan_to_num(unordered), torch.nan_to_num(data.x))


def test_csv_long_errors(tmp_path, basicmotions):
    frame = _long_frame(basicmotions, [20, 10])
    changing = frame.copy()
    changing.loc[changing["series"] == "m0", "activity"] = ["a", "b"] * 10
    changing.to_csv(tmp_path / "changing.csv", index=False)
    options = DataOptions(series_id="series", time_column="step", label="activity")
    _error("label of series 'm0' .* changes over time", ts.read_table, tmp_path / "changing.csv", options)
    doubled = pd.concat([frame, frame.iloc[:1]])
    doubled.to_csv(tmp_path / "doubled.csv", index=False)
    _error("two rows at time", ts.read_table, tmp_path / "doubled.csv", options)
    frame.to_csv(tmp_path / "long.csv", index=False)
    _error("--time-column .* pass --series-id", ts.read_table, tmp_path / "long.csv", DataOptions(time_column="step"))
    _error("--series-id column 'id' is not in", ts.read_table, tmp_path / "long.csv", DataOptions(series_id="id"))
    _error("column 'activity' .* not numeric", ts.read_table, tmp_path / "long.csv", DataOptions(series_id="series"))
    dead = frame.assign(ch3=np.nan)
    dead.to_csv(tmp_path / "dead.csv", index=False)
    _error("channel 3 \\('ch3'\\) is missing \\(NaN\\) in every series", ts.read_table, tmp_path / "dead.csv", options)


# --------------------------------------------------------------------------- folders and load


def test_folder_train_test_split_common_length(tmp_path):
    folder = tmp_path / "toy"
    _write(folder / "Toy_TRAIN.ts", "@classLabel true a b\n@data\n1,2,3:a\n4,5,6:b\n")
    _write(folder / "Toy_TEST.ts", "@classLabel true a b\n@data\n1,2,3,4,5:b\n7,8:a\n")
    _write(folder / "notes.txt", "not series")
    splits = load_data(str(folder), SERIES)
    assert splits.modality == "timeseries" and splits.name == str(folder)
    assert splits.train.x.shape == (2, 1, 5) and splits.test.x.shape == (2, 1, 5)  # padded to one length
    assert torch.isnan(splits.train.x[:, :, 3:]).all()
    assert splits.test.classes == splits.train.classes == ["a", "b"] and splits.test.y.tolist() == [1, 0]
    assert load_data(str(folder)).modality == "timeseries"  # detected by its .ts files


def test_folder_test_label_unseen_in_train(tmp_path):
    folder = tmp_path / "toy"
    _write(folder / "Toy_TRAIN.ts", "@classLabel true a b\n@data\n1,2,3:a\n4,5,6:b\n")
    _write(folder / "Toy_TEST.ts", "@classLabel true a b c\n@data\n1,2,3:c\n")
    _error("label\\(s\\) c that the training split does not have", ts.load, str(folder), SERIES)


def test_folder_npz_and_channel_mismatch(tmp_path, basicmotions):
    folder = tmp_path / "motions"
    folder.mkdir()
    np.savez(folder / "m_TRAIN.npz", x=basicmotions.train.x.numpy(), y=basicmotions.train.y.numpy())
    np.savez(folder / "m_TEST.npz", x=basicmotions.test.x.numpy()[:, :3], y=basicmotions.test.y.numpy())
    _error("has 6 channel\\(s\\) but .* has 3", ts.load, str(folder), SERIES)


def test_folder_layouts(tmp_path, gunpoint):
    single = tmp_path / "single"
    single.mkdir()
    np.save(single / "all.npy", gunpoint.train.x.numpy())
    splits = ts.load(str(single), SERIES)
    assert splits.test is None and splits.train.x.shape == (50, 1, 150)
    _error("no matching \\*_TRAIN", ts.load, str(_write(tmp_path / "t" / "A_TEST.ts", "@data\n1\n").parent), SERIES)
    two = tmp_path / "two"
    two.mkdir()
    np.save(two / "a.npy", np.zeros((2, 3)))
    np.save(two / "b.npy", np.zeros((2, 3)))
    _error("holds 2 series files", ts.load, str(two), SERIES)
    _error("does not exist", ts.load, str(tmp_path / "missing.ts"), SERIES)
    _error("cannot read .* as time series", ts.read_file, _write(tmp_path / "x.json", "{}"))


def test_sktime_folder_prefers_ts_over_other_suffixes():
    # sktime's ArrowHead folder also holds ArrowHead_TRAIN.tsv (no TEST); the .ts pair wins
    train, test = ts.split_files(sktime_data_folder() / "ArrowHead")
    assert (train.name, test.name) == ("ArrowHead_TRAIN.ts", "ArrowHead_TEST.ts")


# --------------------------------------------------------------------------- encoder config, baseline, views


def test_encoder_config_statistics_from_train_only(basicmotions):
    shifted = Splits(
        basicmotions.train,
        ArrayDataset(
            basicmotions.test.x + 100.0, basicmotions.test.y, basicmotions.test.ids, basicmotions.test.classes
        ),
        "m",
        "timeseries",
    )
    config = ts.encoder_config("dilated_conv", shifted, SERIES, {})
    train = basicmotions.train.x.double().numpy()
    assert config["in_chans"] == 6 and config["length"] == 100 and config["modality"] == "timeseries"
    np.testing.assert_allclose(config["mean"], train.mean(axis=(0, 2)), rtol=1e-9)
    np.testing.assert_allclose(config["std"], train.std(axis=(0, 2)), rtol=1e-9)
    assert ts.encoder_config("patch_transformer", basicmotions, SERIES, {"depth": 1})["depth"] == 1


def test_channel_statistics_ignore_nan_and_constant_channels():
    nan = float("nan")
    x = torch.tensor([[[1.0, 3.0, nan], [5.0, 5.0, 5.0]], [[nan, 5.0, 7.0], [5.0, 5.0, nan]]])
    mean, std = ts.channel_statistics(x)
    assert mean == pytest.approx([4.0, 5.0]) and std == pytest.approx([np.std([1, 3, 5, 7]), 1.0])


def test_load_with_encoder_preprocessing_checks_channels(tmp_path, basicmotions, gunpoint):
    config = ts.encoder_config("dilated_conv", basicmotions, SERIES, {})
    reading = ts.preprocessing(basicmotions, SERIES, config)
    assert reading.modality == "timeseries" and reading.get("channels") == 6
    np.save(tmp_path / "uni.npy", gunpoint.test.x.numpy())
    message = _error(
        "the encoder takes 6 channel\\(s\\) but .*uni.npy' has 1",
        load_data,
        str(tmp_path / "uni.npy"),
        DataOptions(),
        preprocessing=reading,
    )
    assert "channels the encoder was trained on" in message
    np.save(tmp_path / "multi.npy", basicmotions.test.x.numpy())
    assert load_data(str(tmp_path / "multi.npy"), preprocessing=reading).train.x.shape == (40, 6, 100)


def test_new_csv_series_are_read_with_the_encoders_columns(tmp_path, basicmotions):
    """The CSV columns the pre-training series were read by are the encoder's preprocessing, not its config: new
    files given without those flags are read the same way."""
    _long_frame(basicmotions, [100, 60, 80, 35]).to_csv(tmp_path / "long.csv", index=False)
    options = DataOptions(modality="timeseries", series_id="series", time_column="step", label="activity")
    splits = ts.load(str(tmp_path / "long.csv"), options)
    config = ts.encoder_config("dilated_conv", splits, options, {})
    assert "read" not in config
    reading = ts.preprocessing(splits, options, config)
    assert reading.settings == {
        "channels": 6,
        "label": "activity",
        "ignore": [],
        "series_id": "series",
        "time_column": "step",
    }
    again = load_data(str(tmp_path / "long.csv"), preprocessing=reading)  # no flags: the encoder's columns
    assert torch.equal(torch.nan_to_num(again.train.x), torch.nan_to_num(splits.train.x))
    assert torch.equal(again.train.y, splits.train.y) and again.train.classes == splits.train.classes


def test_raw_features(gunpoint):
    config = ts.encoder_config("dilated_conv", gunpoint, SERIES, {})
    short = ts.read_ts(_ucr("JapaneseVowels"))  # other data, only to show padding and NaN handling
    feats = ts.raw_features(gunpoint.test.x, config)
    assert feats.shape == (150, 150) and feats.dtype == np.float32
    expected = (gunpoint.test.x[:, 0].numpy() - config["mean"][0]) / config["std"][0]
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
    jv_config = ts.encoder_config("dilated_conv", Splits(short, None, "jv", "timeseries"), SERIES, {})
    length = jv_config["length"]
    assert length == short.x.shape[-1] == 26  # the training file's longest series
    cut = ts.raw_features(short.x[:, :, :10], jv_config)  # shorter data: NaN-padded, then 0
    assert cut.shape == (270, 12 * length) and np.isfinite(cut).all()
    assert (cut.reshape(270, 12, length)[:, :, 10:] == 0).all()
    longer = ts.raw_features(torch.nn.functional.pad(short.x, (0, 5), value=1.0), jv_config)  # longer: cut
    np.testing.assert_array_equal(longer, ts.raw_features(short.x, jv_config))


def test_make_views_arguments(gunpoint):
    config = ts.encoder_config("dilated_conv", gunpoint, SERIES, {})
    views = ts.make_views(ViewSpec(2, 2), gunpoint, config, {"crop_scale": [0.8, 1], "time_warp": 0.2, "knots": 3})
    out = views(gunpoint.train.x[:4], torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in out] == [(4, 1, 150)] * 2 + [(4, 1, 75)] * 2
    assert views.center.flatten().tolist() == pytest.approx(config["mean"])
    message = _error(
        "unknown time-series view argument\\(s\\) flip; known: crop_scale",
        ts.make_views,
        ViewSpec(),
        gunpoint,
        config,
        {"flip": False},
    )
    assert all(name in message for name in ts.VIEW_ARGS)
    _error("crop_scale must be two numbers", ts.make_views, ViewSpec(), gunpoint, config, {"crop_scale": [0.9, 0.2]})
    _error("jitter must be a number >= 0", ts.make_views, ViewSpec(), gunpoint, config, {"jitter": -1})
    _error("mask_ratio must be a number >= 0 and < 1", ts.make_views, ViewSpec(), gunpoint, config, {"mask_ratio": 1})
    _error("max_segments must be a whole number", ts.make_views, ViewSpec(), gunpoint, config, {"max_segments": 2.5})


def test_encoders_listed():
    from selfsup.encoders.series import ENCODERS

    assert ts.DEFAULT_ENCODER in ENCODERS and ts.NAME == "timeseries"
