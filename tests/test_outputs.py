"""Output folders: refuse what selfsup did not write, replace only what it did, one holder at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from selfsup.errors import SelfsupError
from selfsup.outputs import (
    COMPARISON,
    EVALUATION,
    LEADERBOARD,
    LOCK,
    RUN,
    SELFTRAIN,
    OutputKind,
    check_output_file,
    check_output_folder,
    clear_output_folder,
    folder_lock,
)

REPORT = {"meta": {"encoder": "runs/x", "data": "builtin:iris"}, "rows": []}
# each kind: the files its own output holds (path -> content); a dict is written as JSON
OWN: dict[str, dict[str, object]] = {
    "run": {
        "selfsup.json": {"format": "selfsup-encoder", "encoder": {}},
        "encoder.safetensors": b"\0weights",
        "recipe.yaml": "data: builtin:iris\nmethod: simclr\nout: runs/x\n",
        "checkpoints/last.ckpt": b"ckpt",
        "csv/metrics.csv": "step,loss\n",
        "eval/results.json": REPORT,
        "eval/summary.md": "# old",
    },
    "evaluation": {
        "results.json": REPORT,
        "summary.md": "# old",
        "report.html": "<html>",
        "few_shot.png": b"png",
        "before_after.json": [{"before": 0.5, "after": 0.6}],
        "0-a.csv/results.json": REPORT,
    },
    "comparison": {"compare.json": {"pairs": []}, "compare.md": "# old", "report.html": "<html>"},
    "leaderboard": {
        "cells.json": [],
        "results.json": {"meta": {"suite": "smoke"}, "rows": []},
        "summary.md": "# old",
        "runs/iris-simclr-0/selfsup.json": {"format": "selfsup-encoder"},
        "runs/iris-simclr-0/recipe.yaml": "data: builtin:iris\nmethod: simclr\nout: x\n",
    },
    "selftrain": {"selftrain.json": {"teacher": {}, "student": {}}},
}
KINDS = {
    "run": RUN,
    "evaluation": EVALUATION,
    "comparison": COMPARISON,
    "leaderboard": LEADERBOARD,
    "selftrain": SELFTRAIN,
}
# a user's folder: including look-alikes of selfsup's file names that are not selfsup's content
USER = {
    "notes.txt": "mine",
    "data/x.csv": "a,b\n1,2\n",
    "results.json": "{}",
    "selfsup.json": '{"format": "x"}',
    "compare.json": "[1, 2]",
    "selftrain.json": "{}",
    "pseudo_labels.csv": "id,label\n1,a\n",
    "student/selfsup.json": '{"format": "selfsup-encoder"}',  # an encoder, not a self-training student
    "cells.json": '{"not": "a list"}',
    "2024-01-report.txt": "x",
}


def _write(root: Path, files: dict[str, object]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
    return root


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root``: a file's bytes, None for a folder."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _one_line(err: SelfsupError) -> str:
    message = str(err)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_folder_is_refused_and_left_alone(tmp_path, name, overwrite):
    user = _write(tmp_path / "mine", USER)
    before = _snapshot(user)
    with pytest.raises(SelfsupError) as err:
        check_output_folder(user, KINDS[name], overwrite=overwrite)
    message = _one_line(err.value)
    assert "did not write" in message and "--overwrite" not in message
    with pytest.raises(SelfsupError, match="nothing was removed"):
        clear_output_folder(user, KINDS[name])
    assert _snapshot(user) == before


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("overwrite", [False, True])
def test_out_that_is_a_file_is_refused(tmp_path, name, overwrite):
    a_file = tmp_path / "results.json"
    a_file.write_text("mine")
    with pytest.raises(SelfsupError, match="is a file"):
        check_output_folder(a_file, KINDS[name], overwrite=overwrite)
    with pytest.raises(SelfsupError, match="which is a file"):  # a folder below a file
        check_output_folder(a_file / "out", KINDS[name], overwrite=overwrite)
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("name", KINDS)
def test_own_output_needs_overwrite_and_new_or_empty_folders_pass(tmp_path, name):
    kind = KINDS[name]
    own = _write(tmp_path / "own", OWN[name])
    with pytest.raises(SelfsupError, match="--overwrite") as err:
        check_output_folder(own, kind, overwrite=False)
    assert kind.name in _one_line(err.value)
    assert check_output_folder(own, kind, overwrite=True) == own
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "stale-lock", {LOCK: "123"})  # a killed run's lock file alone does not count
    for folder in (tmp_path / "new" / "deeper", tmp_path / "empty", tmp_path / "stale-lock"):
        assert check_output_folder(folder, kind, overwrite=False) == folder
    assert not (tmp_path / "new").exists()  # checking writes nothing


@pytest.mark.parametrize("name", KINDS)
def test_clear_removes_only_the_kinds_entries(tmp_path, name):
    kind = KINDS[name]
    own = _write(tmp_path / "own", OWN[name] | {"notes.txt": "mine", "mine/data.csv": "1,2\n"})
    removed = clear_output_folder(own, kind)
    assert removed
    assert _snapshot(own) == {"mine": None, "mine/data.csv": b"1,2\n", "notes.txt": b"mine"}


@pytest.mark.parametrize(
    ("name", "nested"), [("run", "eval"), ("leaderboard", "runs/iris-simclr-0"), ("evaluation", "0-a.csv")]
)
def test_a_users_file_inside_a_nested_output_stays(tmp_path, name, nested):
    own = _write(tmp_path / "own", OWN[name] | {f"{nested}/keep.txt": "mine", "runs/mine/keep.txt": "mine too"})
    clear_output_folder(own, KINDS[name])
    left = _snapshot(own)
    assert left[f"{nested}/keep.txt"] == b"mine" and left["runs/mine/keep.txt"] == b"mine too"
    assert {Path(p).name for p in left if left[p] is not None} == {"keep.txt"}


def test_a_folder_of_another_kind_is_named():
    with tempfile.TemporaryDirectory() as root:
        run = _write(Path(root), OWN["run"])
        with pytest.raises(SelfsupError, match="holds a pre-training run, not an evaluation report"):
            check_output_folder(run, EVALUATION, overwrite=True)
        with pytest.raises(SelfsupError, match="nothing was removed"):
            clear_output_folder(run, COMPARISON)
        assert (run / "checkpoints" / "last.ckpt").is_file()


def test_a_paired_runs_side_folders_are_its_own():
    kind: OutputKind = RUN
    with tempfile.TemporaryDirectory() as root:
        meta = {
            "format": "selfsup-encoder",
            "modality": "pairs",
            "encoder": {"a": {"modality": "audio"}, "b": {"modality": "text"}},
        }
        run = _write(
            Path(root),
            {"selfsup.json": meta, "audio/selfsup.json": "{}", "text/selfsup.json": "{}", "video/notes.txt": "mine"},
        )
        assert {p.name for p in kind.written(run)} == {"selfsup.json", "audio", "text"}
        clear_output_folder(run, kind)
        assert _snapshot(run) == {"video": None, "video/notes.txt": b"mine"}


# --------------------------------------------------------------------------- unwritable folders

_AS_ANOTHER_USER = textwrap.dedent("""
    import os, sys
    from selfsup.errors import SelfsupError
    from selfsup.outputs import EVALUATION, check_output_file, check_output_folder
    if os.getuid() == 0:
        os.setgid(65534)
        os.setuid(65534)  # root writes anywhere: drop to nobody
    for check in (lambda: check_output_folder(sys.argv[1], EVALUATION, overwrite=False),
                  lambda: check_output_file(sys.argv[1] + ".npy", "embeddings", lambda p: True, overwrite=False)):
        try:
            check()
        except SelfsupError as err:
            print(err)
        else:
            print("no error")
