"""Data-parallel training under `torchrun`: which process this is, and what ranks share.

`bt-train` runs unchanged as one process or under `torchrun --nproc-per-node N` (and
across machines with torchrun's rendezvous flags), which sets RANK, WORLD_SIZE and
LOCAL_RANK. The rule for the recipe: the *global* batch (the recipe's batch size) and
the learning rate stay what the recipe says, whatever N is; each rank takes
batch_size / N images per step, from its share of one epoch draw (train/split.py) that
every rank makes identically from (seed, epoch), as DistributedSampler does.
Gradients are all-reduced by DistributedDataParallel. On GPUs, batch-norm statistics are
synchronised across ranks (SyncBatchNorm), so a step's statistics are those of the whole
global batch, as in one process; PyTorch's SyncBatchNorm does not run on CPUs, so with
gloo each rank normalises over its own share of the batch (the running averages, which
inference uses, are then those of rank 0, whose checkpoint is written). Only rank 0
writes files.

Memory: every rank decodes and holds the whole training cache (uint8, 3 x S x S per
image: about 440 MB for this dataset at 160 px), because each epoch's permutation may
hand any image to any rank. Sharding the cache would save (N - 1) copies at the cost of
a fixed split of the data per rank; at this dataset's size the copies are cheaper.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def start(cls, device: torch.device) -> Ranks:
        """Join the process group torchrun describes, or stay a single process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(0, 1, device)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.distributed:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def local_batch(self, global_batch: int) -> int:
        if global_batch % self.world:
            raise ValueError(f"batch size {global_batch} does not divide among {self.world} processes")
        return global_batch // self.world

    def share(self, order: np.ndarray) -> np.ndarray:
        """This rank's share of the epoch's order (padded by wrapping, as DistributedSampler)."""
        count = len(order)
        per_rank = -(-count // self.world)
        order = np.resize(order, per_rank * self.world)
        return order[self.rank :: self.world]

    def sum(self, *values: float) -> list[float]:
        """Sums over all ranks (the values themselves in one process)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def in_sync(self, model: nn.Module) -> bool:
        """True when every rank holds bit-identical weights (a check DDP should make true).

        Parameters only: batch-norm running statistics are buffers that each rank updates
        from its own share of the last batch (DDP re-broadcasts rank 0's before each
        forward); the checkpoint keeps rank 0's.
        """
        if not self.distributed:
            return True
        digest = hashlib.sha256()
        for tensor in model.parameters():
            digest.update(tensor.detach().cpu().numpy().tobytes())
        digests: list[str | None] = [None] * self.world
        dist.all_gather_object(digests, digest.hexdigest())
        return len(set(digests)) == 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def stop(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
