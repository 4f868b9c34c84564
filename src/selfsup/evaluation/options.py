"""How ``evaluate`` evaluates: the test split, the protocols, the seeds, the baselines, zero-shot's text partner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from selfsup.data import DataOptions
from selfsup.distributed import inference_device
from selfsup.encoders import Encoder
from selfsup.errors import SelfsupError
from selfsup.evaluation.finetune import FinetuneOptions
from selfsup.evaluation.protocols import ALL_PROTOCOLS, MODEL_PROTOCOLS, PREDICTORS, check_protocols
from selfsup.evaluation.zeroshot import templates_of


@dataclass(frozen=True)
class EvaluationOptions:
    """Everything about how to evaluate; checked when made, so a bad value fails before any work.

    ``test_data``: a labeled source to test on (default: the data's own test split, else a stratified
    ``test_fraction`` split fixed by the seed). ``read``: how to read the data (e.g. a table's label column).
    ``protocols``: names from ``ALL_PROTOCOLS`` and ``MODEL_PROTOCOLS`` (None: kNN and linear, plus zeroshot when
    the encoder has a text partner). ``k``: kNN's k, or "cv" to choose it by cross-validation on the training
    split. ``seeds`` > 1 repeats everything seeded for seeds ``seed .. seed + seeds - 1``. ``finetune``: the
    fine-tuning settings (None: the defaults). ``baselines=False`` probes the encoder alone (no random-init,
    raw-input or gbdt rows). ``partner``: zero-shot's text encoder (default: the one a paired run's export names),
    ``prompt`` its label template or templates (several: CLIP's prompt ensembling; None: the default of the
    encoder's modality, ``evaluation.zeroshot``). ``tasks``: also cut the classes into this many tasks (consecutive groups in label
    order) and run each single-row probe (knn, linear, mlp, ncm) per task, on that task's classes only
    (``evaluation.tasks``). ``accelerator`` and ``devices`` (Lightning's names) choose the one device the encoders
    embed on (``distributed.inference_device``; auto: a GPU when there is one), ``precision`` ``bf16-mixed`` embeds
    under autocast; the probes run on the CPU.
    """

    test_data: str | None = None
    read: DataOptions | None = None
    protocols: tuple[str, ...] | None = None
    k: int | str = "cv"
    seed: int = 0
    seeds: int = 1
    test_fraction: float = 0.25
    finetune: FinetuneOptions | None = None
    progress: bool = False
    baselines: bool = True
    partner: Encoder | str | Path | None = None
    prompt: str | tuple[str, ...] | None = None
    tasks: int | None = None
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str | None = None

    @property
    def device(self) -> torch.device:
        """Where the encoders embed."""
        return inference_device(self.accelerator, self.devices)

    def __post_init__(self) -> None:
        self.device  # noqa: B018  # a device this machine lacks, or several: refused before any work
        if self.precision not in (None, "32", "32-true", "bf16-mixed", "16-mixed"):
            raise SelfsupError(f"--precision {self.precision}: embedding takes 32, bf16-mixed or 16-mixed.")
        if self.protocols is not None:  # a list (or one name) given at run time is kept as a tuple
            protocols = (self.protocols,) if isinstance(self.protocols, str) else tuple(self.protocols)
            object.__setattr__(self, "protocols", protocols)
        check_protocols(self.protocols or (), ALL_PROTOCOLS + MODEL_PROTOCOLS)
        if self.seeds < 1:
            raise SelfsupError(f"--seeds must be at least 1, got {self.seeds}.")
        if self.prompt is not None:  # a list given at run time is kept as a tuple; a bad template fails here
            object.__setattr__(self, "prompt", templates_of(self.prompt))
        if self.partner is not None and self.protocols is not None and "zeroshot" not in self.protocols:
            raise SelfsupError("--partner is the text encoder for zero-shot rows; add zeroshot to --protocol.")
        if self.tasks is not None and self.tasks < 2:
            raise SelfsupError(f"--tasks must be at least 2 (a split of the classes into tasks), got {self.tasks}.")
        if self.tasks is not None and self.protocols is not None and not set(self.protocols) & set(PREDICTORS):
            raise SelfsupError(
                f"--tasks runs the {', '.join(PREDICTORS)} probes per task; add one of them to --protocol."
            )