""")


def test_an_unwritable_folder_is_refused_before_any_work():
    root = Path(tempfile.mkdtemp())
    try:
        locked = root / "locked"
        locked.mkdir()
        os.chmod(root, 0o755)  # others may look, not write
        os.chmod(locked, 0o555)
        out = subprocess.run(
            [sys.executable, "-c", _AS_ANOTHER_USER, str(locked / "eval")], capture_output=True, text=True, timeout=60
        )
        lines = out.stdout.strip().splitlines()
        assert out.returncode == 0 and len(lines) == 2, out.stderr
        for line in lines:
            assert line.startswith(f"cannot write to '{locked}'") and "you can write to" in line, line
        assert list(locked.iterdir()) == []
    finally:
        os.chmod(root / "locked", 0o755)
        for path in sorted(root.rglob("*"), reverse=True):
            path.rmdir()
        root.rmdir()


# --------------------------------------------------------------------------- files (embeddings)


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_files(tmp_path, overwrite):
    ours = lambda path: path.read_bytes() == b"ours"
    user, mine = tmp_path / "user.npy", tmp_path / "mine.npy"
    user.write_bytes(b"precious")
    mine.write_bytes(b"ours")
    with pytest.raises(SelfsupError, match="did not write") as err:
        check_output_file(user, "embeddings", ours, overwrite=overwrite)
    assert "--overwrite" not in _one_line(err.value) and user.read_bytes() == b"precious"
    with pytest.raises(SelfsupError, match="is a folder"):
        check_output_file(tmp_path, "embeddings", ours, overwrite=overwrite)
    if overwrite:
        assert check_output_file(mine, "embeddings", ours, overwrite=True) == mine
    else:
        with pytest.raises(SelfsupError, match="--overwrite"):
            check_output_file(mine, "embeddings", ours, overwrite=False)
    assert check_output_file(tmp_path / "new" / "x.npy", "embeddings", ours, overwrite=overwrite)
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- one holder at a time

_HOLDER = textwrap.dedent("""
    import sys, time
    from selfsup.outputs import folder_lock
    with folder_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


