"""Cost of the paper's COCO setting: a training step of its three networks at 256x192, and
what it implies for memory per GPU and time per epoch on N GPUs (docs/coco.md).

Networks:

* ``derived``: the derived network of a representative genotype at the paper's widths: the
  search space of ``configs/coco/search_256x192.yaml`` (branch widths 16-128, stem 64) x
  ``width_mult`` 2 (branches 32, 64, 128, 256), scale vectors [[1,1,0,0],[1,1,1,0],[1,1,1,1]],
  conv_3x3 on every edge, 2 incoming edges kept per node as the search derives them (which
  two is drawn with a fixed seed; the script prints them);
* ``hrnet_w32``: HRNet-W32 (``autopose.models.MODELS``);
* ``supernet``: the supernet of ``configs/coco/search_256x192.yaml`` with every branch on and
  conv_3x3 on every edge (a heavy sample: memory is quoted for it); the search's time is
  estimated from uniform samples (each branch on with probability 1/2, ops uniform), what the
  search runs before its controller learns.

Measured on this machine, for each: seconds per training step (forward, the trainer's loss,
backward, Adam) at ``--batch`` images, median of ``--steps`` steps after ``--warmup``;
parameters; GMACs per image (``autopose flops`` convention: multiply-accumulates / 1e9);
ATen operator calls per forward + backward (about one GPU kernel each); parameter tensors
with a gradient (the search packs them into buckets of 32 MiB, one all-reduce each); the *host
time* of a step: forward + backward on tiny tensors (batch 2 at 32x24), i.e. the Python,
dispatcher and autograd work that a GPU step also costs the CPU however small its kernels
(here it also includes the tiny CPU kernels, so it is an upper bound); activation memory
per image: on CPU the bytes of the tensors saved for backward
(``torch.autograd.graph.saved_tensors_hooks``, each storage counted once, parameters
excluded), on CUDA the step's peak ``torch.cuda.max_memory_allocated`` less weights, Adam
states and gradients, over the batch.

Extrapolated (printed after the measurements):

* memory per GPU = params x 4 bytes x (weights 1 + gradients 1 + Adam 2 + DDP buckets 1 when
  N > 1) + activations per image x per-GPU batch; bf16 AMP taken as halving the activations
  (measured instead when run on CUDA with ``--amp bf16``);
* time per epoch of COCO train2017 (149,813 person instances, HRNet's count) from the
  FLOPs and an assumed effective GPU throughput (``GPU_ASSUMED``; a training image costs
  6 FLOPs per MAC: 2 per MAC, forward + backward = 3 forwards), with a floor set by the host
  time of the ATen calls (``HOST_US_PER_OP``, assumed) and, for the search, its bucketed
  all-reduces (``ALLREDUCE_US`` each plus the bytes at ``ALLREDUCE_GBPS``, assumed); and the
  measured time on this CPU for comparison.
  With CUDA the script prints the measured GPU time per epoch too.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/coco_step.py [--batch 4] [--steps 2] [--warmup 1]
        [--threads 1] [--device auto|cpu|cuda] [--amp none|bf16|fp16] [--channels-last]
        [--nets derived,hrnet_w32,supernet] [--gpus 1,2,4,8] [--samples 16] [--host-reps 3]
        [--json OUT.json] [--quick]

On a GPU machine: ``python bench/coco_step.py --device cuda --batch 32 --steps 10 --warmup 3
[--amp bf16]`` measures there instead of extrapolating.

``--quick`` (for the test): one step of batch 1 at 64x48, one supernet sample.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from autopose.config import ModelConfig, load_config
from autopose.models import MODELS
from autopose.models.derived import DerivedNetwork
from autopose.models.flops import count_macs, count_params, parse_input_size
from autopose.search_space.cells import EdgeChoices, aggregation_edges, individual_edges
from autopose.search_space.genotype import Genotype, derive_genotype
from autopose.search_space.supernet import SampledOps, Supernet

REPO = Path(__file__).resolve().parents[1]
SEARCH_CONFIG = REPO / "configs" / "coco" / "search_256x192.yaml"
TRAIN_CONFIG = REPO / "configs" / "coco" / "autopose_256x192.yaml"

# COCO train2017 person instances that top-down training uses (not crowd, a labelled joint,
# a box of positive area): 149,813 in HRNet's and mmpose's logs.
COCO_TRAIN_PERSONS = 149_813
EPOCHS = 210
SCALE_VECTORS = [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
NUM_JOINTS = 17
FLOPS_PER_MAC_TRAIN = 6  # 2 FLOPs per MAC x (forward + backward ~ 3 forwards)
FLOPS_PER_MAC_INFER = 2
HOST_INPUT = (32, 24)  # the host-time step: batch 2 (BatchNorm needs 2 values per channel)
HOST_BATCH = 2

# ASSUMED effective throughput of a training step of these networks, in TFLOP/s of the FLOPs
# above (not the GPU's peak), uncertain by about 2x either way. These networks are many
# convolutions of 32-256 channels at high resolution plus BatchNorm, ReLU, additions and
# upsampling that are bound by memory bandwidth, far from tensor-core peak. "fp32" is
# PyTorch's default on these GPUs (TF32 convolutions in cuDNN); "bf16" is train.amp: bf16.
# Cross-check (printed): HRNet-W32 took 50-60 h for 210 epochs on 4 P100 (HRNet's authors),
# ~1.8 TFLOP/s per P100 by the same count, about a fifth of its fp32 peak (data loading and
# per-epoch validation included); A100 and H100 have 2.8x and 4.6x its memory bandwidth.
GPU_ASSUMED = {
    "A100": {"fp32": 8.0, "bf16": 14.0},
    "H100": {"fp32": 14.0, "bf16": 24.0},
}
GPU_UNCERTAINTY = 2.0
# ASSUMED host (CPU) time to issue one ATen call to a GPU in eager PyTorch, Python module
# overhead of the forward included, on a GPU server's CPU; uncertain by about 2x. The script
# prints what the same forward + backward costs per call on this machine's CPU with tiny
# tensors, an upper bound (it includes the tiny CPU kernels themselves). A GPU step cannot be
# faster than its calls x this, however fast the GPU.
HOST_US_PER_OP = 10.0
# ASSUMED latency of one NCCL all-reduce within a node, and its bus bandwidth (NVLink): the
# search packs a step's gradients into buckets of BUCKET_BYTES (engine.distributed
# .all_reduce_mean_), one all-reduce each, twice per iteration.
ALLREDUCE_US = 25.0
ALLREDUCE_GBPS = 100.0
BUCKET_BYTES = 32 << 20
P100_ANCHOR = {"gpus": 4, "hours": 55.0, "epochs": 210}
GIB = 1024 ** 3


# ---------------------------------------------------------------------------- networks


def representative_genotype(seed: int = 0) -> Genotype:
    """The derived architecture described in the module docstring (paper widths)."""
    cfg = ModelConfig()  # widths 16-128, stem 64, 3 stages x 2 modules, 6 ops, width_mult 2
    g = torch.Generator().manual_seed(seed)
    c3 = cfg.ops.index("conv_3x3")

    def alphas(n_edges: int) -> torch.Tensor:
        # conv_3x3 wins every edge; the edge strengths (which 2 a node keeps) are random.
        a = torch.zeros(n_edges, len(cfg.ops))
        a[:, c3] = 3.0 + torch.rand(n_edges, generator=g)
        return a

    return derive_genotype(alphas(len(individual_edges(cfg.individual_nodes))),
                           alphas(len(aggregation_edges(cfg.aggregation_nodes,
                                                        len(cfg.branch_channels)))),
                           cfg, SCALE_VECTORS)


class SupernetSample(nn.Module):
    """The supernet run as one fixed sample, ``forward(images)`` like the other networks."""

    def __init__(self, net: Supernet, vectors: list[list[int]], ind: list[int],
                 agg: list[int] | None) -> None:
        super().__init__()
        self.net = net
        self.set_sample(vectors, ind, agg)

    def set_sample(self, vectors: list[list[int]], ind: list[int], agg: list[int] | None) -> None:
        self.vectors, self.ind, self.agg = vectors, ind, agg

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = self.net
        ops = SampledOps(EdgeChoices.straight_through(n.alpha_individual, self.ind),
                         None if n.alpha_aggregation is None
                         else EdgeChoices.straight_through(n.alpha_aggregation, self.agg))
        return n(images, self.vectors, ops=ops)


def build(name: str, device: torch.device) -> tuple[nn.Module, str]:
    """(network on ``device``, one-line description)."""
    torch.manual_seed(0)
    if name == "derived":
        geno = representative_genotype()
        ind = ", ".join(f"{s}->n{i}" for i, s, _ in geno.individual.edges)
        agg = ", ".join(f"{s}->n{i}" for i, s, _ in (geno.aggregation.edges
                                                      if geno.aggregation else []))
        desc = (f"derived: widths {[int(c * geno.width_mult) for c in geno.widths]}, stem "
                f"{geno.stem_channels}, scale vectors {geno.scale_vectors}, conv_3x3 edges; "
                f"individual cell [{ind}]; aggregation cell [{agg}]")
        return DerivedNetwork(geno, num_joints=NUM_JOINTS).to(device), desc
    if name in MODELS:
        return (MODELS[name](num_joints=NUM_JOINTS).to(device),
                f"{name}: autopose.models.MODELS[{name!r}]")
    if name == "supernet":
        mcfg = load_config(SEARCH_CONFIG).model
        nb = len(mcfg.branch_channels)
        c3 = mcfg.ops.index("conv_3x3")
        n_ind = len(individual_edges(mcfg.individual_nodes))
        n_agg = len(aggregation_edges(mcfg.aggregation_nodes, nb))
        desc = (f"supernet: {SEARCH_CONFIG.relative_to(REPO)} (widths {mcfg.branch_channels}, "
                f"stem {mcfg.stem_channels}, {len(mcfg.ops)} ops), every branch on, conv_3x3 "
                "on every edge")
        net = SupernetSample(Supernet(mcfg, NUM_JOINTS), [[1] * nb] * mcfg.num_stages,
                             [c3] * n_ind, [c3] * n_agg if mcfg.aggregation == "cell" else None)
        return net.to(device), desc
    raise SystemExit(f"--nets: unknown network {name!r} (derived, hrnet_w32, hrnet_w48, "
                     "simple_baseline_50, supernet)")


# ---------------------------------------------------------------------------- measuring


class OpCounter(TorchDispatchMode):
    """Counts ATen operator calls (about one GPU kernel launch each)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        return func(*args, **(kwargs or {}))


