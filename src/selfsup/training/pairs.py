"""Paired pre-training: the second side of each pair, its encoder and views, and the side exports (CLIP), or
pairs through one encoder (supervised SimCSE).

``--data`` is side a (``--init`` is its) and ``--pair-data`` side b; a sample of a is paired with the sample of b whose id
matches (``data.pair_key``: ids without a file suffix or segment number), wherever b has it (b's own
train/test split is not used: a's decides). Samples of a without a match are left out.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from selfsup.checkpoint import save_encoder
from selfsup.data import ArrayDataset, DataOptions, Preprocessing, Splits, decoded, pair_by_id
from selfsup.encoders import Encoder, build_encoder
from selfsup.encoders.pair import PairEncoder, side_names
from selfsup.errors import SelfsupError
from selfsup.methods.base import Method
from selfsup.modalities import get_modality
from selfsup.recipe import Recipe
from selfsup.sources import load_data, source_modality
from selfsup.views import ViewSpec


def check_paired(recipe: Recipe, method: type[Method]) -> None:
    """A paired method needs --pair-data; other methods refuse it unless they take pairs through their one
    encoder (supervised SimCSE); pairs do not mix with replay or self-distillation."""
    if method.paired and not recipe.pair_data:
        raise SelfsupError(
            f"method '{recipe.method}' trains on pairs: give the second side with --pair-data (a "
            "source whose sample ids match --data's, e.g. builtin:spoken_word_captions for "
            "builtin:spoken_words)."
        )
    if recipe.pair_data and not (method.paired or method.accepts_pairs):
        raise SelfsupError(
            f"--pair-data is for paired methods (clip, and simcse for supervised pairs); method "
            f"'{recipe.method}' trains on --data alone."
        )
    if (recipe.pair_encoder or recipe.pair_encoder_args) and not method.paired:
        raise SelfsupError(
            f"--pair-encoder and --pair-encoder-arg are for two-encoder methods (clip); method "
            f"'{recipe.method}' reads --pair-data with its one encoder."
        )
    if recipe.pair_data and (recipe.replay or recipe.self_distill):
        raise SelfsupError("--replay and --self-distill are not supported with paired data; leave them out.")
    if recipe.pair_modality != "auto" and not method.paired:
        raise SelfsupError(
            f"method '{recipe.method}' reads --pair-data as its one encoder reads --data; leave --pair-modality out."
        )


def _pool(splits: Splits) -> ArrayDataset:
    """Every sample of a source, whatever its split: side b is matched by id wherever it is."""
    train = decoded(splits.train, "pairing samples")
    if splits.test is None:
        return train
    test = decoded(splits.test, "pairing samples")
    if train.x.shape[1:] != test.x.shape[1:]:
        raise SelfsupError(f"the train and test samples of '{splits.name}' have different shapes.")
    classes = train.classes if train.classes == test.classes else None
    return ArrayDataset(torch.cat([train.x, test.x]), torch.cat([train.y, test.y]), train.ids + test.ids, classes)


def _read_pair_data(recipe: Recipe, options: DataOptions, preprocessing: Preprocessing | None = None) -> Splits:
    """``load_data`` of --pair-data, its messages naming the --pair-* flags that read it."""
    assert recipe.pair_data is not None  # called only for a recipe with --pair-data
    try:
        return load_data(recipe.pair_data, options, preprocessing=preprocessing)
    except SelfsupError as err:
        message = str(err).replace("--text-column", "--pair-text-column").replace("--modality", "--pair-modality")
        raise SelfsupError(message) from err


def side_b(recipe: Recipe, options: DataOptions, resume: bool) -> tuple[Splits, Encoder]:
    """``--pair-data`` read with its own options (``--pair-modality``, ``--pair-text-column``; --data's
    reading flags are --data's alone), and its encoder: ``--pair-encoder`` or the modality's default, with its
    pre-trained weights where it has them (text)."""
    options_b = DataOptions(
        modality=recipe.pair_modality, text_field=recipe.pair_text_field, bad_files=recipe.bad_files
    )
    name_of = source_modality(recipe.pair_data or "", options_b)
    planned = None  # read once, as the chosen encoder reads (e.g. its tokenizer), when that is known before
    if name_of is not None:
        name = recipe.pair_encoder or get_modality(name_of).default_encoder
        planned = get_modality(name_of).planned_preprocessing(name, options_b, recipe.pair_encoder_args)
    splits = _read_pair_data(recipe, options_b, planned)
    modality = get_modality(splits.modality)
    config = modality.encoder_config(
        recipe.pair_encoder or modality.default_encoder, splits, options_b, recipe.pair_encoder_args
    )
    encoder = build_encoder(config)
    encoder.preprocessing = modality.preprocessing(splits, options_b, config)
    if modality.start_weights is not None and not resume:
        modality.start_weights(encoder)
    return splits, encoder


def starts_pre_trained(config: dict, init: str | None = None) -> bool:
    """Whether a side's encoder starts from pre-trained weights: an ``--init``, or a text model with a weights
    folder (minilm, a local model; not small_bert)."""
    return bool(init) or get_modality(config["modality"]).own_weights(config)


def resolved_lock(recipe: Recipe, trained_a: bool, trained_b: bool) -> dict:
    """The method arguments with CLIP's ``lock=auto`` decided from which sides start pre-trained
    (``trained_a``, ``trained_b``): lock the one that does when the other starts from scratch, else none.
    A lock asked for on a side that starts from scratch is warned about."""
    args = dict(recipe.method_args)
    lock = args.get("lock", "auto")
    if lock == "auto":
        args["lock"] = "a" if trained_a and not trained_b else "b" if trained_b and not trained_a else "none"
    elif lock in ("a", "b") and not (trained_a if lock == "a" else trained_b):
        warnings.warn(
            f"lock={lock} keeps side {lock}'s encoder fixed at random weights; give that side pre-trained "
            "weights (--init for side a, a text model for side b) or leave lock out.",
            stacklevel=2,
        )
    return args


def same_encoder_side(recipe: Recipe, preprocessing: Preprocessing) -> Splits:
    """``--pair-data`` read as the one encoder reads data (its tokenizer and length; for supervised SimCSE a
    positive text per text), its field ``--pair-text-column`` (default 'text'), not --data's; data of another
    modality is refused."""
    options = DataOptions(text_field=recipe.pair_text_field, bad_files=recipe.bad_files)
    return _read_pair_data(recipe, options, preprocessing.without_source())  # --data's columns are --data's alone


def pair_splits(a: Splits, b: Splits) -> Splits:
    """Side a's splits with each sample paired with its match in ``b`` (``PairedDataset`` splits); a test split
    with no match at all is dropped (pre-training does not use it)."""
    pool = _pool(b)
    train = pair_by_id(decoded(a.train, "pairing samples"), pool, a.name, b.name)
    test = pair_by_id(decoded(a.test, "pairing samples"), pool, a.name, b.name, required=False) if a.test else None
    return replace(a, train=train, test=test)  # type: ignore[arg-type]  # PairedDataset: ArrayDataset's interface


class PairViews(nn.Module):
    """Views of a batch of pairs: one view of side a by a's modality, one of side b by b's."""

    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, pair: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.a(pair[0])[0], self.b(pair[1])[0]]


def pair_views(spec: ViewSpec, a: Splits, b: Splits, config_a: dict, config_b: dict, view_args: dict) -> PairViews:
    """``view_args`` (the recipe's and the data's defaults) go to side a; side b gets its data's defaults."""
    views_a = get_modality(a.modality).make_views(spec, a, config_a, view_args)
    views_b = get_modality(b.modality).make_views(spec, b, config_b, b.view_defaults)
    return PairViews(views_a, views_b)


def export_sides(encoder: PairEncoder, out: Path, recipe: dict) -> tuple[Path, Path]:
    """Write each side as an ordinary export of its modality (``OUT/audio``, ``OUT/text``), each naming the other
    as its partner, so ``evaluate`` can classify zero-shot with the text side's label prompts."""
    name_a, name_b = side_names(encoder.config)
    return (
        save_encoder(encoder.a, out / name_a, recipe, extra={"paired_with": f"../{name_b}", "side": "a"}),
        save_encoder(encoder.b, out / name_b, recipe, extra={"paired_with": f"../{name_a}", "side": "b"}),
    )
