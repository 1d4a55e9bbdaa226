"""Training a derived network (or a baseline) from scratch: ``autopose train``.

Paper section 4.2 and SPEC section 4: Adam, a multi-step schedule, the weighted heatmap MSE
(0.5 x mean, HRNet's JointsMSELoss), validation every ``train.val_every`` epochs scored by
:func:`autopose.evaluation.pipeline.evaluate` (AP, or PCKh Mean on MPII).

A run folder holds::

    config.yaml  run.json  genotype.json (derived networks)
    last.pt      resumable: weights, optimizer, scheduler, RNG states, position, log
    best.pt      the weights of the best validation so far (no training state)
    log.jsonl    one line per epoch: loss, lr, seconds, validation metrics
    metrics.json final and best validation metrics
    training.png loss and AP curves        tb/   TensorBoard events
    val_results.json  COCO-format predictions of the last validation

Determinism and resume. The data order of epoch ``e`` is a function of ``(seed, e)`` (a
:class:`~torch.utils.data.DistributedSampler` seeded with ``seed``, its epoch set to ``e``)
and each crop's augmentation is drawn from ``(seed, e, index)`` by the dataset, so
``--resume`` from a checkpoint written after ``i`` batches of epoch ``e`` starts the sampler
at batch ``i`` and sees exactly the batches an uninterrupted run would have seen. With the
optimizer, scheduler, BatchNorm statistics and RNG states restored too, the resumed run ends
with the same weights and metrics as an uninterrupted one (on the same machine and thread
count; see docs/training.md).

Distributed: under ``torchrun`` every process trains on its shard of each batch
(``train.batch_size`` is the total), gradients are averaged by DDP, SyncBatchNorm is used on
GPUs, every process predicts a share of the val split, and rank 0 scores it and writes
files.
"""

from __future__ import annotations

import math
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from autopose.config import Config, DEFAULT_CONFIG, dump_config, load_config, to_dict
from autopose.data.formats import dataset_format
from autopose.data.loader import iterate, make_loader
from autopose.data.sampler import ResumableSampler
from autopose.data.sources import resolve_data
from autopose.data.topdown import TopDownDataset
from autopose.data.transforms import normalize_batch
from autopose.engine import checkpoint as ckpt_mod
from autopose.engine import distributed as dist_mod
from autopose.engine import optim
from autopose.engine.distributed import DistInfo
from autopose.engine.loss import joints_mse_loss
from autopose.errors import UserError
from autopose.evaluation.coco_metric import format_table
from autopose.evaluation.pipeline import build_eval_set, evaluate, network_heatmaps
from autopose.io import default_run_dir, run_record, write_json, write_text

LAST = "last.pt"
BEST = "best.pt"


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


# ---------------------------------------------------------------------------- RNG states


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device) from one number."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np.asarray(np_state["state"]["key"], np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- setup