def saved_activation_bytes(fn: Callable[[], None], params: list[nn.Parameter]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn`` runs,
    parameters excluded (what a forward keeps alive until its backward)."""
    skip = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        ptr = s.data_ptr()
        if ptr not in skip and ptr not in seen:
            seen[ptr] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stepper:
    """One network with its Adam, stepping on fixed random inputs of any size."""

    def __init__(self, net: nn.Module, device: torch.device, amp: str, channels_last: bool):
        self.net = net.train()
        self.params = list(net.parameters())
        self.opt = torch.optim.Adam(self.params, lr=1e-3)
        self.device = device
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.amp = amp if device.type == "cuda" else "none"
        self.inputs: dict[tuple[int, int, int], tuple[torch.Tensor, ...]] = {}
        self.grad_tensors = 0
        self.grad_bytes = 0

    def _inputs(self, batch: int, hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        key = (batch, *hw)
        if key not in self.inputs:
            g = torch.Generator().manual_seed(0)
            h4, w4 = math.ceil(hw[0] / 4), math.ceil(hw[1] / 4)
            x = torch.randn(batch, 3, *hw, generator=g).to(self.device)
            self.inputs[key] = (x.contiguous(memory_format=self.fmt),
                                torch.rand(batch, NUM_JOINTS, h4, w4, generator=g).to(self.device),
                                torch.ones(batch, NUM_JOINTS, device=self.device))
        return self.inputs[key]

    def step(self, batch: int, hw: tuple[int, int], counter: OpCounter | None = None,
             optimizer: bool = True) -> None:
        x, target, weight = self._inputs(batch, hw)
        self.opt.zero_grad(set_to_none=True)
        amp = (torch.autocast("cuda", dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)
               if self.amp != "none" else nullcontext())
        with counter if counter is not None else nullcontext():
            with amp:
                out = self.net(x)
            # The trainer's loss: 0.5 x mean(((output - target) x weight)^2).
            loss = 0.5 * ((out.float() - target) * weight[:, :, None, None]).pow(2).mean()
            loss.backward()
        self.grad_tensors = sum(p.grad is not None for p in self.params)
        self.grad_bytes = sum(p.grad.numel() * p.grad.element_size()
                              for p in self.params if p.grad is not None)
        if optimizer:
            self.opt.step()

    def timed(self, batch: int, hw: tuple[int, int], steps: int,
              optimizer: bool = True) -> list[float]:
        times = []
        for _ in range(steps):
            sync(self.device)
            t0 = time.perf_counter()
            self.step(batch, hw, optimizer=optimizer)
            sync(self.device)
            times.append(time.perf_counter() - t0)
        return times


def measure(name: str, args: argparse.Namespace, device: torch.device,
            hw: tuple[int, int]) -> dict[str, Any]:
    net, desc = build(name, device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    st = Stepper(net, device, args.amp, args.channels_last)
    b = args.batch
    macs = count_macs(net, hw)  # one image, eval mode, no grad
    row: dict[str, Any] = {"net": name, "description": desc, "params": count_params(net),
                           "gmacs_per_image": macs / 1e9, "batch": b,
                           "input": f"{hw[0]}x{hw[1]}", "device": str(device),
                           "amp": st.amp}
    # Warm-up; the first step also counts ATen calls and (on CPU) the saved activations.
    counter = OpCounter()
    act_bytes = None
    for i in range(max(1, args.warmup)):
        if i == 0 and device.type != "cuda":
            act_bytes = saved_activation_bytes(lambda: st.step(b, hw, counter), st.params)
        else:
            st.step(b, hw, counter if i == 0 else None)
    row["aten_ops_per_step"] = counter.calls
    row["grad_tensors"] = st.grad_tensors
    sync(device)
    if device.type == "cuda":
        st.opt.zero_grad(set_to_none=True)
        static = torch.cuda.memory_allocated(device)  # weights, Adam states, inputs
        torch.cuda.reset_peak_memory_stats(device)
    times = st.timed(b, hw, args.steps)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        grads = sum(p.numel() * p.element_size() for p in st.params)
        act_bytes = max(0, peak - static - grads)
        row["cuda_peak_bytes"] = peak
        row["cuda_static_bytes"] = static
    assert act_bytes is not None
    row["act_bytes_per_image"] = act_bytes / b
    row["step_seconds"] = statistics.median(times)
    row["step_seconds_all"] = times
    row["seconds_per_image"] = row["step_seconds"] / b
    row["achieved_gflops"] = FLOPS_PER_MAC_TRAIN * macs * b / row["step_seconds"] / 1e9
    # Host time: forward + backward on tiny tensors, where the arithmetic is negligible.
    st.step(HOST_BATCH, HOST_INPUT, optimizer=False)
    row["host_seconds"] = statistics.median(st.timed(HOST_BATCH, HOST_INPUT, args.host_reps,
                                                     optimizer=False))
    row["host_us_per_op"] = row["host_seconds"] / row["aten_ops_per_step"] * 1e6
    if name == "supernet":
        row.update(supernet_samples(st, hw, args.samples))
    del st, net
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def supernet_samples(st: Stepper, hw: tuple[int, int], samples: int,
                     seed: int = 0) -> dict[str, float]:
    """MACs per image, host time and gradient tensors of uniform samples: each branch on with
    probability 1/2, each edge's op uniform (the search before the controller learns)."""
    wrapper = st.net
    assert isinstance(wrapper, SupernetSample)
    net = wrapper.net
    g = torch.Generator().manual_seed(seed)
    nb, n_ops = net.num_branches, len(net.ops)
    macs, host, grads, grad_bytes, ops = [], [], [], [], []
    for _ in range(samples):
        vectors = torch.randint(0, 2, (net.num_stages, nb), generator=g).tolist()
        ind = torch.randint(0, n_ops, (net.alpha_individual.shape[0],), generator=g).tolist()
        agg = (None if net.alpha_aggregation is None else
               torch.randint(0, n_ops, (net.alpha_aggregation.shape[0],), generator=g).tolist())
        wrapper.set_sample(vectors, ind, agg)
        macs.append(count_macs(wrapper, hw))
        counter = OpCounter()
        st.step(HOST_BATCH, HOST_INPUT, counter, optimizer=False)
        ops.append(counter.calls)
        host.append(st.timed(HOST_BATCH, HOST_INPUT, 1, optimizer=False)[0])
        grads.append(st.grad_tensors)
        grad_bytes.append(st.grad_bytes)
    return {"gmacs_mean_sample": statistics.mean(macs) / 1e9,
            "gmacs_max_sample": max(macs) / 1e9,
            "host_seconds_mean_sample": statistics.mean(host),
            "aten_ops_mean_sample": statistics.mean(ops),
            "grad_tensors_mean_sample": statistics.mean(grads),
            "grad_bytes_mean_sample": statistics.mean(grad_bytes)}


# ---------------------------------------------------------------------------- extrapolating


def static_bytes(params: int, world: int) -> int:
    """Weights, gradients, Adam's two moments, and DDP's gradient buckets (a copy of the
    gradients) when there is more than one process."""
    return params * 4 * (4 + (1 if world > 1 else 0))


def extrapolate(rows: dict[str, dict[str, Any]], gpus: list[int], measured_gpu: bool,
                amp: str) -> dict[str, Any]:
    """Memory per GPU and time per epoch for the COCO configs on N GPUs."""
    tcfg = load_config(TRAIN_CONFIG).train
    scfg = load_config(SEARCH_CONFIG).search
    test_batch = load_config(SEARCH_CONFIG).test.batch_size
    bf16_factor = 1.0 if measured_gpu and amp != "none" else 0.5
    op_s = HOST_US_PER_OP * 1e-6
    out: dict[str, Any] = {"train": [], "search": [], "cpu": {}, "assumptions": {
        "coco_train_persons": COCO_TRAIN_PERSONS, "gpu_effective_tflops": GPU_ASSUMED,
        "uncertainty_factor": GPU_UNCERTAINTY, "flops_per_mac_train": FLOPS_PER_MAC_TRAIN,
        "host_us_per_op": HOST_US_PER_OP, "allreduce_us": ALLREDUCE_US,
        "allreduce_gbps": ALLREDUCE_GBPS, "bucket_bytes": BUCKET_BYTES,
        "bf16_activation_factor": bf16_factor}}

    # ---- training the derived network or HRNet-W32: train.batch_size in total. The host
    # issues a step while the GPU runs the previous kernels: a step takes the longer of the two.
    total = tcfg.batch_size
    for name in ("derived", "hrnet_w32"):
        r = rows.get(name)
        if r is None:
            continue
        flop_img = FLOPS_PER_MAC_TRAIN * r["gmacs_per_image"] * 1e9
        host = r["aten_ops_per_step"] * op_s
        for n in gpus:
            if total % n:
                continue
            b = total // n
            iters = math.ceil(COCO_TRAIN_PERSONS / n) // b  # the trainer's batches per epoch
            static = static_bytes(r["params"], n)
            act = r["act_bytes_per_image"]
            entry: dict[str, Any] = {
                "net": name, "gpus": n, "per_gpu_batch": b, "iters_per_epoch": iters,
                "mem_fp32_gib": None if measured_gpu and amp != "none" else
                (static + act * b) / GIB,
                "mem_bf16_gib": (static + act * bf16_factor * b) / GIB,
                "host_floor_epoch_s": iters * host}
            for gpu, rates in GPU_ASSUMED.items():
                for prec, tflops in rates.items():
                    step = max(b * flop_img / (tflops * 1e12), host)
                    entry[f"epoch_s_{gpu}_{prec}"] = iters * step
            if measured_gpu:
                entry["epoch_s_measured_gpu"] = iters * b * r["seconds_per_image"]
            out["train"].append(entry)
        out["cpu"][name] = COCO_TRAIN_PERSONS * r["seconds_per_image"]

    # ---- the search: search.batch_size per process, a weight step and an alpha step per
    # iteration. Each step reads its sampled ops back from the GPU (.tolist()) and its loss
    # (float()), so host and GPU time add up instead of overlapping; with N > 1 the
    # gradients are averaged in buckets, one all-reduce each.
    r = rows.get("supernet")
    if r is not None:
        f = scfg.reward_fraction
        half = (1 - f) * COCO_TRAIN_PERSONS / 2  # persons of the weight (and arch) half
        reward = f * COCO_TRAIN_PERSONS
        c = scfg.controller
        evals_late = 1 + c.updates_per_epoch * c.archs_per_update  # at most (a cache dedups)
        late_epochs = max(0, scfg.epochs - c.start_epoch)
        early_epochs = scfg.epochs - late_epochs
        mean_macs = r["gmacs_mean_sample"] * 1e9
        host = r["aten_ops_mean_sample"] * op_s
        b = scfg.batch_size
        for n in gpus:
            iters = math.ceil(half / n) // b
            eval_batches = math.ceil(reward / n / test_batch)
            gb = r["grad_bytes_mean_sample"]
            # per bucket: latency; per byte: bandwidth; per tensor: a copy in and out of it
            comm = (math.ceil(gb / BUCKET_BYTES) * ALLREDUCE_US * 1e-6
                    + gb / (ALLREDUCE_GBPS * 1e9) + r["grad_tensors_mean_sample"] * 2 * op_s
                    if n > 1 else 0.0)
            entry = {"net": "supernet", "gpus": n, "per_gpu_batch": b, "iters_per_epoch": iters,
                     # no DDP: gradients are all-reduced in place, no bucket copy
                     "mem_fp32_gib": (r["params"] * 16 + r["act_bytes_per_image"] * b) / GIB,
                     "host_floor_epoch_s": iters * 2 * (host + comm)}
            for gpu, rates in GPU_ASSUMED.items():
                tflops = rates["fp32"] * 1e12  # the search has no mixed precision
                it = 2 * (b * FLOPS_PER_MAC_TRAIN * mean_macs / tflops + host + comm)
                ev = (reward / n * FLOPS_PER_MAC_INFER * mean_macs / tflops
                      + eval_batches * host / 3)  # a forward: about a third of the calls
                e_early, e_late = iters * it + ev, iters * it + evals_late * ev
                entry[f"epoch_s_{gpu}_fp32"] = e_late
                entry[f"search_s_{gpu}_fp32"] = (early_epochs * e_early + late_epochs * e_late
                                                 + (1 + scfg.derive_samples) * ev)
            out["search"].append(entry)
        # This CPU: the all-on step's time per image scaled to the mean sample's MACs.
        scale = r["gmacs_mean_sample"] / r["gmacs_per_image"]
        s_img = r["seconds_per_image"] * scale
        out["cpu"]["search_epoch"] = 2 * half * s_img + evals_late * reward * s_img / 3
        out["cpu"]["search_scale_to_mean"] = scale

    # ---- the P100 cross-check of the throughput assumption
    h = rows.get("hrnet_w32")
    if h is not None:
        a = P100_ANCHOR
        out["p100_anchor_tflops"] = (a["epochs"] * COCO_TRAIN_PERSONS * FLOPS_PER_MAC_TRAIN
                                     * h["gmacs_per_image"] * 1e9
                                     / (a["hours"] * 3600 * a["gpus"]) / 1e12)
    return out


# ---------------------------------------------------------------------------- report


def fmt_time(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


def print_report(rows: dict[str, dict[str, Any]], ext: dict[str, Any], args: argparse.Namespace,
                 device: torch.device, hw: tuple[int, int]) -> None:
    p = print
    cuda = device.type == "cuda"
    dev = torch.cuda.get_device_name(device) if cuda else machine()
    p(f"machine: {dev}; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), "
      f"device {device}, amp {args.amp if cuda else 'none (CPU: float32)'}, "
      f"{'channels-last' if args.channels_last else 'NCHW'}")
    p(f"input {hw[0]}x{hw[1]}, batch {args.batch}, median of {args.steps} step(s) after "
      f"{max(1, args.warmup)} warm-up; GMACs = multiply-accumulates / 1e9 per image; host = "
      f"forward + backward at batch {HOST_BATCH}, {HOST_INPUT[0]}x{HOST_INPUT[1]}")
    for r in rows.values():
        p(f"  {r['description']}")
    p()
    act = "act MiB/img" + (" (peak)" if cuda else " (saved)")
    p(f"{'network':10s} {'params M':>9s} {'GMACs':>6s} {'aten ops':>9s} {'grads':>6s} {act:>18s} "
      f"{'s/step':>7s} {'s/img':>6s} {'GFLOP/s':>8s} {'host s':>7s} {'us/op':>6s}")
    for r in rows.values():
        p(f"{r['net']:10s} {r['params'] / 1e6:9.2f} {r['gmacs_per_image']:6.2f} "
          f"{r['aten_ops_per_step']:9d} {r['grad_tensors']:6d} "
          f"{r['act_bytes_per_image'] / 2**20:18.1f} {r['step_seconds']:7.3f} "
          f"{r['seconds_per_image']:6.3f} {r['achieved_gflops']:8.1f} {r['host_seconds']:7.3f} "
          f"{r['host_us_per_op']:6.1f}")
    s = rows.get("supernet")
    if s is not None:
        p(f"supernet, {args.samples} uniform samples (each branch on with p 1/2, ops uniform): "
          f"mean {s['gmacs_mean_sample']:.2f} GMACs/img (max {s['gmacs_max_sample']:.2f}), "
          f"{s['aten_ops_mean_sample']:.0f} aten ops, host {s['host_seconds_mean_sample']:.3f} s, "
          f"{s['grad_tensors_mean_sample']:.0f} gradient tensors")
    if args.quick:
        p("(--quick: tiny input, one step; the extrapolation below is not meaningful)")
    p()
    a = ext["assumptions"]
    p("ASSUMED effective training throughput, TFLOP/s at 6 FLOPs per MAC per image: "
      + ", ".join(f"{g} fp32 {v['fp32']:g} / bf16 {v['bf16']:g}" for g, v in GPU_ASSUMED.items())
      + f"; uncertain by x{GPU_UNCERTAINTY:g} either way. ASSUMED host time {HOST_US_PER_OP:g} us "
      f"per aten op (this machine, above: us/op), {ALLREDUCE_US:g} us per all-reduce of a "
      f"bucket (<= {BUCKET_BYTES >> 20} MiB) + bytes at {ALLREDUCE_GBPS:g} GB/s. Training "
      "step = max(FLOPs / throughput, ops x host); search step = FLOPs / throughput + ops x "
      "host + bucketed all-reduces (it syncs every step)")
    if "p100_anchor_tflops" in ext:
        p(f"cross-check: HRNet-W32, 210 epochs in ~55 h on 4 P100 (HRNet's authors) = "
          f"{ext['p100_anchor_tflops']:.2f} TFLOP/s per P100 by the same count")
    p(f"memory = params x 4 B x (weights + grads + Adam 2 + DDP buckets if N > 1) + "
      f"activations x per-GPU batch; bf16: activations x{a['bf16_activation_factor']:g}"
      f"{' (assumed)' if a['bf16_activation_factor'] != 1.0 else ' (measured)'}; the CUDA "
      "context (a few hundred MiB) and allocator slack are not included")
    p()
    gcols = [(g, pr) for g in GPU_ASSUMED for pr in ("fp32", "bf16")]
    if ext["train"]:
        p(f"training, {TRAIN_CONFIG.relative_to(REPO)} (train.batch_size "
          f"{load_config(TRAIN_CONFIG).train.batch_size} in total), {COCO_TRAIN_PERSONS:,} "
          "persons per epoch; time per epoch (x210 for the schedule)")
        meas = any("epoch_s_measured_gpu" in e for e in ext["train"])
        p(f"{'network':10s} {'GPUs':>4s} {'b/GPU':>5s} {'iters':>5s} {'GiB fp32':>9s} "
          f"{'GiB bf16':>9s} " + " ".join(f"{g + ' ' + pr:>10s}" for g, pr in gcols)
          + f" {'host floor':>10s}" + (f" {'measured':>10s}" if meas else ""))
        for e in ext["train"]:
            m32 = "-" if e["mem_fp32_gib"] is None else f"{e['mem_fp32_gib']:.1f}"
            p(f"{e['net']:10s} {e['gpus']:4d} {e['per_gpu_batch']:5d} {e['iters_per_epoch']:5d} "
              f"{m32:>9s} {e['mem_bf16_gib']:9.1f} "
              + " ".join(f"{fmt_time(e[f'epoch_s_{g}_{pr}']):>10s}" for g, pr in gcols)
              + f" {fmt_time(e['host_floor_epoch_s']):>10s}"
              + (f" {fmt_time(e['epoch_s_measured_gpu']):>10s}" if meas else ""))
        for name in ("derived", "hrnet_w32"):
            if name in ext["cpu"]:
                t = ext["cpu"][name]
                p(f"this machine, {name}: {fmt_time(t)} per epoch, "
                  f"{t * EPOCHS / 86400:.0f} days for {EPOCHS} epochs")
        p()
    if ext["search"]:
        scfg = load_config(SEARCH_CONFIG).search
        c = scfg.controller
        p(f"search, {SEARCH_CONFIG.relative_to(REPO)}: search.batch_size {scfg.batch_size} per "
          f"process, {scfg.epochs} epochs of weight + alpha steps in float32, up to "
          f"{1 + c.updates_per_epoch * c.archs_per_update} reward evaluations on "
          f"{scfg.reward_fraction:.0%} of the persons per epoch from epoch {c.start_epoch + 1}; "
          "time at the mean sample, memory at the all-on sample")
        p(f"{'GPUs':>4s} {'b/GPU':>5s} {'iters':>6s} {'GiB fp32':>9s} "
          + " ".join(f"{g + ' epoch':>11s} {g + ' search':>11s}" for g in GPU_ASSUMED)
          + f" {'host floor':>10s}")
        for e in ext["search"]:
            p(f"{e['gpus']:4d} {e['per_gpu_batch']:5d} {e['iters_per_epoch']:6d} "
              f"{e['mem_fp32_gib']:9.1f} "
              + " ".join(f"{fmt_time(e[f'epoch_s_{g}_fp32']):>11s} "
                         f"{fmt_time(e[f'search_s_{g}_fp32']):>11s}" for g in GPU_ASSUMED)
              + f" {fmt_time(e['host_floor_epoch_s']):>10s}")
        p("(not included: COCOeval of each reward, on the CPU of every process)")
        p(f"this machine: {fmt_time(ext['cpu']['search_epoch'])} per search epoch (all-on step "
          f"time scaled by {ext['cpu']['search_scale_to_mean']:.2f} to the mean sample)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="256x192", help="input HxW (default 256x192)")
    ap.add_argument("--batch", type=int, default=4, help="images per measured step (default 4)")
    ap.add_argument("--steps", type=int, default=2, help="measured steps (default 2)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up steps (default 1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: steady on a shared machine)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"),
                    help="autocast dtype on CUDA (ignored on CPU)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--nets", default="derived,hrnet_w32,supernet")
    ap.add_argument("--gpus", default="1,2,4,8", help="GPU counts to extrapolate to")
    ap.add_argument("--samples", type=int, default=16,
                    help="uniform supernet samples (default 16)")
    ap.add_argument("--host-reps", type=int, default=3,
                    help="timed host steps per network (median; default 3)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 64x48, batch 1, one step, one supernet sample")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.steps, args.warmup, args.samples = "64x48", 1, 1, 1, 1
        args.host_reps = 1
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    hw = parse_input_size(args.size)
    gpus = [int(n) for n in args.gpus.split(",") if n.strip()]
    t0 = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    for name in [n.strip() for n in args.nets.split(",") if n.strip()]:
        rows[name] = measure(name, args, device, hw)
        print(f"[{name}: {rows[name]['step_seconds']:.3f} s/step, "
              f"{time.perf_counter() - t0:.0f} s so far]", file=sys.stderr, flush=True)
    ext = extrapolate(rows, gpus, device.type == "cuda", args.amp)
    print_report(rows, ext, args, device, hw)
    print(f"(wall time of this run: {time.perf_counter() - t0:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(
            {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "torch": torch.__version__,
             "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
             "networks": rows, "extrapolation": ext}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
