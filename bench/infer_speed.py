"""Inference speed of ``autopose infer``'s two backends side by side (issue 16): PyTorch
against ONNX Runtime on the CPU, one thread, batch 1, 256x192 (target: onnxruntime >= 1.6x
torch's frames per second, for each network).

Networks (random weights: speed only; ``--nets`` picks):

* ``hrnet_w32``: HRNet-W32 (``autopose.models.MODELS``);
* ``derived``: the derived network of ``bench/coco_step.py``'s representative genotype at the
  paper's widths (branches 32, 64, 128, 256: the search space's 16-128 x ``width_mult`` 2,
  every stage's branches as there, conv_3x3 edges);
* ``short``: ``configs/synthetic/genotype_short.json`` at its own ``width_mult`` 2.

Each side runs exactly what ``autopose infer`` runs for one batch of crops: the uint8 crops
normalised by ``normalize_batch``, then ``network_heatmaps`` (torch, ``no_grad``) or
``onnx_heatmaps`` on the session ``ort_session`` makes (the network traced by export's
``to_onnx_bytes``). The two are interleaved over ``--reps`` repetitions, so that machine
noise hits both; times are medians. Before timing, the two outputs are compared (export's
tolerance, 1e-4).

Usage: ``.venv/bin/python bench/infer_speed.py [--nets hrnet_w32,derived,short]
[--size 256x192] [--batch 1] [--threads 1] [--reps 10]`` (about a minute on one core).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autopose.engine.export import TOLERANCE, to_onnx_bytes
from autopose.engine.infer_backend import onnx_heatmaps, ort_session, require_onnxruntime
from autopose.evaluation.pipeline import network_heatmaps
from autopose.models import MODELS
from autopose.models.derived import DerivedNetwork
from autopose.models.flops import count_macs, parse_input_size
from autopose.search_space.genotype import Genotype
# bench/, beside this script: the paper-width genotype, the machine line, the timing loop.
from coco_step import machine, representative_genotype
from supernet_cost import interleaved

REPO = Path(__file__).resolve().parents[1]
SHORT = REPO / "configs" / "synthetic" / "genotype_short.json"
TARGET = 1.6


def build(name: str) -> nn.Module:
    """The network ``name`` with random weights, eval mode, on the CPU."""
    torch.manual_seed(0)
    if name == "hrnet_w32":
        return MODELS["hrnet_w32"](num_joints=17).eval()
    if name == "derived":
        return DerivedNetwork(representative_genotype(), num_joints=17).eval()
    if name == "short":
        return DerivedNetwork(Genotype.load(SHORT), num_joints=17).eval()
    raise SystemExit(f"--nets: unknown network {name!r} (hrnet_w32, derived, short)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="hrnet_w32,derived,short")
    ap.add_argument("--size", default="256x192", help="input HxW (default 256x192)")
    ap.add_argument("--batch", type=int, default=1, help="crops a call (default 1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads and ONNX Runtime intra-op threads (default 1)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    ort = require_onnxruntime(export=True)
    torch.set_num_threads(args.threads)
    hw = parse_input_size(args.size)
    crops = torch.randint(0, 256, (args.batch, 3, *hw), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    batch = {"image": crops}
    print(f"machine: {machine()}, python {platform.python_version()}, torch "
          f"{torch.__version__}, onnxruntime {ort.__version__}")
    print(f"input {hw[0]}x{hw[1]}, batch {args.batch}, {args.threads} thread(s), "
          f"{args.reps} interleaved reps after {args.warmup} warm-up, medians")

    rows = []
    for name in [n.strip() for n in args.nets.split(",") if n.strip()]:
        net = build(name)
        gmacs = count_macs(net, hw) / 1e9
        start = time.perf_counter()
        session = ort_session(ort, to_onnx_bytes(net, hw), args.threads, Path(name))
        export_s = time.perf_counter() - start
        fns = {"torch": network_heatmaps(net, torch.device("cpu")),
               "onnxruntime": onnx_heatmaps(session)}
        diff = float(np.max(np.abs(fns["torch"](batch, False) - fns["onnxruntime"](batch, False))))
        t = interleaved({k: (lambda f=f: f(batch, False)) for k, f in fns.items()}, args.reps,
                        warmup=args.warmup)
        fps = {k: args.batch / v for k, v in t.items()}
        ratio = fps["onnxruntime"] / fps["torch"]
        rows.append((name, gmacs, fps["torch"], fps["onnxruntime"], ratio, diff))
        print(f"  {name}: {gmacs:.2f} GMAC/image; torch {t['torch'] * 1e3:.1f} ms, "
              f"onnxruntime {t['onnxruntime'] * 1e3:.1f} ms a call; max |diff| {diff:.1e} "
              f"(<= {TOLERANCE:g}: {'yes' if diff <= TOLERANCE else 'NO'}); "
              f"export + session {export_s:.1f} s")

    print()
    print(f"| network | GMAC | torch FPS | onnxruntime FPS | ratio | target >= {TARGET} |")
    print("|---|---:|---:|---:|---:|---|")
    for name, gmacs, f_torch, f_ort, ratio, _ in rows:
        print(f"| {name} | {gmacs:.2f} | {f_torch:.2f} | {f_ort:.2f} | {ratio:.2f}x | "
              f"{'met' if ratio >= TARGET else 'MISSED'} |")


if __name__ == "__main__":
    main()
