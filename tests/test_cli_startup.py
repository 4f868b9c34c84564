"""The command line reports a bad path, method or flag before torch is imported (so in a fraction of a second).

Each case runs the CLI in a fresh interpreter and checks the exit code, the one error line and that ``torch`` never
entered ``sys.modules``. No timing threshold: machines are noisy; the import is what costs seconds.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from selfsup.cli import EXIT_USER_ERROR

SCRIPT = (
    "import sys; from selfsup.cli import main; code = main(sys.argv[1:]); print('torch' in sys.modules); sys.exit(code)"
)


def _run(argv: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["pretrain", "--data", "no-such-folder", "--out", "out"], "'no-such-folder' does not exist"),
        (["pretrain", "--data", "builtin:digitz", "--out", "out"], "Did you mean 'digits'?"),
        (["pretrain", "--data", ".", "--method", "simclrr", "--out", "out"], "Did you mean 'simclr'?"),
        (["pretrain", "--data", ".", "--pair-data", "no-captions", "--method", "clip"], "'no-captions' does not exist"),
        (["pretrain", "--data", ".", "--weight-decy", "0.1"], "Did you mean '--weight-decay'?"),
        (["pretrain", "--data", ".", "--epochs", "many"], "invalid int value: 'many'"),
        (["unlearn", "--model", "m", "--data", ".", "--forget", "f.csv", "--method", "npoo", "--out", "o"], "'npo'?"),
        (["unlearn", "--model", "m", "--data", ".", "--forget", "no-such.csv", "--out", "o"], "'no-such.csv' does not"),
        (["unlearn", "--model", "m", "--data", ".", "--forget", "f.csv", "--stop", "step", "--out", "o"], "'steps'?"),
    ],
)
def test_bad_input_is_one_line_before_torch_is_imported(tmp_path, argv, said):
    proc = _run(argv, tmp_path)
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("selfsup: error: ") and "\n" not in err, err
    assert said in err
    assert proc.stdout.strip() == "False"  # torch was never imported
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_print_config_needs_no_torch(tmp_path):
    proc = _run(["pretrain", "--data", "builtin:digits", "--print-config"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "data: builtin:digits" and proc.stdout.splitlines()[-1] == "False"
    assert list(tmp_path.iterdir()) == []


def test_python_dash_m_and_version():
    from selfsup import __version__

    proc = subprocess.run([sys.executable, "-m", "selfsup", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"selfsup {__version__}"


def test_builtin_names_are_the_builtin_datasets():
    from selfsup.datasets import BUILTIN_NAMES, builtin_datasets

    assert tuple(builtin_datasets()) == BUILTIN_NAMES


def test_method_names_are_the_registry():
    from selfsup.methods import METHOD_MODULES, METHODS

    assert sorted(METHODS) == sorted(METHOD_MODULES)
    for name, cls in METHODS.items():
        assert cls.__module__ == METHOD_MODULES[name]
