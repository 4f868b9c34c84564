"""A process's global rank is Lightning's, read before training (``training/launch.py``), under each launcher; the
flags Lightning cannot honour, a multi-node run nobody launched and sharded strategies are refused in one line;
the several-process check sees shared samples and shared random states."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only

from selfsup.errors import SelfsupError
from selfsup.recipe import make_recipe
from selfsup.training.launch import launch, process_summary, sample_digests

LAUNCH_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "SLURM_NTASKS",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_NNODES",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NODEID",
    "SLURM_JOB_NAME",
    "SLURM_NODELIST",
)


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No launcher's variables; Lightning's process-wide rank-zero setting restored afterwards (a Trainer built
    for rank 3 sets it to 3, which would silence rank-zero warnings in later tests)."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    saved = rank_zero_only.rank, utils_rank_zero_only.rank
    yield monkeypatch
    rank_zero_only.rank, utils_rank_zero_only.rank = saved


def _recipe(**fields):
    return make_recipe(data="builtin:digits", accelerator="cpu", **fields)


def test_one_process_is_rank_zero(bare_env) -> None:
    assert launch(_recipe()) == launch(_recipe(devices=1, num_nodes=1))
    assert (launch(_recipe()).global_rank, launch(_recipe()).world_size) == (0, 1)


def test_lightnings_own_launcher_before_it_starts_the_other_processes(bare_env) -> None:
    """The command as typed (no LOCAL_RANK): the launcher, rank 0 of a 2-device run."""
    launched = launch(_recipe(devices=2, strategy="ddp"))
    assert (launched.global_rank, launched.world_size) == (0, 2)


def test_torchrun_rank_is_its_global_rank(bare_env) -> None:
    """torchrun --nnodes 2 --nproc-per-node 2: the second process of the second node is rank 3; adding LOCAL_RANK
    and NODE_RANK (what selfsup did before) gives 1, and would let it write the run folder beside rank 1."""
    bare_env.setenv("TORCHELASTIC_RUN_ID", "run")
    for name, value in dict(
        RANK=3, LOCAL_RANK=1, GROUP_RANK=1, WORLD_SIZE=4, LOCAL_WORLD_SIZE=2, MASTER_ADDR="node0", MASTER_PORT=29500
    ).items():
        bare_env.setenv(name, str(value))
    launched = launch(_recipe(devices=2, num_nodes=2, strategy="ddp"))
    assert (launched.global_rank, launched.world_size) == (3, 4)


def test_lightning_launched_process_on_the_second_node(bare_env) -> None:
    """Lightning's own multi-node launch: node 1's second process is rank 1 * 2 + 1 = 3 (was 1 + 1 = 2)."""
    for name, value in dict(NODE_RANK=1, LOCAL_RANK=1, MASTER_ADDR="node0", MASTER_PORT=29500, WORLD_SIZE=4).items():
        bare_env.setenv(name, str(value))
    launched = launch(_recipe(devices=2, num_nodes=2, strategy="ddp"))
    assert (launched.global_rank, launched.world_size) == (3, 4)


def test_slurm_rank_is_its_procid(bare_env) -> None:
    for name, value in dict(
        SLURM_NTASKS=4,
        SLURM_NTASKS_PER_NODE=2,
        SLURM_NNODES=2,
        SLURM_PROCID=2,
        SLURM_LOCALID=0,
        SLURM_NODEID=1,
        SLURM_JOB_NAME="pretrain",
        SLURM_NODELIST="node[0-1]",
    ).items():
        bare_env.setenv(name, str(value))
    launched = launch(_recipe(devices=2, num_nodes=2, strategy="ddp"))
    assert (launched.global_rank, launched.world_size) == (2, 4)
    with pytest.raises(SelfsupError, match="ntasks-per-node=2") as err:  # SLURM's tasks per node are the devices
        launch(_recipe(devices=4, num_nodes=2, strategy="ddp"))
    assert "\n" not in str(err.value)


def test_devices_that_do_not_match_what_torchrun_started_are_refused(bare_env) -> None:
    bare_env.setenv("TORCHELASTIC_RUN_ID", "run")
    for name, value in dict(RANK=1, LOCAL_RANK=1, GROUP_RANK=0, WORLD_SIZE=4, LOCAL_WORLD_SIZE=4).items():
        bare_env.setenv(name, str(value))
    for devices in (2, 1):  # one device: Lightning would train 4 separate runs into one folder
        with pytest.raises(SelfsupError, match=r"does not match the world size \(4\)"):
            launch(_recipe(devices=devices))


def test_several_nodes_need_a_launcher(bare_env) -> None:
    with pytest.raises(SelfsupError, match="--num-nodes 2 needs a launcher") as err:
        launch(_recipe(num_nodes=2))
    assert "\n" not in str(err.value) and "docs/scale.md" in str(err.value)
    bare_env.setenv("NODE_RANK", "1")
    with pytest.raises(SelfsupError, match="needs a launcher"):  # node 1 without node 0's address
        launch(_recipe(num_nodes=2))
    bare_env.setenv("MASTER_ADDR", "node0")  # Lightning's own launch on node 1: its launcher process is rank 1 * 1 + 0
    assert launch(_recipe(num_nodes=2)).global_rank == 1
    bare_env.setenv("NODE_RANK", "0")  # node 0 needs no address (Lightning's docs): rank 0
    bare_env.delenv("MASTER_ADDR")
    assert launch(_recipe(num_nodes=2)).global_rank == 0


@pytest.mark.parametrize("strategy", ["fsdp", "FSDP", "fsdp_cpu_offload", "deepspeed_stage_3"])
def test_sharded_strategies_are_refused(bare_env, strategy: str) -> None:
    with pytest.raises(SelfsupError, match=f"--strategy {strategy} is not supported") as err:
        launch(_recipe(devices=2, strategy=strategy))
    assert "\n" not in str(err.value)


def test_the_check_reports_shared_samples_and_random_states() -> None:
    line, ok = process_summary([[1, 2, 3], [4, 5, 6]], [10, 11])
    assert ok and "2 processes" in line and "share no sample" in line and "own random state" in line
    line, ok = process_summary([[1, 2, 3], [3, 4, 1]], [10, 11])  # two samples in both first batches
    assert not ok and "4 of the 6 samples" in line and "random state" not in line
    line, ok = process_summary([[1, 2], [3, 4], [5, 6], [7, 8]], [10, 10, 11, 11])
    assert not ok and "4 of the 4 processes draw their views from the same random state" in line
    line, ok = process_summary([[1], [2], [3]], [10, 11, 10])
    assert not ok and "2 of the 3 processes" in line


def test_sample_digests_tell_samples_apart() -> None:
    x = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    digests = sample_digests(x)
    assert len(set(digests)) == 4
    assert sample_digests(x[[2, 0]]) == [digests[2], digests[0]]  # a sample's digest is its own, wherever it is
    assert sample_digests(x.to(torch.bfloat16))[1] != digests[1]  # any dtype, not equal across dtypes
    pairs = sample_digests((x, x.flip(0)))  # a paired sample: both of its parts
    assert len(set(pairs)) == 4 and pairs != digests
    assert sample_digests({"tokens": x.long()}) == sample_digests([x.long()])
