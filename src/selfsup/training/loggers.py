"""Where a run's metrics go (Lightning's own loggers), and the run's plain-text ``train.log``."""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from selfsup.errors import first_line, locate
from selfsup.files import write_atomic
from selfsup.training.progress import PlainProgress

LOGGER_IDS = "loggers.json"  # the MLflow run and W&B run a run logs to, so that a resume goes on logging there
TRAIN_LOG = "train.log"
EXTRA = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}  # logger -> (module, selfsup extra)


def _check_installed(name: str) -> None:
    module, extra = EXTRA[name]
    locate(module, extra, f"--logger {name}")  # located, not imported: importing it takes seconds


def _saved_ids(out: Path) -> dict[str, str]:
    try:
        return dict(json.loads((out / LOGGER_IDS).read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def build_loggers(names: str, out: Path) -> list[Logger]:
    """Lightning loggers for ``names`` (``Recipe.logger``: csv always first, the loss curve is read from it).

    MLflow logs to its local file store in ``OUT/mlruns`` (setting ``MLFLOW_ALLOW_FILE_STORE``, which MLflow 3 asks
    for) unless ``MLFLOW_TRACKING_URI`` names another store; W&B runs
    offline in ``OUT/wandb`` (``wandb sync`` uploads it later) unless ``WANDB_MODE=online``. A resumed run logs to
    the MLflow run it started, in the store it started it in, and to the same W&B run online (offline, wandb starts
    a new run of the same id); ``OUT/loggers.json`` holds the ids.
    """
    chosen = names.split(",")
    for name in chosen:
        if name in EXTRA:
            _check_installed(name)
    ids = _saved_ids(out)
    loggers: list[Logger] = [CSVLogger(out, name="csv", version="")]
    if "tensorboard" in chosen:
        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    if "mlflow" in chosen:
        own = (out / "mlruns").resolve().as_uri()
        uri = ids.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI") or own  # a resume: where its run is
        if uri == own:  # MLflow's own file store: it asks for this flag now that it prefers a database server
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        loggers.append(
            MLFlowLogger(experiment_name="selfsup", run_name=out.name, tracking_uri=uri, run_id=ids.get("mlflow"))
        )
    if "wandb" in chosen:
        online = os.environ.get("WANDB_MODE") == "online"
        run_id = ids.get("wandb") or uuid.uuid4().hex[:8]
        # offline, wandb cannot resume: there a resume is a new offline run of the same id
        resume = "allow" if online else None
        loggers.append(
            WandbLogger(
                project="selfsup", name=out.name, save_dir=str(out), offline=not online, id=run_id, resume=resume
            )
        )
    return loggers


class LoggerIds(L.Callback):
    """At the start of training (rank 0): the recipe as the MLflow and W&B runs' parameters (an MLflow run keeps
    its first ones: they cannot change), and the runs' ids and MLflow's store in ``OUT/loggers.json``."""

    def __init__(self, out: Path, recipe: dict[str, Any]) -> None:
        self.out, self.recipe = out, recipe

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        ids: dict[str, str] = {}
        saved = _saved_ids(self.out)
        params = {
            key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in self.recipe.items()
        }
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                ids |= {"mlflow": str(logger.run_id), "mlflow_uri": str(logger._tracking_uri)}
                if "mlflow" not in saved:  # a resume keeps the first ones: MLflow's parameters cannot change
                    logger.log_hyperparams(params)
            elif isinstance(logger, WandbLogger):
                ids["wandb"] = str(logger.version)
                logger.log_hyperparams(params)  # W&B's config may change (and an offline resume is a new run)
        if ids:
            write_atomic(self.out / LOGGER_IDS, json.dumps(ids, indent=1))


class TrainLog(PlainProgress):
    """``OUT/train.log`` (rank 0, appended to by every resume): when training starts and at which step, the
    progress lines of :class:`PlainProgress`, every warning raised while training, and how it ended (finished,
    or the error that stopped it)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file: TextIO | None = None
        self._show: Any = None

    def _line(self, text: str) -> None:
        if self._file is not None:
            self._file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            self._file.flush()

    def _print(self, text: str) -> None:
        self._line(text)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._file = self.path.open("a", encoding="utf-8")
        self._show = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            text = str(message).strip()
            self._line(f"warning: {text.splitlines()[0] if text else category.__name__}")
            self._show(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        super().on_train_start(trainer, pl_module)

    def _close(self, text: str) -> None:
        if self._file is None:
            return
        self._line(text)
        self._file.close()
        self._file = None
        warnings.showwarning = self._show

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._close(f"training ended at step {trainer.global_step}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        reason = first_line(exception) or type(exception).__name__
        self._close(f"training stopped at step {trainer.global_step}: {reason}")
