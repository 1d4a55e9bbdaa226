"""Distributed execution: one process per device under ``torchrun``, or a single process.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and joins the process group (NCCL on CUDA, gloo on CPU).
Without them every helper here degrades to the single-process case, so the trainer has one
code path. Rank 0 is the only process that writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from autopose.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job: its rank, the world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    local_world_size: int = 1  # the job's processes on this machine (torchrun's)

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints progress (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def default_device(local_rank: int = 0) -> torch.device:
    """The compute device: CUDA device ``local_rank`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices; gloo everywhere else (CPU training and tests)."""
    return "nccl" if device.type == "cuda" else "gloo"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"environment: {name}={raw!r} is not an integer") from None


def init_distributed() -> DistInfo:
    """Join the process group described by the torchrun environment, if any.

    Safe to call twice: a process group that already exists is reused.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = default_device(local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, device)
    if not 0 <= rank < world:
        raise UserError(f"environment: RANK={rank} outside 0..{world - 1}")
    if device.type == "cuda":
        # Before init, so that NCCL binds this process to its own GPU.
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device), rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, device, _env_int("LOCAL_WORLD_SIZE", world))


def cpu_share(info: DistInfo) -> int:
    """The CPU cores this process may keep busy: the cores it may run on, shared evenly by
    the job's processes on this machine; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    return max(1, cores // max(1, info.local_world_size))


def cleanup() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects; returns it unchanged alone)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all ranks (a copy; the input is left as it is)."""
    out = value.detach().clone()
    all_reduce_mean_([out])
    return out


def all_reduce_mean_(tensors: list[torch.Tensor], bucket_bytes: int = 32 << 20) -> None:
    """Average ``tensors`` over all ranks, in place, in a few collectives (no-op alone).

    Every rank must pass tensors of the same shapes in the same order. Tensors of one dtype
    and device are packed into flat buckets of about ``bucket_bytes``, one all-reduce each,
    as DDP does: a supernet step has hundreds of gradient tensors, and one collective per
    tensor pays the collective's latency hundreds of times.
    """
    if not is_initialized() or not tensors:
        return
    world = dist.get_world_size()
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for t in group:
            bucket.append(t)
            size += t.numel() * t.element_size()
            if size >= bucket_bytes:
                _reduce_bucket(bucket, world)
                bucket, size = [], 0
        if bucket:
            _reduce_bucket(bucket, world)


def _reduce_bucket(bucket: list[torch.Tensor], world: int) -> None:
    flat = torch.cat([t.reshape(-1) for t in bucket])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world
    for t, part in zip(bucket, flat.split([t.numel() for t in bucket])):
        t.copy_(part.view_as(t))


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last forward of an
    epoch each rank holds running statistics of its own last batch. Syncing them at the
    end of an epoch makes every rank hold the model that rank 0 checkpoints.
    """
    if not is_initialized():
        return
    for buf in module.buffers():
        dist.broadcast(buf, src=src)