def test_the_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SelfsupError) as err, folder_lock(out):
            pass
        message = _one_line(err.value)
        assert f"in use by process {holder.pid}" in message and str(out) in message
        assert (out / LOCK).read_text() == str(holder.pid)  # the refused one left the holder's lock alone
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
    assert holder.returncode == -signal.SIGKILL
    with folder_lock(out):  # the killed holder's lock went with it (its file stays, held by no one)
        assert (out / LOCK).read_text() == str(os.getpid())
    assert list(out.iterdir()) == []  # the lock file goes on the way out


def test_the_lock_removes_only_the_folders_it_created(tmp_path):
    with folder_lock(tmp_path / "a" / "b" / "c") as out:
        assert out.is_dir() and (out / LOCK).is_file()
    assert list(tmp_path.iterdir()) == []
    with folder_lock(tmp_path / "a" / "b") as out:
        (out / "results.json").write_text("{}")
    assert _snapshot(tmp_path) == {"a": None, "a/b": None, "a/b/results.json": b"{}"}
    (tmp_path / "kept").mkdir()
    with folder_lock(tmp_path / "kept"):
        pass
    assert (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []


def test_move_outputs_refuses_a_users_file_before_moving_anything_and_replaces_its_own(tmp_path) -> None:
    import json

    from selfsup.errors import SelfsupError
    from selfsup.outputs import CURATION, move_outputs

    staged, out = tmp_path / "staged", tmp_path / "out"
    (staged / "subset" / "0").mkdir(parents=True)
    (staged / "subset" / "0" / "a.png").write_text("new")
    (staged / "selection.csv").write_text("new")
    (staged / "curation.json").write_text(json.dumps({"strategy": "random", "budget": 0.5, "selected": 1}))
    (out / "subset" / "0").mkdir(parents=True)
    (out / "subset" / "0" / "a.png").write_text("old")  # inside a folder an earlier curation wrote
    (out / "selection.csv").write_text("mine")  # no earlier curation: the user's
    with pytest.raises(SelfsupError, match="holds 'selection.csv', which selfsup did not write"):
        move_outputs(staged, out)
    assert (out / "selection.csv").read_text() == "mine" and (staged / "subset" / "0" / "a.png").is_file()
    # an earlier curation there: its files (nested ones too) are replaced, the marker moves last
    (out / "curation.json").write_text(json.dumps({"strategy": "coreset", "budget": 0.2, "selected": 3}))
    (out / "notes.txt").write_text("mine")
    moved = move_outputs(staged, out, CURATION, last="curation.json")
    assert moved[-1] == "curation.json" and set(moved) == {"curation.json", "selection.csv", "subset/0/a.png"}
    assert (out / "subset" / "0" / "a.png").read_text() == "new" and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "curation.json").read_text())["strategy"] == "random"


_STAGER = textwrap.dedent("""
    import sys, time
    from selfsup.outputs import folder_lock, staging
    with folder_lock(sys.argv[1]) as out, staging(out) as staged:
        (staged / "student").mkdir()
        (staged / "student" / "encoder.safetensors").write_bytes(b"half")
        print("staged", flush=True)
        time.sleep(120)
""")


def test_a_killed_runs_staging_folder_is_cleared_by_the_next_run_and_nothing_else(tmp_path) -> None:
    from selfsup.outputs import STAGING, move_outputs, staging

    out = tmp_path / "out"
    stager = subprocess.Popen([sys.executable, "-c", _STAGER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert stager.stdout.readline().strip() == "staged"
    finally:
        stager.send_signal(signal.SIGKILL)
        stager.wait(timeout=30)
        stager.stdout.close()
    assert stager.returncode == -signal.SIGKILL
    (stale,) = out.glob(STAGING + "*")
    assert (stale / "student" / "encoder.safetensors").read_bytes() == b"half"
    assert check_output_folder(out, SELFTRAIN, overwrite=False) == out  # still a new folder: no output in it
    (out.parent / "mine").mkdir()  # a user's folder beside it, and one inside named like nothing of ours
    (out / "notes").mkdir()
    with folder_lock(out), staging(out) as staged:
        assert not stale.exists() and staged.parent == out
        (staged / "selftrain.json").write_text("{}")
        assert move_outputs(staged, out, last="selftrain.json") == ["selftrain.json"]
    assert sorted(p.name for p in out.iterdir()) == ["notes", "selftrain.json"]
    assert (out.parent / "mine").is_dir()


def test_staging_needs_the_folder_lock(tmp_path) -> None:
    from selfsup.outputs import staging

    with pytest.raises(RuntimeError, match="needs this process to hold folder_lock"), staging(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []
