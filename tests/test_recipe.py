"""The recipe: validation into one readable error, YAML round trip, overrides."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from selfsup.errors import SelfsupError
from selfsup.recipe import Recipe, load_recipe, make_recipe, save_recipe


def test_defaults_and_valid_fields():
    recipe = make_recipe(data="builtin:digits", method=" simclr ", epochs=3, method_args={"temperature": 0.2})
    assert isinstance(recipe, Recipe)
    assert recipe.method == "simclr"  # stripped
    assert recipe.epochs == 3
    assert recipe.method_args == {"temperature": 0.2}
    assert recipe.encoder is None  # the modality's default encoder
    assert recipe.bad_files == "fail"


def test_unknown_field_is_named_with_the_known_fields():
    with pytest.raises(SelfsupError) as info:
        make_recipe(data="builtin:digits", epochz=3)
    message = str(info.value)
    assert "epochz" in message
    assert "unknown field" in message
    for known in ("data", "method", "epochs", "batch_size", "max_steps"):
        assert known in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"epochs": "many"}, "epochs"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"lr": -0.1}, "lr"),
        ({"bad_files": "ignore"}, "bad_files"),
        ({"image_size": 2}, "image_size"),
    ],
)
def test_wrong_type_or_range_is_a_selfsup_error(fields, named):
    with pytest.raises(SelfsupError) as info:
        make_recipe(data="builtin:digits", **fields)
    assert f"'{named}'" in str(info.value)
    assert str(info.value).startswith("invalid recipe")


def test_missing_data_is_reported():
    with pytest.raises(SelfsupError, match="'data'"):
        make_recipe(method="simclr")


def test_assignment_is_validated_too():
    recipe = make_recipe(data="builtin:digits")
    with pytest.raises(ValidationError):
        recipe.epochs = -5
    assert recipe.epochs == 20


def test_save_load_round_trip(tmp_path):
    recipe = make_recipe(
        data="some/folder",
        method="byol",
        method_args={"tau_base": 0.99, "hidden_dim": 32},
        epochs=7,
        batch_size=64,
        lr=0.003,
        image_size=32,
        seed=5,
        out=str(tmp_path / "run"),
        bad_files="skip",
        online_probe=False,
        devices="auto",
        max_steps=11,
    )
    path = tmp_path / "recipe.yaml"
    save_recipe(recipe, path)
    assert path.is_file()
    assert not list(tmp_path.glob("*.tmp"))
    raw = yaml.safe_load(path.read_text())
    assert raw["method"] == "byol" and raw["epochs"] == 7
    loaded = load_recipe(path)
    assert loaded == recipe
    assert loaded.model_dump() == recipe.model_dump()


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    save_recipe(make_recipe(data="a", epochs=2), path)
    save_recipe(make_recipe(data="b", epochs=4), path)
    loaded = load_recipe(path)
    assert (loaded.data, loaded.epochs) == ("b", 4)


def test_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("data: from-file\nmethod: byol\nepochs: 3\nbatch_size: 64\n")
    recipe = load_recipe(path, {"epochs": 9, "out": "elsewhere"})
    assert recipe.epochs == 9
    assert recipe.out == "elsewhere"
    assert recipe.method == "byol"  # not overridden: from the file
    assert recipe.batch_size == 64
    assert recipe.data == "from-file"


def test_overrides_are_validated(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("data: x\n")
    with pytest.raises(SelfsupError, match="epochs"):
        load_recipe(path, {"epochs": 0})


def test_missing_file(tmp_path):
    with pytest.raises(SelfsupError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_a_folder_is_not_a_recipe(tmp_path):
    with pytest.raises(SelfsupError):
        load_recipe(tmp_path)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("data: [unclosed\nmethod: simclr\n")
    with pytest.raises(SelfsupError, match="not valid YAML") as info:
        load_recipe(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["- data\n- method\n", "just a string\n", "42\n"])
def test_non_mapping(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with pytest.raises(SelfsupError, match="mapping"):
        load_recipe(path)


def test_unknown_field_in_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("data: x\nlearning_rate: 0.1\n")
    with pytest.raises(SelfsupError, match="learning_rate"):
        load_recipe(path)


def test_empty_file_needs_data(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("")
    with pytest.raises(SelfsupError, match="'data'"):
        load_recipe(path)
    assert load_recipe(path, {"data": "builtin:digits"}).data == "builtin:digits"


def test_the_recipes_modalities_are_the_registrys() -> None:
    from typing import get_args

    from selfsup.modalities import MODALITIES
    from selfsup.recipe import ModalityName

    assert get_args(ModalityName) == ("auto", *MODALITIES)
