"""Output folders: selfsup writes only where it may, replaces only what it wrote, and one run holds a folder at a time.

A folder is recognised as selfsup's by the file each kind of output writes first (a run's ``selfsup.json`` or
``recipe.yaml``, an evaluation's ``results.json``, ...), checked by content, not by name alone. ``--overwrite``
removes only the entries that kind of output writes (``checkpoints/``, ``report.html``, ...); anything else in
the folder stays, and a folder of files selfsup did not write is refused outright.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selfsup.errors import SelfsupError

LOCK = ".selfsup.lock"
STAGING = ".selfsup-staging-"  # the prefix of the folders an output is written into before it is moved in place


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_encoder_meta(path: Path) -> bool:
    meta = _json(path)
    return isinstance(meta, dict) and meta.get("format") == "selfsup-encoder"


def _is_recipe(path: Path) -> bool:
    try:
        recipe = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(recipe, dict) and {"data", "method", "out"} <= set(recipe)


def _json_with(*keys: str) -> Callable[[Path], bool]:
    """A JSON object with ``keys``."""

    def check(path: Path) -> bool:
        content = _json(path)
        return isinstance(content, dict) and set(keys) <= set(content)

    return check


def _list_of(*keys: str) -> Callable[[Path], bool]:
    """A JSON list of records that each have ``keys`` (``[]`` too: a bench writes that before its first cell)."""

    def check(path: Path) -> bool:
        content = _json(path)
        return isinstance(content, list) and all(isinstance(r, dict) and set(keys) <= set(r) for r in content)

    return check


def _report_with(meta_key: str) -> Callable[[Path], bool]:
    """A report's ``results.json``: ``{"meta": {..., meta_key: ...}, "rows": [...]}`` (an evaluation's meta names
    its ``encoder``, a leaderboard's its ``suite``)."""

    def check(path: Path) -> bool:
        content = _json(path)
        return (
            isinstance(content, dict)
            and isinstance(content.get("meta"), dict)
            and meta_key in content["meta"]
            and isinstance(content.get("rows"), list)
        )

    return check


is_evaluation_results = _report_with("encoder")  # an evaluation report's results.json


@dataclass(frozen=True)
class OutputKind:
    """One kind of output folder: how to recognise it and the top-level entries selfsup writes into it."""

    name: str  # for messages: "pre-training run"
    markers: tuple[tuple[str, Callable[[Path], bool]], ...]  # (file or glob, check of its content): any one marks it
    entries: tuple[str, ...]  # glob patterns of what selfsup writes there (each one's ``.tmp`` too)
    nested: tuple[tuple[str, str], ...] = ()  # (glob, kind name): sub-folders cleared as that kind, if they are one
    folders: tuple[str, ...] = ()  # sub-folders it creates: removed once empty

    def owns(self, folder: Path) -> bool:
        return any(path.is_file() and check(path) for name, check in self.markers for path in folder.glob(name))

    def written(self, folder: Path) -> list[Path]:
        """The top-level entries of ``folder`` this kind of output wrote (a paired run's side folders included;
        not the nested outputs, which ``clear_output_folder`` clears as their own kind)."""
        found = {p for pattern in self.entries for suffix in ("", ".tmp") for p in folder.glob(pattern + suffix)}
        meta = _json(folder / "selfsup.json") if self is RUN else None
        if isinstance(meta, dict) and meta.get("modality") == "pairs":
            from selfsup.encoders.pair import side_names

            sides = (folder / side for side in side_names(meta["encoder"]))
            found |= {side for side in sides if (side / "selfsup.json").is_file()}
        return sorted(found)


_REPORT_FILES = (
    "results.json",
    "summary.md",
    "report.html",
    "label_efficiency.png",
    "few_shot.png",
    "confusion.png",
    "embedding_map.png",
    "loss_curve.png",
)
EVALUATION = OutputKind(
    "evaluation report",
    (
        ("results.json", is_evaluation_results),
        ("before_after.json", _list_of("before", "after")),
        ("[0-9]*-*/results.json", is_evaluation_results),
    ),  # a stopped one
    _REPORT_FILES + ("before_after.md", "before_after.json", LOCK),
    nested=(("[0-9]*-*", "evaluation report"),),
)  # before/after: each set's report
PSEUDO_LABELS_HEADER = "id,pseudo_label,confidence,used"  # selftrain's pseudo_labels.csv


