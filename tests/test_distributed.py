"""Two-process (gloo, CPU) check of the gathered losses against single-process full-batch runs.

Gradient rule checked here: ``gather_with_grad`` sums every rank's gradient into the slice
owner's gradient, so with ``mean_r L_r == L_full`` the gradient rank r computes for its local
inputs is ``W * dL_full/dz_r``, and DDP's average of parameter gradients equals ``dL_full/dtheta``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from selfsup.distributed import all_reduce_mean, gather_with_grad, world
from selfsup.losses import (
    barlow_twins_loss,
    info_nce_loss,
    nt_xent_loss,
    sinkhorn_knopp,
    update_center,
    vicreg_loss,
)

WORLD, B, D, D_IN = 2, 4, 8, 6
LOSSES = {
    "nt_xent": nt_xent_loss,
    "info_nce": info_nce_loss,
    "barlow_twins": barlow_twins_loss,
    "vicreg": vicreg_loss,
}


def _global_data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = WORLD * B
    return {
        "z1": torch.randn(n, D, generator=g, dtype=torch.float64),
        "z2": torch.randn(n, D, generator=g, dtype=torch.float64),
        "x": torch.randn(2 * n, D_IN, generator=g, dtype=torch.float64),  # view 1 rows, view 2 rows
        "teacher": torch.randn(2, n, D, generator=g, dtype=torch.float64),
    }


def _model() -> torch.nn.Module:
    torch.manual_seed(123)
    return torch.nn.Linear(D_IN, D).double()


def _views(x: torch.Tensor, rows: slice) -> torch.Tensor:
    n = WORLD * B
    return torch.cat([x[:n][rows], x[n:][rows]])  # (2 * len(rows), D_IN): view 1 then view 2


def _run(name: str, model: torch.nn.Module, data: dict[str, torch.Tensor], rows: slice) -> dict:
    """Loss, input gradients and parameter gradients on the given rows."""
    z1 = data["z1"][rows].clone().requires_grad_()
    z2 = data["z2"][rows].clone().requires_grad_()
    loss = LOSSES[name](z1, z2)
    loss.backward()
    out = model(_views(data["x"], rows))
    half = out.shape[0] // 2
    LOSSES[name](out[:half], out[half:]).backward()
    weight = model.module.weight if isinstance(model, DistributedDataParallel) else model.weight
    return {"loss": loss.detach(), "g1": z1.grad, "g2": z2.grad, "gw": weight.grad.clone()}


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        data = _global_data()
        rows = slice(rank * B, (rank + 1) * B)
        result: dict = {"world": world(), "gathered": gather_with_grad(data["z1"][rows])}
        for name in LOSSES:
            result[name] = _run(name, DistributedDataParallel(_model()), data, rows)
        center = torch.ones(1, D, dtype=torch.float64)
        result["center"] = update_center(center, list(data["teacher"][:, rows]), momentum=0.9)
        result["mean"] = all_reduce_mean(torch.tensor([float(rank)]))
        result["sinkhorn"] = sinkhorn_knopp(data["teacher"][0][rows], 0.5, iterations=3)  # global-batch sums
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_losses_match_full_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    data = _global_data()
    assert world() == (0, 1)

    for r, res in enumerate(ranks):
        assert res["world"] == (r, WORLD)
        torch.testing.assert_close(res["gathered"], data["z1"])
        torch.testing.assert_close(res["mean"], torch.tensor([0.5]))
    torch.testing.assert_close(torch.cat([res["sinkhorn"] for res in ranks]), sinkhorn_knopp(data["teacher"][0], 0.5))

    for name in LOSSES:
        full = _run(name, _model(), data, slice(None))
        mean_loss = sum(res[name]["loss"] for res in ranks) / WORLD
        torch.testing.assert_close(mean_loss, full["loss"], atol=1e-5, rtol=0)
        for r, res in enumerate(ranks):
            rows = slice(r * B, (r + 1) * B)
            # each rank's local input gradient is W times the full-batch gradient of that slice
            torch.testing.assert_close(res[name]["g1"] / WORLD, full["g1"][rows], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(res[name]["g2"] / WORLD, full["g2"][rows], atol=1e-6, rtol=1e-5)
            # and DDP's averaged parameter gradient is exactly the full-batch gradient
            torch.testing.assert_close(res[name]["gw"], full["gw"], atol=1e-6, rtol=1e-5)
    # with gathering, Barlow Twins is the same global loss on every rank
    torch.testing.assert_close(ranks[0]["barlow_twins"]["loss"], ranks[1]["barlow_twins"]["loss"])

    expected_center = 0.9 * torch.ones(1, D, dtype=torch.float64) + 0.1 * data["teacher"].mean(dim=(0, 1))
    for res in ranks:
        torch.testing.assert_close(res["center"], expected_center)


def test_embedding_runs_on_one_device_and_a_missing_gpu_is_refused_in_one_line() -> None:
    import pytest

    from selfsup.distributed import inference_device
    from selfsup.errors import SelfsupError

    assert inference_device("cpu", 1) == torch.device("cpu")
    assert inference_device("cpu", "auto") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert inference_device("auto", 1).type in ("cpu", "mps")
        for accelerator in ("gpu", "cuda"):
            with pytest.raises(SelfsupError, match=f"--accelerator {accelerator}: no CUDA GPU") as err:
                inference_device(accelerator, 1)
            assert "\n" not in str(err.value)
    else:
        assert inference_device("gpu", "0,") == torch.device("cuda", 0)
    for devices in (2, "2", "0,1", "-1"):
        with pytest.raises(SelfsupError, match="embedding runs on one device"):
            inference_device("cpu", devices)
    with pytest.raises(SelfsupError, match="choose one of auto, cpu, gpu, cuda, mps"):
        inference_device("tpu", 1)
