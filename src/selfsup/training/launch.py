"""Which process of a run this is, as Lightning sees it, before anything is read or written.

Lightning gives each process its global rank from the cluster environment it detects: torchrun (``RANK``,
``WORLD_SIZE``), SLURM (``SLURM_PROCID``), or its own launcher, which re-runs the command once per device with
``LOCAL_RANK`` and ``NODE_RANK`` set. A run needs that rank before its training ``Trainer`` exists (only rank 0
checks, locks and writes the run folder), so it asks a ``Trainer`` built with the run's device flags: the same
connector picks the same environment and sets the same ranks (``Strategy.set_world_ranks``), and the
environment's own ``validate_settings`` (devices x nodes against what torchrun or SLURM started) runs at once
instead of after the data is read. No rank arithmetic of selfsup's own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import LightningEnvironment, TorchElasticEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException

from selfsup.distributed import check_accelerator
from selfsup.errors import SelfsupError, first_line
from selfsup.recipe import Recipe

# strategies whose checkpoints are sharded (a folder per process): selfsup's resume and export read one file
SHARDED = ("fsdp", "deepspeed")


@dataclass(frozen=True)
class Launch:
    """This process's place in the run: its global rank (0: the one that writes) and how many processes train."""

    global_rank: int
    world_size: int


def check_strategy(strategy: str) -> None:
    """Refuse the sharded strategies in one line: their checkpoints cannot be resumed or exported yet."""
    if strategy.lower().startswith(SHARDED):
        raise SelfsupError(
            f"--strategy {strategy} is not supported: its sharded checkpoints cannot be resumed or exported by "
            "selfsup yet; use --strategy ddp (every device holds the whole model)."
        )


def lightning_trainer(recipe: Recipe, **options: Any) -> L.Trainer:
    """``L.Trainer`` with the recipe's accelerator, devices, nodes, strategy and precision (and ``options``); a
    device, strategy or precision Lightning cannot use is a :class:`SelfsupError`."""
    for name in ("lightning.pytorch", "lightning.fabric"):  # device banners and tips: not for our users
        logging.getLogger(name).setLevel(logging.WARNING)
    check_strategy(recipe.strategy)
    check_accelerator(recipe.accelerator)
    try:
        return L.Trainer(
            accelerator=recipe.accelerator,
            devices=recipe.devices,
            num_nodes=recipe.num_nodes,
            strategy=recipe.strategy,
            precision=recipe.precision,  # type: ignore[arg-type]  # a str: Lightning checks the value itself
            **options,
        )
    except (MisconfigurationException, ValueError, RuntimeError) as err:
        raise _device_error(recipe, err) from None


def _device_error(recipe: Recipe, err: Exception) -> SelfsupError:
    nodes = f" --num-nodes {recipe.num_nodes}" if recipe.num_nodes > 1 else ""
    return SelfsupError(
        f"cannot train with --accelerator {recipe.accelerator} --devices {recipe.devices}{nodes} "
        f"--strategy {recipe.strategy} --precision {recipe.precision}: {first_line(err)}"
    )