def _is_pseudo_labels(path: Path) -> bool:
    try:
        with path.open() as rows:
            return rows.readline().rstrip("\r\n") == PSEUDO_LABELS_HEADER
    except (OSError, ValueError):
        return False


def _is_student(path: Path) -> bool:
    meta = _json(path)
    return isinstance(meta, dict) and meta.get("format") == "selfsup-encoder" and "selftrain" in meta


# selftrain.json moves in last; a move stopped before it leaves the pseudo-labels (moved first) and the student,
# which mark the folder as well
SELFTRAIN = OutputKind(
    "self-training report",
    (
        ("selftrain.json", _json_with("teacher", "student")),
        ("pseudo_labels.csv", _is_pseudo_labels),
        ("student/selfsup.json", _is_student),
    ),
    ("selftrain.json", "pseudo_labels.csv", "student", LOCK),
)
# a pre-training run, or an export (the same files without the training state)
RUN = OutputKind(
    "pre-training run",
    (("selfsup.json", _is_encoder_meta), ("recipe.yaml", _is_recipe)),
    (
        "recipe.yaml",
        "selfsup.json",
        "encoder.safetensors",
        "method.safetensors",
        "adapter.safetensors",
        "adapter.json",
        "preprocessing.json",
        "init.json",
        "metrics-before-resume.csv",
        "watch.csv",
        "watch.png",
        "train.log",
        "loggers.json",
        "mlruns",  # --logger mlflow's local store, and wandb's offline runs
        "wandb",
        LOCK,
        # inside its folders, only the files selfsup and Lightning's loggers write: a user's file there stays
        "checkpoints/last.ckpt",
        "checkpoints/previous.ckpt",
        "checkpoints/last.ckpt.corrupt",
        "csv/metrics.csv",
        "csv/hparams.yaml",
        "tensorboard/hparams.yaml",
        "tensorboard/events.out.tfevents.*",
    ),
    nested=(
        ("eval", EVALUATION.name),
        ("report", EVALUATION.name),
        ("selftrain", SELFTRAIN.name),
        ("distill-report", "comparison"),
    ),
    folders=("checkpoints", "csv", "tensorboard"),
)
COMPARISON = OutputKind(
    "comparison", (("compare.json", _json_with("pairs")),), ("compare.md", "compare.json", "report.html", LOCK)
)
LEADERBOARD = OutputKind(
    "leaderboard",
    (("cells.json", _list_of("dataset", "rows")), ("results.json", _report_with("suite"))),
    _REPORT_FILES + ("cells.json", LOCK),
    nested=(("runs/*", RUN.name),),
)  # each cell's run


EXPORT_FORMAT = "selfsup-export"  # the "format" of an export's export.json


def _is_export_record(path: Path) -> bool:
    record = _json(path)
    return isinstance(record, dict) and record.get("format") == EXPORT_FORMAT


# an export in another format than selfsup's (export --format hf|timm|onnx|torchscript): its export.json lists its
# files (workflows.formats.written_by clears those)
EXPORT = OutputKind("model export", (("export.json", _is_export_record),), ("export.json", LOCK))
# selfsup curate: the chosen pool samples (selection.csv), what was done (curation.json) and the prepared subset
CURATION = OutputKind(
    "curation",
    (("curation.json", _json_with("strategy", "budget", "selected")),),
    ("curation.json", "selection.csv", "subset", "subset.*", LOCK),
)


def _is_unlearned(path: Path) -> bool:
    meta = _json(path)
    return isinstance(meta, dict) and meta.get("format") == "selfsup-encoder" and "unlearned" in meta


