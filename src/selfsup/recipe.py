"""The typed, validated description of a pre-training run. CLI flags map onto it; it is saved with every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from selfsup.data import DataOptions
from selfsup.errors import SelfsupError
from selfsup.files import write_atomic


class Recipe(BaseModel):
    """Everything needed to replay a pre-training run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # no inf/NaN numbers

    data: str = Field(description="folder of images, table (.csv/.parquet), series (.ts/.npy/.npz), audio "
                                  "(.wav/.flac/.ogg or a folder of them), or builtin:NAME")
    modality: Literal["auto", "image", "tabular", "timeseries", "audio", "text"] = Field(
        "auto", description="how to read --data; auto: by suffix (a .csv is a table)")
    label: str | None = Field(None, description="tables / CSV series: label column, used for probing only")
    ignore: list[str] = Field(default_factory=list, description="tables: columns to leave out, e.g. ids")
    series_id: str | None = Field(None, description="long-format CSV series: the column naming each series")
    time_column: str | None = Field(None, description="long-format CSV series: the column to order by")
    sample_rate: int | None = Field(None, ge=1000, le=384000, description="audio: resample to this rate in Hz "
                                                                         "(default 16000)")
    segment_seconds: float | None = Field(None, gt=0, le=600, description="audio: cut files into clips this long "
                                                                          "(default 1.0)")
    text_field: str | None = Field(None, description="text: the JSON field or table column holding the text "
                                                   "(default 'text')")
    pair_data: str | None = Field(None, description="paired methods (clip): the second side of each pair, a source "
                                                    "whose sample ids match --data's")
    pair_modality: Literal["auto", "image", "tabular", "timeseries", "audio", "text"] = Field(
        "auto", description="how to read --pair-data; auto: by suffix (a .csv of captions needs text)")
    pair_text_field: str | None = Field(None, description="text --pair-data: the JSON field or table column holding "
                                                         "the text (default 'text')")
    pair_encoder: str | None = Field(None, description="paired methods: the encoder of --pair-data's side; "
                                                       "default: its modality's")
    pair_encoder_args: dict[str, Any] = Field(default_factory=dict, description="paired methods: --pair-encoder's "
                                                                               "width/depth etc.")
    method: str = "simclr"
    method_args: dict[str, Any] = Field(default_factory=dict, description="method hyperparameters")
    view_args: dict[str, Any] = Field(default_factory=dict, description="augmentation options, e.g. flip")
    encoder: str | None = Field(None, description="encoder name; default: the modality's (small_cnn, mlp, "
                                                  "dilated_conv, audio_cnn)")
    encoder_args: dict[str, Any] = Field(default_factory=dict, description="encoder width/depth etc.")
    init: str | None = Field(None, description="start from these weights: a selfsup run/export, a .safetensors/"
                                               ".pth file or a local model folder (continued pre-training)")
    freeze_encoder_steps: int = Field(0, ge=0, description="train only the heads for this many steps first")
    schedule: Literal["cosine", "wsd", "constant"] = Field(
        "cosine", description="LR after warm-up: cosine decay, warm-up-stable-decay, or constant")
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: share of the steps spent decaying")
    self_distill: bool = Field(False, description="two stages: further pre-train --init (stage 1), then re-start "
                                                  "from --init with a pull towards the stage-1 encoder")
    distill_weight: float = Field(1.0, ge=0, description="self-distillation: weight of the pull to the teacher")
    replay: str | None = Field(None, description="source-domain data to mix into each batch (continued pre-training)")
    replay_fraction: float = Field(0.1, gt=0, lt=1, description="share of each batch drawn from --replay")
    image_size: int | None = Field(None, ge=4, le=1024, description="view size; default: the dataset's")
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float | None = Field(None, gt=0, description="peak learning rate; default: the method's")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(2.0, ge=0)
    seed: int = 0
    out: str = "runs/selfsup"
    num_workers: int = Field(0, ge=0)
    bad_files: Literal["fail", "skip"] = "fail"
    online_probe: bool = True
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints (one is also written at the end "
                                                       "and on Ctrl-C)")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also write a checkpoint every this many steps "
                                                                       "(for long epochs)")
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_steps: int = Field(-1, description="stop after this many steps (-1: no limit)")

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be at least 1, or -1 for no limit (got {value})")
        return value

    @field_validator("method", "encoder", "pair_encoder")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

    def data_options(self) -> DataOptions:
        """How to read ``data``."""
        return DataOptions(modality=self.modality, image_size=self.image_size, bad_files=self.bad_files,
                           label=self.label, ignore=tuple(self.ignore), series_id=self.series_id,
                           time_column=self.time_column, sample_rate=self.sample_rate,
                           segment_seconds=self.segment_seconds, text_field=self.text_field)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a YAML recipe, apply overrides (e.g. CLI flags), validate."""
    path = Path(path)
    if not path.is_file():
        raise SelfsupError(f"recipe file '{path}' does not exist; pass the path of a selfsup recipe YAML.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SelfsupError(f"recipe file '{path}' is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(raw, dict):
        raise SelfsupError(f"recipe file '{path}' must hold a mapping of fields, got {type(raw).__name__}.")
    raw.update(overrides or {})
    return make_recipe(**raw)


def make_recipe(**fields: Any) -> Recipe:
    """Validate fields into a Recipe, turning pydantic's report into one readable line."""
    try:
        return Recipe(**fields)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "recipe"
            if e["type"] == "extra_forbidden":
                known = ", ".join(Recipe.model_fields)
                problems.append(f"unknown field '{where}' (known fields: {known})")
            else:
                problems.append(f"field '{where}': {e['msg']}")
        raise SelfsupError("invalid recipe: " + "; ".join(problems)) from err


def save_recipe(recipe: Recipe, path: Path) -> None:
    """Write the recipe as YAML, atomically."""
    write_atomic(path, yaml.safe_dump(recipe.model_dump(), sort_keys=False))