def launch(recipe: Recipe) -> Launch:
    """This process's global rank and the run's world size, as Lightning will train it; refuses, in one line,
    ``--num-nodes`` above 1 that no launcher started (each node would wait for the others for ever) and devices or
    nodes that do not match the processes torchrun or SLURM started."""
    trainer = lightning_trainer(
        recipe, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None and TorchElasticEnvironment.detect():  # one device: Lightning looks for no environment,
        environment = TorchElasticEnvironment()  # but torchrun may have started several processes of this command
    # Lightning's own launch: NODE_RANK on every node, and the address of node 0 on the others
    node = os.environ.get("NODE_RANK")
    unlaunched = node is None or (node != "0" and "MASTER_ADDR" not in os.environ)
    if recipe.num_nodes > 1 and isinstance(environment, LightningEnvironment) and unlaunched:
        raise SelfsupError(
            f"--num-nodes {recipe.num_nodes} needs a launcher that starts the run on every node: torchrun, "
            "SLURM's srun, or Lightning's own (NODE_RANK on each node, MASTER_ADDR and MASTER_PORT of node 0; see "
            "docs/scale.md); on this machine alone, use --num-nodes 1."
        )
    if environment is not None:
        try:
            environment.validate_settings(num_devices=trainer.num_devices, num_nodes=trainer.num_nodes)
        except (MisconfigurationException, ValueError) as err:
            raise _device_error(recipe, err) from None
    return Launch(trainer.global_rank, trainer.world_size)


class ProcessCheck(L.Callback):
    """With several processes, at the first step of each fit: do they train on their own samples, and draw their
    views from their own random states? Every process fingerprints the samples of its first batch and its random
    state; rank 0 writes one line to ``train.log`` (and, ``show``, stderr) saying so, or warns when processes share samples
    (a dataset not split between them: each would train on the same data) or random states (the same
    augmentations on every process). One all-gather of a batch's worth of 8-byte digests; nothing with one process.
    """

    def __init__(self, log: Path, show: bool = True) -> None:
        self.path, self.show = log, show
        self._checked = False

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._checked or trainer.world_size < 2:
            return
        self._checked = True
        mine = (sample_digests(batch[0]), random_state_digest(pl_module.device))
        gathered: list[Any] = [None] * trainer.world_size  # objects: the batches may differ in size (a last one)
        torch.distributed.all_gather_object(gathered, mine)
        all_samples, all_states = [part[0] for part in gathered], [part[1] for part in gathered]
        if not trainer.is_global_zero:
            return
        line, ok = process_summary(all_samples, all_states)
        if not ok:
            warnings.warn(line, stacklevel=2)
            return
        if self.show:
            print(line, file=sys.stderr)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def _leaves(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for value in x.values() for t in _leaves(value)]
    if isinstance(x, (list, tuple)):
        return [t for value in x for t in _leaves(value)]
    return []


def sample_digests(x: Any) -> list[int]:
    """One 8-byte digest (a signed int) per sample of a batch: of the bytes of its tensors (a tensor, or the
    tensors of a tuple or dict of them, batched along their first dimension)."""
    leaves = [t.detach().cpu().contiguous() for t in _leaves(x)]
    digests = []
    for i in range(len(leaves[0]) if leaves else 0):
        h = hashlib.blake2b(digest_size=8)
        for t in leaves:
            h.update(t[i].reshape(-1).view(torch.uint8).numpy().tobytes())
        digests.append(int.from_bytes(h.digest(), "little", signed=True))
    return digests


def random_state_digest(device: torch.device) -> int:
    """An 8-byte digest of the random state the views draw from: torch's CPU generator, and the device's when the
    batch is on a GPU."""
    h = hashlib.blake2b(torch.random.get_rng_state().numpy().tobytes(), digest_size=8)
    if device.type == "cuda":
        h.update(torch.cuda.get_rng_state(device).numpy().tobytes())
    return int.from_bytes(h.digest(), "little", signed=True)


def process_summary(samples: list[list[int]], states: list[int]) -> tuple[str, bool]:
    """The line :class:`ProcessCheck` writes, from every process's sample digests and random-state digest, and
    whether all is well (no sample in two processes' first batches, no two processes with one random state)."""
    n, total = len(samples), sum(len(part) for part in samples)
    seen: dict[int, set[int]] = {}
    for rank, part in enumerate(samples):
        for digest in part:
            seen.setdefault(digest, set()).add(rank)
    shared = sum(1 for part in samples for digest in part if len(seen[digest]) > 1)
    same_state = sum(1 for state in states if states.count(state) > 1)
    problems = []
    if shared:
        problems.append(
            f"{shared} of the {total} samples of the {n} processes' first batches are in more than one of them "
            "(each process should train on its own part of the data)"
        )
    if same_state:
        problems.append(f"{same_state} of the {n} processes draw their views from the same random state as another")
    if problems:
        return "; ".join(problems), False
    return (
        f"{n} processes: their first batches ({total} samples) share no sample, and each draws its views from its "
        "own random state",
        True,
    )