# selfsup unlearn: the unlearned model (model/: a classifier or an encoder), its audit (audit.json, moved in
# last; a move stopped before it leaves model/, which marks the folder as well) and the retrained gold standard
UNLEARNING = OutputKind(
    "unlearning",
    (("audit.json", _json_with("method", "forget", "audit")), ("model/selfsup.json", _is_unlearned)),
    ("audit.json", "model", "retrained", LOCK),
)
# selfsup prepare: a source as LitData shards (train/, test/), their ids and labels, and selfsup-shards.json (moved
# in last: its marker)
SHARDS = OutputKind(
    "prepared dataset",
    (("selfsup-shards.json", _json_with("format", "modality", "splits")),),
    ("selfsup-shards.json", "selfsup-samples.parquet", "train", "test", LOCK),
)
KINDS = {
    kind.name: kind
    for kind in (RUN, EVALUATION, COMPARISON, LEADERBOARD, SELFTRAIN, EXPORT, CURATION, UNLEARNING, SHARDS)
}


def _holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds anything but selfsup's lock and the staging folders a killed run left."""
    return folder.is_dir() and any(p.name != LOCK and not p.name.startswith(STAGING) for p in folder.iterdir())


def _a(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _owner(folder: Path) -> OutputKind | None:
    return next((kind for kind in KINDS.values() if kind.owns(folder)), None)


def _check_writable(path: Path, flag: str) -> None:
    """Try writing where ``path`` (a folder, new or not) will be: in the nearest folder that exists (root can
    write anywhere, so asking os.access is not enough)."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise SelfsupError(f"{flag} '{path}' lies under '{existing}', which is a file; choose another folder.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise SelfsupError(
            f"cannot write to '{existing}' ({err.strerror or err}); choose a folder you can write to."
        ) from None


def check_output_folder(
    out: str | Path, kind: OutputKind, *, overwrite: bool, flag: str = "--out", resume: bool = False
) -> Path:
    """Before any work: ``out`` must be a folder that is new, empty, or (with ``overwrite`` / ``resume``) a
    ``kind`` output; never a file, never a folder of files selfsup did not write, and writable."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SelfsupError(f"{flag} '{out}' is a file; give a folder (new or empty) for the output.")
    if _holds_files(out):
        if not kind.owns(out):
            other = _owner(out)
            what = (
                f"{_a(other.name)}, not {_a(kind.name)}"
                if other
                else f"files selfsup did not write (it is no {kind.name})"
            )
            raise SelfsupError(
                f"{flag} '{out}' holds {what}; choose a new or empty folder. selfsup never deletes "
                "what it did not write."
            )
        if not (overwrite or resume):
            hint = "--resume to continue that run, " if kind is RUN else ""
            raise SelfsupError(
                f"{flag} '{out}' already holds {_a(kind.name)}; pass {hint}--overwrite to replace it, "
                "or choose another folder."
            )
    _check_writable(out, flag)
    return out


def check_output_file(
    out: str | Path, what: str, ours: Callable[[Path], bool], *, overwrite: bool, flag: str = "--out"
) -> Path:
    """Before any work: ``out`` must be a new file, or (with ``overwrite``) one that ``ours`` recognises as
    selfsup's ``what`` (e.g. "embeddings"); never a folder, and its folder must be writable."""
    out = Path(out)
    if out.is_dir():
        raise SelfsupError(f"{flag} '{out}' is a folder; give a file name for the {what}.")
    if out.exists() or out.is_symlink():
        if not (out.is_file() and ours(out)):
            raise SelfsupError(
                f"{flag} '{out}' is a file selfsup did not write (not selfsup {what}); choose another "
                f"{flag}. selfsup never deletes what it did not write."
            )
        if not overwrite:
            raise SelfsupError(
                f"{flag} '{out}' already holds selfsup {what}; pass --overwrite to replace it, or "
                f"choose another {flag}."
            )
    _check_writable(out.parent, flag)
    return out


def _remove_empty(folder: Path, up_to: Path) -> None:
    """Remove ``folder`` and then its parents below ``up_to`` while they hold nothing (but a stale lock)."""
    while folder != up_to and folder.is_dir() and not _holds_files(folder):
        (folder / LOCK).unlink(missing_ok=True)
        if any(folder.iterdir()):  # a killed run's staging folder: only ``staging``, under the lock, removes it
            return
        folder.rmdir()
        folder = folder.parent


def clear_output_folder(out: str | Path, kind: OutputKind) -> list[Path]:
    """Remove what a ``kind`` output wrote into ``out`` (and nothing else); returns what was removed.
    Nested outputs (a run's ``eval/``, a bench's ``runs/*``) are cleared as their own kind, and their folder
    removed once empty; a user's file beside them stays. Refuses a folder it does not recognise as a ``kind``
    output."""
    out = Path(out)
    if not _holds_files(out):
        return []
    if not kind.owns(out):
        raise SelfsupError(f"'{out}' holds files selfsup did not write (it is no {kind.name}); nothing was removed.")
    removed = [p for p in kind.written(out) if p.name != LOCK]
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        _remove_empty(path.parent, out)  # checkpoints/, csv/, ... once nothing else is in them
    for name in kind.folders:
        _remove_empty(out / name, out)
    for pattern, name in kind.nested:
        for sub in sorted(out.glob(pattern)):
            if sub.is_dir() and not sub.is_symlink() and KINDS[name].owns(sub):
                removed += clear_output_folder(sub, KINDS[name])
                _remove_empty(sub, out)
    return removed


def move_outputs(tmp: Path, out: Path, earlier: OutputKind | None = None, last: str | None = None) -> list[str]:
    """Move every file written under ``tmp`` to the same place under ``out``. With ``earlier`` (the kind of output
    there that this one replaces), what that output wrote is removed first. A file of the user's in the way (one
    that neither it nor a folder above it was written by ``earlier``) is refused before anything is removed or
    moved. ``last``: the file moved last (the output's marker, so a stopped move leaves no marker). Returns the moved
    files' names, relative to ``out``."""
    files = sorted((p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()), key=lambda n: (n == last, n))
    ours = set(earlier.written(out)) if earlier is not None else set()
    clash = next(
        (name for name in files if (out / name).exists() and not ours & {out / name, *(out / name).parents}), None
    )
    if clash is not None:
        raise SelfsupError(
            f"--out '{out}' holds '{clash}', which selfsup did not write and this output would replace; "
            "move it or choose another folder."
        )
    if earlier is not None:
        clear_output_folder(out, earlier)
    for name in files:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / name, out / name)
    return files


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A new folder inside ``out`` (held with ``folder_lock``) to write an output into before ``move_outputs`` moves
    it in place; removed on the way out. The staging folders a killed run left there are removed first: their names
    are selfsup's own, and the lock says no running process uses them."""
    if _holder(out / LOCK) != f"process {os.getpid()}":
        raise RuntimeError(f"staging('{out}') needs this process to hold folder_lock('{out}')")
    for stale in out.glob(STAGING + "*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
    folder = Path(tempfile.mkdtemp(dir=out, prefix=STAGING))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid else "another process"


@contextmanager
def folder_lock(out: str | Path) -> Iterator[Path]:
    """Hold ``out`` for this process (an OS file lock on ``out/.selfsup.lock``, released even on SIGKILL); a
    second run on the same folder is refused naming the running process. Folders this created and left
    empty are removed again on the way out."""
    out = Path(out)
    first_created = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    out.mkdir(parents=True, exist_ok=True)
    lock_path = out / LOCK
    handle = _locked(lock_path, out)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield out
        finally:
            lock_path.unlink(missing_ok=True)
    finally:
        handle.close()
        if first_created is not None:
            _remove_empty(out, first_created.parent)


def _locked(lock_path: Path, out: Path) -> Any:
    """The lock file, open and locked by this process; refused when another process holds it. Retried when the
    holder removed the file between our open and our lock (then we would hold a file no one else sees)."""
    while True:
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        if not _try_lock(handle):
            handle.close()
            raise SelfsupError(
                f"'{out}' is in use by {_holder(lock_path)} (a run on the same folder); wait for it "
                "to finish or stop it, or choose another --out."
            )
        try:
            same = os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()


def _try_lock(handle: Any) -> bool:
    """An exclusive, non-blocking lock on an open file; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            handle.seek(0)  # every process locks the same first byte ("a+" starts at the end)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
