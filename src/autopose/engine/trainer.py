"""Training a derived network (or a baseline) from scratch: ``autopose train``.

Paper section 4.2 and SPEC section 4: Adam, a multi-step schedule, the weighted heatmap MSE
(0.5 x mean, HRNet's JointsMSELoss), validation every ``train.val_every`` epochs scored by
:func:`autopose.evaluation.pipeline.evaluate` (AP, or PCKh Mean on MPII).

The run folder's files are listed in :mod:`autopose.engine.train_files`; the settings are
checked and the folder prepared (or resumed) by :mod:`autopose.engine.train_setup`.

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
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from autopose.config import Config
from autopose.data.formats import dataset_format
from autopose.data.loader import iterate, make_loader
from autopose.data.sampler import ResumableSampler
from autopose.data.topdown import TopDownDataset
from autopose.data.transforms import normalize_batch
from autopose.engine import distributed as dist_mod
from autopose.engine import optim
from autopose.engine.checkpoint import save_checkpoint
from autopose.engine.distributed import DistInfo
from autopose.engine.loss import joints_mse_loss
from autopose.engine.resume import (TrainProgress, restore_train_state, seed_everything,
                                    train_state)
from autopose.engine.train_files import BEST, LAST, open_writer, write_log, write_run_files
from autopose.engine.train_setup import check_train_config, prepare
from autopose.errors import UserError
from autopose.evaluation.coco_metric import format_table
from autopose.evaluation.pipeline import build_eval_set, evaluate, network_heatmaps
from autopose.io import default_run_dir
from autopose.io import write_json
from autopose.models.build import ArchSource, ArchSpec, build_model, resolve_arch


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained network (unwrapped) and its metrics."""

    model: nn.Module
    final: dict[str, float]
    best: dict[str, Any]
    out: Path


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
        # The arch entry goes into every checkpoint of the run as given; the spec builds.
        self.spec = ArchSpec.from_dict(arch, "arch")
        net = build_model(self.spec)
        self.state = TrainProgress(best={"metric": self.format.best_metric, "value": None, "epoch": None})
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
            self.model = DDP(net, device_ids=[self.device.index] if self.device.type == "cuda"
                             else None)
        self.optimizer = optim.for_training(cfg.train, self.net.parameters())
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(cfg.train.lr_steps), gamma=cfg.train.lr_factor)
        self.scaler = optim.grad_scaler(cfg.train.amp, self.device)
        if cfg.train.amp != "none" and self.device.type != "cuda" and dist.is_main:
            print(f"autopose: train.amp={cfg.train.amp}: mixed precision is CUDA-only; "
                  "training in float32 on the CPU", file=sys.stderr)
        # (epoch, batch) of the newest last.pt, for the message when the loss diverges.
        self.last_saved: tuple[int, int] | None = None
        if resume_ckpt is not None:
            self.state = restore_train_state(resume_ckpt["train_state"], self.optimizer,
                                             self.scheduler, self.scaler,
                                             self.dist.world_size, self.out / LAST)
            self.last_saved = (self.state.epoch, self.state.iteration)
        self.writer: Any = None

    # -------------------------------------------------------------- checkpoint state

    def _save_last(self) -> None:
        """last.pt with the full training state (rank 0 writes; every rank notes it)."""
        self.last_saved = (self.state.epoch, self.state.iteration)
        if not self.dist.is_main:
            return
        metrics = self.state.log[-1].get("val") if self.state.log else None
        save_checkpoint(self.out / LAST, self.net, self.cfg, self.arch, self.info,
                        self.state.epoch, metrics, train_state=train_state(
                            self.state, self.optimizer, self.scheduler, self.scaler,
                            self.dist.world_size, self.iters_per_epoch))

    # -------------------------------------------------------------- files

    def _write_log(self) -> None:
        write_log(self.out, self.state.log, self.format.best_metric,
                  title=f"{self.spec.describe()} - {self.out.name}")

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
            write_run_files(self.out, cfg, {
                "arch": self.spec.describe(), "world_size": self.dist.world_size,
                "device": str(self.device), "train_instances": len(self.train_set),
                "iters_per_epoch": self.iters_per_epoch,
                "params": sum(p.numel() for p in self.net.parameters())},
                resumed, (s.epoch, s.iteration),
                self.arch["genotype"] if self.spec.kind == "derived" else None)
            self.writer = open_writer(self.out, s.global_step)
            where = f" from epoch {s.epoch} batch {s.iteration}" if resumed else ""
            print(f"autopose train: {self.spec.describe()}, "
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
                    save_checkpoint(self.out / BEST, self.net, cfg, self.arch, self.info,
                                    s.epoch, metrics)
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
        with optim.autocast(cfg.train.amp, self.device):
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
