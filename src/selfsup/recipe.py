"""The typed, validated description of a pre-training run. CLI flags map onto it; it is saved with every run."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from selfsup.errors import SelfsupError
from selfsup.files import write_atomic

if TYPE_CHECKING:  # selfsup.data imports torch: the CLI validates a recipe without it
    from selfsup.data import DataOptions


# how to read a source: by suffix, or one of selfsup.modalities.MODALITIES (written out here so that validating a
# recipe needs no torch; tests/test_recipe.py keeps the two the same)
ModalityName = Literal["auto", "image", "tabular", "timeseries", "audio", "text"]
LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")  # Lightning's loggers a run can write its metrics to


class Recipe(BaseModel):
    """Everything needed to replay a pre-training run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # no inf/NaN numbers

    data: str = Field(
        description="folder of images or of audio files (class sub-folders = labels), a table "
        "(.csv/.tsv/.parquet), series (.ts/.npy/.npz, or a folder with NAME_TRAIN/NAME_TEST "
        "files), text (.txt one document per line, .jsonl), or builtin:NAME (see 'selfsup "
        "datasets')"
    )
    modality: ModalityName = Field(
        "auto",
        description="how to read the data; auto (default): by file suffix; a .csv is a table, pass "
        "--modality timeseries or text to read it otherwise",
    )
    label: str | None = Field(None, description="tables / CSV series: label column, used for probing only")
    ignore: list[str] = Field(
        default_factory=list, description="tables: a column to leave out, e.g. an id (repeatable)"
    )
    series_id: str | None = Field(None, description="long-format CSV series: the column naming each series")
    time_column: str | None = Field(None, description="long-format CSV series: the column to order by")
    sample_rate: int | None = Field(
        None, ge=1000, le=384000, description="audio: resample to this rate in Hz (default 16000)"
    )
    segment_seconds: float | None = Field(
        None, gt=0, le=600, description="audio: cut files into clips this long (default 1.0)"
    )
    text_field: str | None = Field(
        None, description="text: the JSON field or table column holding the text (default 'text')"
    )
    pair_data: str | None = Field(
        None,
        description="paired methods (clip): the second side of each pair, e.g. "
        "captions; its sample ids (a .jsonl 'id' field, file paths without "
        "suffix) match --data's",
    )
    pair_modality: ModalityName = Field(
        "auto", description="how to read --pair-data; auto: by suffix (a .csv of captions needs text)"
    )
    pair_text_field: str | None = Field(
        None, description="text --pair-data: the JSON field or table column holding the text (default 'text')"
    )
    pair_encoder: str | None = Field(
        None, description="paired methods: the encoder of --pair-data's side; default: its modality's"
    )
    pair_encoder_args: dict[str, Any] = Field(
        default_factory=dict, description="paired methods: --pair-encoder's width/depth etc."
    )
    method: str = Field(
        "simclr",
        description="the self-supervised method: simclr (default) or any name 'selfsup "
        "methods' lists, e.g. scarf, ts2vec, or a masked one: mae, mfm, "
        "data2vec, jepa",
    )
    method_args: dict[str, Any] = Field(
        default_factory=dict, description="method hyperparameters, e.g. temperature=0.2 (KEY=VALUE, repeatable)"
    )
    view_args: dict[str, Any] = Field(
        default_factory=dict,
        description="augmentation options, e.g. flip=false, "
        "crop_scale=[0.3,1] or, for audio, pitch=3 "
        "(KEY=VALUE, repeatable; an unknown name lists "
        "the known ones)",
    )
    encoder: str | None = Field(
        None,
        description="images: small_cnn (default), vit or a timm name; tables: mlp "
        "(default), ft_transformer; series: dilated_conv (default), "
        "patch_transformer; audio: audio_cnn (default), spec_transformer; "
        "text: minilm (default), small_bert or a local Hugging Face model "
        "folder; masked methods default to vit, ft_transformer, "
        "patch_transformer, spec_transformer",
    )
    encoder_args: dict[str, Any] = Field(
        default_factory=dict, description="encoder options, e.g. width=128 (KEY=VALUE, repeatable)"
    )
    init: str | None = Field(
        None,
        description="start from these weights: a selfsup run/export, a .safetensors/"
        ".pth file or a local model folder (continued pre-training)",
    )
    init_parts: Literal["auto", "encoder", "all"] = Field(
        "auto",
        description="with --init from a selfsup run: carry its encoder only, or all of its method too (heads, "
        "teacher, centres, decoder); auto (default): all when the run trained the same method",
    )
    freeze_encoder_steps: int | None = Field(
        None,
        ge=0,
        description="head warm-up: train only the method's new heads for this many steps, then the whole model; "
        "default: a tenth of the steps when --init starts the method's heads afresh, else 0",
    )
    schedule: Literal["cosine", "wsd", "constant", "infinite"] = Field(
        "cosine",
        description="LR after warm-up: cosine (default), wsd (warm-up, stable, decay at the end), constant, or "
        "infinite (cool-down to --constant-fraction of the peak, then constant, EMA teachers at their base "
        "momentum: extend it with --resume, branch a deployable model off it with --anneal)",
    )
    decay_fraction: float = Field(
        0.2,
        gt=0,
        le=1,
        description="wsd: share of the steps spent decaying; infinite: share of the steps after warm-up spent "
        "cooling down, when --cooldown-steps is not given (default 0.2)",
    )
    cooldown_steps: int | None = Field(
        None, ge=0, description="infinite: steps of cosine cool-down from the peak LR to the constant one"
    )
    constant_fraction: float = Field(
        0.5, gt=0, le=1, description="infinite: the constant phase's LR as a share of the peak (default 0.5)"
    )
    anneal: str | None = Field(
        None,
        description="a run trained with --schedule infinite or constant: start from its latest checkpoint (in its "
        "constant phase) and decay the LR linearly to 0 over --anneal-steps, into --out; that run is not touched",
    )
    anneal_steps: int | None = Field(
        None, ge=1, description="with --anneal: steps of the anneal (default: a tenth of the steps the run has trained)"
    )
    adapter: Literal["none", "lora"] = Field(
        "none",
        description="lora: continue pre-training through low-rank adapters only (Hu et al. 2021, through peft), "
        "on transformer encoders (vit and timm transformers, text models, ft/patch/spec_transformer); the export "
        "merges them into plain weights and keeps them apart too (adapter.safetensors)",
    )
    lora_rank: int = Field(8, ge=1, description="--adapter lora: the adapters' rank (default 8)")
    lora_alpha: float | None = Field(
        None, gt=0, description="--adapter lora: the update is scaled by alpha / rank (default: alpha = rank)"
    )
    adapter_norms: bool = Field(False, description="--adapter lora: train the norm layers' weights and biases too")
    self_distill: bool = Field(
        False,
        description="with --init: stage 1 further pre-trains into OUT-stage1, stage "
        "2 re-starts from --init pulled towards the stage-1 encoder (Lee et "
        "al. 2022)",
    )
    distill_weight: float = Field(
        1.0, ge=0, description="self-distillation: weight of the pull to the teacher (default 1)"
    )
    distill_report: bool = Field(
        True,
        description="--self-distill on labelled data: end with one comparison on it (Lee et al. 2022's): the --init "
        "checkpoint, stage 1, the self-distilled encoder and the same architecture trained from scratch for "
        "stage 1's steps (in OUT-scratch), kNN and linear probes with paired intervals, in OUT/distill-report "
        "(default on)",
    )
    random_init: bool = Field(
        False,
        description="start from random weights even where the encoder comes with its own (minilm); what "
        "--self-distill's from-scratch comparison trains",
    )
    replay: str | None = Field(None, description="source-domain data to mix into each batch (continued pre-training)")
    replay_fraction: float = Field(0.1, gt=0, lt=1, description="share of each batch drawn from --replay (default 0.1)")
    target_data: str | None = Field(
        None,
        description="the target domain's data (e.g. what 'selfsup curate' curated --data for), upsampled over the "
        "last --upsample-at-end of the steps",
    )
    upsample_at_end: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="domain upsampling (Blakeney et al. 2024): over this last share of the steps, --target-share of "
        "each batch comes from --target-data (default 0: off)",
    )
    target_share: float = Field(
        0.5, gt=0, le=1, description="--upsample-at-end: share of each batch drawn from --target-data (default 0.5)"
    )
    watch: list[str] = Field(
        default_factory=list,
        description="labelled data to score while training (nearest-class-mean accuracy every --watch-every steps, "
        "into the metrics, watch.csv and watch.png), e.g. the source domain of continued pre-training, to see the "
        "stability gap; the --replay source, when labelled, and --data are watched with it (repeatable)",
    )
    watch_every: int | None = Field(
        None, ge=1, description="steps between the scores of --watch (default: a twentieth of the run's steps)"
    )
    image_size: int | None = Field(
        None, ge=4, le=1024, description="size of the views fed to the encoder; default: the dataset's"
    )
    epochs: int = Field(20, ge=1, description="passes over the data (default 20)")
    batch_size: int = Field(256, ge=2, description="samples per training step (default 256)")
    lr: float | None = Field(
        None,
        gt=0,
        description="peak learning rate (AdamW, after warm-up; re-warms a continued "
        "run to this peak); default: the method's",
    )
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay (default 1e-4)")
    warmup_epochs: float = Field(2.0, ge=0, description="epochs of linear learning-rate warm-up (default 2)")
    warmup_steps: int | None = Field(
        None, ge=0, description="steps of linear learning-rate warm-up (instead of --warmup-epochs)"
    )
    warmup_fraction: float | None = Field(
        None, ge=0, le=1, description="share of the run's steps spent warming up (instead of --warmup-epochs)"
    )
    seed: int = Field(0, description="random seed of initialisation, views and data order (default 0)")
    out: str = Field("runs/selfsup", description="run folder (default runs/selfsup)")
    num_workers: int | None = Field(
        None,
        ge=0,
        description="data-loading worker processes (default: 0, the main process, for data in memory; 4 for data "
        "read lazily)",
    )
    in_memory: Literal["auto", "yes", "no"] = Field(
        "auto",
        description="decode every sample before training (yes), as training asks for them, in the data-loading "
        "workers (no), or auto (default): in memory when the decoded data fits 2 GiB",
    )
    column: str | None = Field(
        None,
        description="Hugging Face datasets (save_to_disk folders) and Parquet files: the image, audio or text column "
        "to read",
    )
    bad_files: Literal["fail", "skip"] = Field(
        "fail",
        description="unreadable image or audio files: stop (fail, "
        "default) or leave them out with a warning saying "
        "how many (skip)",
    )
    online_probe: bool = Field(
        True,
        description="train a linear probe on the embeddings alongside, to watch progress on labeled data (default on)",
    )
    checkpoint_every: int = Field(
        1, ge=1, description="epochs between checkpoints (default 1; one is also written at the end and on Ctrl-C)"
    )
    checkpoint_every_steps: int | None = Field(
        None,
        ge=1,
        description="also write a checkpoint every this many steps (for long epochs; a killed run resumes there)",
    )
    accelerator: str = Field("auto", description="cpu, gpu or auto (default; Lightning)")
    devices: int | str = Field(1, description="number of devices (per node), e.g. 2, or auto (default 1; Lightning)")
    num_nodes: int = Field(
        1,
        ge=1,
        description="number of machines, each running --devices processes; above 1 the run must be started by "
        "torchrun or SLURM's srun on every node (docs/scale.md) (default 1)",
    )
    strategy: str = Field(
        "auto",
        description="auto (default) or ddp: Lightning's data parallelism, every device holding the whole model "
        "(docs/scale.md)",
    )
    precision: str = Field("32-true", description="32-true (default), bf16-mixed, 16-mixed (Lightning)")
    accumulate_grad_batches: int = Field(
        1,
        ge=1,
        description="sum the gradients of this many batches per optimiser step (default 1); steps, --max-steps, "
        "the LR schedule and --checkpoint-every-steps count optimiser steps",
    )
    gradient_clip_val: float | None = Field(
        None, gt=0, description="clip the gradients at this value before each optimiser step (default: no clipping)"
    )
    gradient_clip_algorithm: Literal["norm", "value"] = Field(
        "norm",
        description="with --gradient-clip-val: clip the gradients' global norm (norm, default) or each value",
    )
    max_steps: int = Field(-1, description="stop after this many steps (default -1: train every epoch)")
    logger: str = Field(
        "csv,tensorboard",
        description="where the metrics go, comma-separated: csv (always: the report reads it), tensorboard, mlflow "
        "(a local store in OUT/mlruns unless MLFLOW_TRACKING_URI is set), wandb (offline in OUT/wandb unless "
        "WANDB_MODE=online) (default csv,tensorboard)",
    )

    @field_validator("logger")
    @classmethod
    def _loggers(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        for name in names:
            if name not in LOGGERS:
                close = difflib.get_close_matches(name, LOGGERS, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"unknown logger '{name}' (choose from {', '.join(LOGGERS)}){hint}")
        return ",".join(name for name in LOGGERS if name == "csv" or name in names)

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be at least 1, or -1 for no limit (got {value})")
        return value

    @model_validator(mode="after")
    def _one_warmup(self) -> Recipe:
        if self.warmup_steps is not None and self.warmup_fraction is not None:
            raise ValueError("give --warmup-steps or --warmup-fraction, not both")
        if self.random_init and self.init is not None:
            raise ValueError("--random-init starts from random weights and --init from a checkpoint: give one")
        if self.cooldown_steps is not None and self.schedule != "infinite":
            raise ValueError("--cooldown-steps is the infinite schedule's: give --schedule infinite, or leave it out")
        if self.watch_every is not None and not self.watch and self.replay is None:
            raise ValueError("--watch-every is how often --watch scores: give the data to watch with --watch DATA")
        if self.upsample_at_end > 0 and self.target_data is None:
            raise ValueError("--upsample-at-end raises the target domain's share: give its data with --target-data")
        if self.target_data is not None and self.upsample_at_end == 0:
            raise ValueError("--target-data is upsampled at the end of training: give --upsample-at-end FRACTION")
        if self.target_data is not None and self.replay is not None:
            raise ValueError("--replay and --target-data both mix another source into the batches: give one")
        if self.anneal_steps is not None and self.anneal is None:
            raise ValueError("--anneal-steps is the length of an anneal: give the run to anneal with --anneal RUN")
        return self

    @field_validator("method", "encoder", "pair_encoder")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

    def data_options(self) -> DataOptions:
        """How to read ``data``."""
        from selfsup.data import DataOptions

        return DataOptions(
            modality=self.modality,
            image_size=self.image_size,
            bad_files=self.bad_files,
            label=self.label,
            ignore=tuple(self.ignore),
            series_id=self.series_id,
            time_column=self.time_column,
            sample_rate=self.sample_rate,
            segment_seconds=self.segment_seconds,
            text_field=self.text_field,
            in_memory=self.in_memory,
            column=self.column,
        )


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
            where = ".".join(str(p) for p in e["loc"])
            if not e["loc"]:  # a rule across fields (model_validator): its own words
                problems.append(e["msg"].removeprefix("Value error, "))
            elif e["type"] == "extra_forbidden":
                known = ", ".join(Recipe.model_fields)
                problems.append(f"unknown field '{where}' (known fields: {known})")
            else:
                problems.append(f"field '{where}': {e['msg']}")
        raise SelfsupError("invalid recipe: " + "; ".join(problems)) from err


def recipe_yaml(recipe: Recipe) -> str:
    """The recipe as YAML, every field in order (defaults included); ``load_recipe`` reads it back."""
    return yaml.safe_dump(recipe.model_dump(), sort_keys=False)


def save_recipe(recipe: Recipe, path: Path) -> None:
    """Write the recipe as YAML, atomically."""
    write_atomic(path, recipe_yaml(recipe))
