"""Worker of the FVD DDP test (tests/test_fvd.py), kept in its own small module so that the processes started by
``torch.multiprocessing.spawn`` import only torch and vpzoo's FVD, not the whole test module."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def ddp_features(n: int, seed: int) -> torch.Tensor:
    """Deterministic (n, 400) float64 features with unequal variances."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 400, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, 400, dtype=torch.float64)


def ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from vpzoo.metrics.fvd import FrechetVideoDistance

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        real, fake = ddp_features(7, seed=11), ddp_features(6, seed=12) + 0.3
        metric = FrechetVideoDistance(weights_path="/nonexistent")  # features only: no network is loaded
        # uneven shards; rank 1 sees no generated clip at all
        for i in range(rank, 7, world):
            metric.update_features(real[i : i + 1], real=True)
        if rank == 0:
            metric.update_features(fake, real=False)
        out = metric.compute()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps({k: float(v) for k, v in out.items()}))
    finally:
        dist.destroy_process_group()