@dataclass
class ArchSource:
    """What the command line asked to train: a genotype file or a baseline's name."""

    genotype: Path | None = None
    model: str | None = None


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained network (unwrapped) and its metrics."""

    model: nn.Module
    final: dict[str, float]
    best: dict[str, Any]
    out: Path


@dataclass
class _State:
    """Position and bookkeeping of a run, saved in last.pt."""

    epoch: int = 0  # epochs completed
    iteration: int = 0  # batches completed within ``epoch``
    global_step: int = 0
    loss_sum: float = 0.0  # over the batches of the current epoch so far
    loss_count: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


def check_train_config(cfg: Config, world_size: int) -> None:
    """Reject train settings that cannot run, naming the field."""
    t = cfg.train
    if t.optimizer not in ("adam", "sgd"):
        raise UserError(f"config: train.optimizer: expected adam or sgd, got {t.optimizer!r}")
    if t.amp not in ("none", "bf16", "fp16"):
        raise UserError(f"config: train.amp: expected none, bf16 or fp16, got {t.amp!r}")
    for name in ("epochs", "batch_size", "val_every", "log_every"):
        if getattr(t, name) < 1:
            raise UserError(f"config: train.{name}: must be at least 1, got {getattr(t, name)}")
    if t.threads < 0:
        raise UserError(f"config: train.threads: must be >= 0 (0: torch's default), got {t.threads}")
    if t.checkpoint_every < 0:
        raise UserError(f"config: train.checkpoint_every: must be >= 0, got {t.checkpoint_every}")
    if not t.lr > 0 or not math.isfinite(t.lr):
        raise UserError(f"config: train.lr: must be a positive number, got {t.lr}")
    if t.clip_grad < 0:
        raise UserError(f"config: train.clip_grad: must be >= 0 (0 disables), got {t.clip_grad}")
    if t.width_mult is not None and t.width_mult <= 0:
        raise UserError(f"config: train.width_mult: must be positive, got {t.width_mult}")
    if list(t.lr_steps) != sorted(t.lr_steps):
        raise UserError(f"config: train.lr_steps: must be increasing, got {t.lr_steps}")
    if t.batch_size % world_size:
        raise UserError(f"config: train.batch_size: {t.batch_size} is not divisible by the "
                        f"{world_size} processes (it is the total over all of them)")


def resolve_arch(source: ArchSource, cfg: Config, num_joints: int) -> dict[str, Any]:
    """The checkpoint ``arch`` entry of the network to train."""
    if (source.genotype is None) == (source.model is None):
        raise UserError("autopose train: give exactly one of --genotype PATH or --model NAME")
    if source.genotype is not None:
        from autopose.search_space.genotype import Genotype

        genotype = Genotype.load(source.genotype)
        return ckpt_mod.arch_for_genotype(genotype, cfg.train.width_mult, num_joints)
    return ckpt_mod.arch_for_baseline(str(source.model), num_joints, cfg.train.width_mult)


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The dotted key where two nested dicts first differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d is not None:
                return d
        return None
    return None if a == b else prefix.rstrip(".")


def _optimizer(cfg: Config, params: Any) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return optim.sgd(params, t.lr, t.momentum, t.weight_decay)
    return optim.adam(params, t.lr, weight_decay=t.weight_decay)


def _autocast(cfg: Config, device: torch.device) -> Any:
    if device.type != "cuda" or cfg.train.amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if cfg.train.amp == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


# ---------------------------------------------------------------------------- the loop


class Trainer:
    """One training run; :meth:`run` trains to ``train.epochs`` and returns the result."""

    def __init__(self, cfg: Config, arch: dict[str, Any] | ArchSource, out: Path,
                 dist: DistInfo, resume_ckpt: dict[str, Any] | None = None,
                 progress: bool = True) -> None:
        self.cfg = cfg
        self.out = out
        self.dist = dist
        self.device = dist.device
        self.progress = progress and dist.is_main
        check_train_config(cfg, dist.world_size)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.seed)

        self.format = dataset_format(cfg.data.format)
        records, self.info = self.format.load_train(cfg.data, not dist.is_main)
        # A genotype or baseline name becomes an arch entry once the joints are known.
        if isinstance(arch, ArchSource):
            arch = resolve_arch(arch, cfg, self.info.num_joints)
        self.arch: dict[str, Any] = arch
        if self.info.num_joints != arch["num_joints"]:
            raise UserError(f"arch.num_joints: the network predicts {arch['num_joints']} joints, "
                            f"data.train has {self.info.num_joints}")
        self.train_set = TopDownDataset(records, self.info, cfg.data, train=True, seed=cfg.seed)
        self.per_rank_batch = cfg.train.batch_size // dist.world_size
        self.sampler = ResumableSampler(self.train_set, dist.world_size, dist.rank, cfg.seed)
        self.iters_per_epoch = self.sampler.num_samples // self.per_rank_batch
        if self.iters_per_epoch < 1:
            raise UserError(f"config: train.batch_size: {cfg.train.batch_size} is larger than "
                            f"the {len(records)} training instances")
        # Every process predicts a share of the val split (rank 0 scores it).
        self.eval_set = build_eval_set(cfg, quiet=not dist.is_main)

        # Same seed on every rank, so every rank starts from the same weights (DDP also
        # broadcasts rank 0's at construction).
        torch.manual_seed(cfg.seed)
        net = ckpt_mod.build_model(arch, "arch")
        self.state = _State(best={"metric": self.format.best_metric, "value": None,
                                  "epoch": None})
        if resume_ckpt is not None:
            net.load_state_dict(resume_ckpt["model"])
        net.to(self.device)
        if cfg.train.channels_last:
            net = net.to(memory_format=torch.channels_last)
        if dist.distributed and self.device.type == "cuda":
            # Cross-GPU BatchNorm statistics; on CPU (gloo) torch has no SyncBatchNorm kernel.
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        self.net = net
        self.model: nn.Module = net
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(net, device_ids=[self.device.index] if self.device.type == "cuda"
                             else None)
        self.optimizer = _optimizer(cfg, self.net.parameters())
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(cfg.train.lr_steps), gamma=cfg.train.lr_factor)
        self.scaler = None
        if self.device.type == "cuda" and cfg.train.amp == "fp16":
            self.scaler = torch.amp.GradScaler("cuda")
        if cfg.train.amp != "none" and self.device.type != "cuda" and dist.is_main:
            print(f"autopose: train.amp={cfg.train.amp}: mixed precision is CUDA-only; "
                  "training in float32 on the CPU", file=sys.stderr)
        # (epoch, batch) of the newest last.pt, for the message when the loss diverges.
        self.last_saved: tuple[int, int] | None = None
        if resume_ckpt is not None:
            self._restore(resume_ckpt)
            self.last_saved = (self.state.epoch, self.state.iteration)
        self.writer: Any = None

    # -------------------------------------------------------------- checkpoint state

    def _train_state(self) -> dict[str, Any]:
        s = self.state
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": s.epoch, "iteration": s.iteration, "global_step": s.global_step,
                "loss_sum": s.loss_sum, "loss_count": s.loss_count, "best": dict(s.best),
                "log": list(s.log), "rng": rng_state(), "world_size": self.dist.world_size,
                "iters_per_epoch": self.iters_per_epoch}

    def _restore(self, ckpt: dict[str, Any]) -> None:
        ts = ckpt["train_state"]
        if ts["iteration"] and ts["world_size"] != self.dist.world_size:
            raise UserError(f"{self.out / LAST}: train_state.world_size: saved mid-epoch by "
                            f"{ts['world_size']} processes; resume it with as many (now "
                            f"{self.dist.world_size})")
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        if self.scaler is not None and ts.get("scaler"):
            self.scaler.load_state_dict(ts["scaler"])
        self.state = _State(epoch=ts["epoch"], iteration=ts["iteration"],
                            global_step=ts["global_step"], loss_sum=ts["loss_sum"],
                            loss_count=ts["loss_count"], best=dict(ts["best"]),
                            log=list(ts["log"]))
        set_rng_state(ts["rng"])

    def _save_last(self) -> None:
        """last.pt with the full training state (rank 0 writes; every rank notes it)."""
        self.last_saved = (self.state.epoch, self.state.iteration)
        if not self.dist.is_main:
            return
        metrics = self.state.log[-1].get("val") if self.state.log else None
        ckpt_mod.save_checkpoint(self.out / LAST, self.net, self.cfg, self.arch, self.info,
                                 self.state.epoch, metrics, train_state=self._train_state())

    # -------------------------------------------------------------- files

    def _write_run_files(self, resumed: bool) -> None:
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        # Temporary files of a run killed while writing (atomic_write's ".NAME.*.tmp").
        for stale in out.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        write_text(out / "config.yaml", dump_config(self.cfg))
        record = run_record(self.cfg.seed) | {
            "command": "train", "arch": ckpt_mod.describe_arch(self.arch),
            "world_size": self.dist.world_size, "device": str(self.device),
            "train_instances": len(self.train_set), "iters_per_epoch": self.iters_per_epoch,
            "params": sum(p.numel() for p in self.net.parameters())}
        runs = []
        if resumed and (out / "run.json").is_file():
            import json

            try:
                prev = json.loads((out / "run.json").read_text())
                runs = prev.get("resumes", [])
            except (OSError, ValueError):
                runs = []
            runs.append({"from_epoch": self.state.epoch, "from_iteration": self.state.iteration,
                         "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        record["resumes"] = runs
        write_json(out / "run.json", record)
        if self.arch["kind"] == "derived":
            write_json(out / "genotype.json", self.arch["genotype"])

    def _write_log(self) -> None:
        import json

        text = "".join(json.dumps(e) + "\n" for e in self.state.log)
        write_text(self.out / "log.jsonl", text)
        from autopose.viz.training import plot_training

        plot_training(self.state.log, self.out / "training.png", self.format.best_metric,
                      title=f"{ckpt_mod.describe_arch(self.arch)} - {self.out.name}")

    def _open_writer(self) -> None:
        if not self.dist.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events a killed run wrote after its last checkpoint.
        self.writer = SummaryWriter(str(self.out / "tb"),
                                    purge_step=self.state.global_step or None)

    # -------------------------------------------------------------- validation

    def validate(self) -> dict[str, float]:
        """Score the val split with the current weights: every process predicts its share
        of the boxes, rank 0 scores them all, every process gets the metrics."""
        # The unwrapped network: a DDP forward would broadcast buffers, a collective that
        # processes with different numbers of val batches would not match.
        self.net.eval()
        metrics = evaluate(self.cfg, network_heatmaps(self.net, self.device), self.eval_set,
                           results_path=self.out / "val_results.json", progress=self.progress,
                           part=(self.dist.rank, self.dist.world_size))
        self.net.train()
        return metrics

    # -------------------------------------------------------------- run

    def run(self, resumed: bool = False) -> TrainResult:
        cfg, s = self.cfg, self.state
        if self.dist.is_main:
            self._write_run_files(resumed)
            self._open_writer()
            where = f" from epoch {s.epoch} batch {s.iteration}" if resumed else ""
            print(f"autopose train: {ckpt_mod.describe_arch(self.arch)}, "
                  f"{sum(p.numel() for p in self.net.parameters()) / 1e6:.2f} M params, "
                  f"{len(self.train_set)} instances, {self.iters_per_epoch} batches of "
                  f"{cfg.train.batch_size} per epoch, {cfg.train.epochs} epochs, "
                  f"{self.dist.world_size} process(es) on {self.device}{where}; run folder "
                  f"{self.out}", file=sys.stderr)
        try:
            while s.epoch < cfg.train.epochs:
                self._train_epoch()
        finally:
            if self.writer is not None:
                self.writer.close()
        final = next((e["val"] for e in reversed(s.log) if e.get("val")), {})
        if self.dist.is_main:
            write_json(self.out / "metrics.json", {"final": final, "best": s.best,
                                                   "epochs": s.epoch})
            if final:
                print(format_table(final, percent=self.format.percent))
            print(f"best {s.best['metric']} {s.best['value']} at epoch {s.best['epoch']}; "
                  f"run folder: {self.out}")
        return TrainResult(self.net, final, dict(s.best), self.out)

    def _train_epoch(self) -> None:
        cfg, s, dist = self.cfg, self.state, self.dist
        epoch = s.epoch
        start = s.iteration
        t0 = time.time()
        self.train_set.set_epoch(epoch)
        self.sampler.set_position(epoch, start * self.per_rank_batch)
        # The loader's own generator (seeded per epoch) seeds its workers, so creating the
        # loader does not draw from the global RNG: resume and uninterrupted runs agree.
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        loader = make_loader(self.train_set, self.per_rank_batch, cfg.data.workers,
                             sampler=self.sampler, drop_last=True, generator=gen)
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(total=self.iters_per_epoch, initial=start, disable=not self.progress,
                   desc=f"epoch {epoch + 1}/{cfg.train.epochs}", leave=False, file=sys.stderr)
        it = start
        for batch in iterate(loader):
            if it >= self.iters_per_epoch:  # drop_last makes this unreachable; be explicit
                break
            loss = self._step(batch, epoch, it)
            it += 1
            s.iteration = it
            s.global_step += 1
            s.loss_sum += loss
            s.loss_count += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.2e}")
            if self.writer is not None and s.global_step % cfg.train.log_every == 0:
                self.writer.add_scalar("train/loss", loss, s.global_step)
            if (cfg.train.checkpoint_every and it % cfg.train.checkpoint_every == 0
                    and it < self.iters_per_epoch):
                self._save_last()
        bar.close()

        # End of the epoch: every rank holds rank 0's BatchNorm statistics from here on.
        dist_mod.broadcast_buffers(self.net)
        self.scheduler.step()
        entry: dict[str, Any] = {"epoch": epoch + 1, "loss": s.loss_sum / max(1, s.loss_count),
                                 "lr": lr, "seconds": round(time.time() - t0, 2)}
        s.epoch, s.iteration, s.loss_sum, s.loss_count = epoch + 1, 0, 0.0, 0
        if s.epoch % cfg.train.val_every == 0 or s.epoch == cfg.train.epochs:
            tv = time.time()
            metrics = self.validate()
            entry["val"] = metrics
            entry["val_seconds"] = round(time.time() - tv, 2)
            name = s.best["metric"]
            if s.best["value"] is None or metrics[name] > s.best["value"]:
                s.best.update(value=metrics[name], epoch=s.epoch)
                if dist.is_main:
                    # best.pt before last.pt: last.pt's record of the best names a file
                    # that exists.
                    ckpt_mod.save_checkpoint(self.out / BEST, self.net, cfg, self.arch,
                                             self.info, s.epoch, metrics)
        s.log.append(entry)
        self._save_last()
        if dist.is_main:
            self._write_log()
            if self.writer is not None:
                self.writer.add_scalar("train/epoch_loss", entry["loss"], s.epoch)
                self.writer.add_scalar("train/lr", lr, s.epoch)
                for k, v in (entry.get("val") or {}).items():
                    self.writer.add_scalar(f"val/{k}", v, s.epoch)
                self.writer.flush()
            val = entry.get("val")
            msg = (f"epoch {s.epoch}/{cfg.train.epochs}: loss {entry['loss']:.3e}, lr {lr:.1e}, "
                   f"{entry['seconds']:.1f} s")
            if val:
                name = s.best["metric"]
                msg += f"; val {name} {val[name]:.4f} (best {s.best['value']:.4f})"
            print(msg, file=sys.stderr)
        dist_mod.barrier()

    def _step(self, batch: dict[str, Any], epoch: int, it: int) -> float:
        """One optimisation step on a batch; returns the loss averaged over all ranks."""
        cfg = self.cfg
        images = normalize_batch(batch["image"].to(self.device, non_blocking=True),
                                 cfg.train.channels_last)
        target = batch["target"].to(self.device, non_blocking=True)
        weight = batch["target_weight"].to(self.device, non_blocking=True)
        with _autocast(cfg, self.device):
            output = self.model(images)
        loss = joints_mse_loss(output.float(), target, weight)
        # One scalar all-reduce per step: the logged loss is the global one, and every rank
        # sees a NaN at the same step, so all stop together.
        value = float(dist_mod.all_reduce_mean(loss.detach()))
        if not math.isfinite(value):
            if self.last_saved is None:
                kept = "no checkpoint had been written yet"
            else:
                e, b = self.last_saved
                kept = (f"{self.out / LAST} keeps the last good state (after epoch {e}"
                        + (f", batch {b} of epoch {e + 1})" if b else ")"))
            raise TrainingDiverged(
                f"{self.out}: training diverged: the loss is {value} at epoch {epoch + 1}, batch "
                f"{it + 1}; stopped without saving, {kept}; lower train.lr or set "
                "train.clip_grad, then train again (or --resume)")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if cfg.train.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.train.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if cfg.train.clip_grad > 0:
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.train.clip_grad)
            self.optimizer.step()
        return value


# ---------------------------------------------------------------------------- entry points


def prepare(config: Path | None, overrides: list[str], source: ArchSource, out: Path | None,
            resume: bool) -> tuple[Config, dict[str, Any] | ArchSource, Path,
                                   dict[str, Any] | None]:
    """Config, arch, run folder and (for --resume) the checkpoint to continue from."""
    if resume:
        if out is None:
            raise UserError("autopose train --resume: give --out, the run folder to continue")
        path = out / LAST
        if not path.is_file():
            raise UserError(f"{path}: no checkpoint to resume from (--resume continues the run "
                            "in --out)")
        ckpt = ckpt_mod.read_checkpoint(path)
        if not ckpt.get("train_state"):
            raise UserError(f"{path}: train_state: missing; the file cannot be resumed")
        cfg = ckpt_mod.checkpoint_config(ckpt, path)
        arch = ckpt["arch"]
        # The same command line again, plus --resume, is the usual way to resume: accept it
        # when it describes the same run, and say what differs when it does not.
        if config is not None or overrides:
            asked = resolve_data(load_config(config or DEFAULT_CONFIG, overrides))
            diff = _first_difference(to_dict(asked), to_dict(cfg))
            if diff is not None:
                raise UserError(f"{path}: config.{diff}: differs from the command line's; "
                                "--resume continues the run with its own config (drop "
                                "--config and the overrides)")
        if source.genotype is not None or source.model is not None:
            asked_arch = resolve_arch(source, cfg, arch["num_joints"])
            if asked_arch != arch:
                raise UserError(f"{path}: arch: differs from the --genotype/--model given")
        return cfg, arch, out, ckpt
    cfg = resolve_data(load_config(config or DEFAULT_CONFIG, overrides))
    out = out or default_run_dir("train")
    if (out / LAST).exists():
        raise UserError(f"{out}: already holds a training run ({LAST}); add --resume to "
                        "continue it, or give a new --out")
    if (source.genotype is None) == (source.model is None):
        raise UserError("autopose train: give exactly one of --genotype PATH or --model NAME")
    if source.genotype is not None:  # a bad genotype file fails before any data is read
        from autopose.search_space.genotype import Genotype

        Genotype.load(source.genotype)
    return cfg, source, out, None


def train(config: Path | None, overrides: list[str], source: ArchSource, out: Path | None,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """``autopose train``: set up (distributed when under torchrun), train, clean up."""
    dist = dist_mod.init_distributed()
    try:
        if dist.distributed:
            # One run folder for all ranks: rank 0's (its default has a timestamp).
            out = dist_mod.broadcast_object(out or default_run_dir("train"))
        cfg, arch, out, ckpt = prepare(config, overrides, source, out, resume)
        trainer = Trainer(cfg, arch, out, dist, resume_ckpt=ckpt, progress=progress)
        return trainer.run(resumed=ckpt is not None)
    finally:
        dist_mod.cleanup()


def run_train_command(config: Path | None, overrides: list[str], genotype: Path | None,
                      model: str | None, out: Path | None, resume: bool) -> int:
    train(config, overrides, ArchSource(genotype, model), out, resume)
    return 0
