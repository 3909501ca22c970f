"""The epoch/step loop: DDP, checkpoints every epoch and every N steps, exact resume,
ReduceLROnPlateau and early stopping on the monitored validation quantity, metrics and
progress.

Contract with a stage:

* ``objective(batch, generator) -> dict``: ``"loss"`` (backpropagated) plus detached
  scalar metrics; ``batch`` is the collated dict from the datasets, already on the device.
  An optional ``"monitor"`` term is what model selection, the plateau schedule and early
  stopping follow (SAR's objective leaves its adversarial term out of it); without one
  they follow ``"loss"``.
* ``optimizer_factory(objective) -> Optimizer`` (one optimizer; parameter groups carry
  per-module learning rates).
* ``save_best(objective, row)``: called on rank 0 when the monitored quantity improves.
* Datasets are map-style; one with ``set_epoch(epoch)`` gets it before each epoch.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from SARCore.config import check_choice, check_positive, to_dict
from SARCore.errors import CheckpointError, TrainingError
from SARCore.progress import NullReporter, Reporter
from SARCore.training import checkpoint as ckpt
from SARCore.training.batchnorm_stats import recalibrate_batchnorm
from SARCore.training.device import bf16_is_native, resolve_device, to_channels_last
from SARCore.training.distributed import (
    barrier,
    broadcast_flag,
    cleanup,
    gather_objects,
    group_active,
    init_distributed,
)
from SARCore.training.early_stopping import EarlyStopping
from SARCore.training.finite import check_loss, check_weights
from SARCore.training.loaders import PassLoader
from SARCore.training.meter import MeanMeter
from SARCore.training.metrics_log import plot_loss_curves, write_metrics_csv
from SARCore.training.sampler import ResumableDistributedSampler, ShardSampler
from SARCore.training.sync_batchnorm import convert_sync_batchnorm

log = logging.getLogger(__name__)

#: On an accelerator, the running loss is read from the device (a host sync) every this
#: many steps and at the end of each epoch; progress lines in between repeat the last value.
SYNC_EVERY = 20


@dataclass(frozen=True)
class LoopConfig:
    """Loop settings; defaults are MG's pre-training schedule."""

    epochs: int = 100
    max_steps: int = 0            # stop after this many optimizer steps in all (0: no limit)
    steps_per_epoch: int = 0      # cap on batches per epoch (0: one pass over the data)
    batch_size: int = 6
    patience: int = 50            # early stopping: epochs without validation improvement
    plateau_patience: int = 10    # ReduceLROnPlateau
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    min_delta: float = 1e-4
    checkpoint_every: int = 0     # extra checkpoint every N steps (0: end of epoch only)
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"             # bf16 autocast: auto (CUDA only), bf16, off
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0
    sync_batchnorm: bool = True   # under DDP, so N ranks x B equals one rank x N*B
    bn_recalibration: int = 8     # training batches that re-estimate batch-norm statistics
                                  # before each validation (0: keep the running averages)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "plateau_patience"):
            check_positive(name, getattr(self, name), integer=True)
        for name in ("max_steps", "steps_per_epoch", "checkpoint_every", "num_workers", "seed",
                     "bn_recalibration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                from SARCore.errors import ConfigError
                raise ConfigError(f"{name} must be a non-negative integer, not {value!r}")
        check_positive("plateau_factor", self.plateau_factor)
        check_choice("amp", self.amp, ("auto", "bf16", "off"))


@dataclass
class TrainResult:
    best_val: float
    best_epoch: int
    epochs_run: int
    global_step: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)


def _to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 5:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
    return batch


class _Run:
    """One call of :func:`train`; split in methods to keep each step readable."""

    def __init__(self, objective: nn.Module, optimizer_factory: Callable[[nn.Module], Any],
                 train_set: Dataset, val_set: Dataset | None, out_dir: Path,
                 config: LoopConfig, reporter: Reporter, stage: str,
                 save_best: Callable[[nn.Module, dict[str, Any]], None] | None):
        self.config, self.reporter, self.stage, self.out_dir = config, reporter, stage, out_dir
        self.info, self.device = init_distributed(resolve_device(config.device))
        torch.manual_seed(config.seed)
        if config.amp == "bf16" and not bf16_is_native(self.device):
            reporter.log(f"warning: {self.device.type} here has no native bf16 (a CPU needs "
                         "AVX512-BF16 or AMX) and runs it far slower than fp32; use --amp "
                         "auto or off")
        if self.info.enabled and config.sync_batchnorm:
            objective = convert_sync_batchnorm(objective, self.device)
        self.objective = objective.to(self.device)
        if config.channels_last:
            self.objective = to_channels_last(self.objective)
        self.optimizer = optimizer_factory(self.objective)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=config.plateau_factor, patience=config.plateau_patience,
            threshold=config.min_delta, threshold_mode="abs", min_lr=config.min_lr)
        self.stopper = EarlyStopping(config.patience, config.min_delta)
        self.model = self._wrap(self.objective)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed * 1000 + self.info.rank)
        self.train_set, self.val_set, self.save_best = train_set, val_set, save_best
        self.sampler = ResumableDistributedSampler(train_set, self.info.world_size,
                                                   self.info.rank, config.seed)
        self.batches_per_epoch = self.sampler.num_samples // config.batch_size
        if config.steps_per_epoch:
            self.batches_per_epoch = min(self.batches_per_epoch, config.steps_per_epoch)
        if self.batches_per_epoch == 0:
            from SARCore.errors import DataError
            raise DataError(f"{len(train_set)} training samples give no full batch of "  # type: ignore[arg-type]
                            f"{config.batch_size} per process", out_dir,
                            "lower --batch-size or add data")
        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.meter = MeanMeter(self.device)
        self._last_loss = math.nan
        self._loaders: dict[tuple[int, bool], PassLoader] = {}

    def _wrap(self, objective: nn.Module) -> nn.Module:
        """DDP first, then ``torch.compile`` around it: DDP's optimizer lets Dynamo split
        the graph at bucket boundaries so gradient all-reduces overlap the backward pass
        (compiling first hides the buckets). The corruptions stay eager (they run
        NumPy on a CPU), see ``SARCore.corruptions.pipeline``."""
        model = objective
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            unused = bool(getattr(objective, "find_unused_parameters", False))
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                        find_unused_parameters=unused)
        if self.config.compile:
            backend = os.environ.get("SAR_COMPILE_BACKEND", "inductor")  # aot_eager: debug
            model = torch.compile(model, backend=backend)  # type: ignore[assignment]
        return model

    @property
    def autocast(self) -> torch.autocast:
        amp = self.config.amp
        enabled = amp == "bf16" or (amp == "auto" and self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @property
    def total_steps(self) -> int:
        total = self.config.epochs * self.batches_per_epoch
        return min(total, self.config.max_steps) if self.config.max_steps else total

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """Shared state plus, under ``"ranks"``, every rank's own random streams and
        part-epoch metric sums (``"rng"``/``"meter"`` repeat rank 0's for older readers).
        Collective under DDP: every rank must call it."""
        own = {"rng": ckpt.capture_rng_state(self.generator), "meter": self.meter.state()}
        ranks = gather_objects(own, self.info)
        return {"model": self.objective.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "stopper": self.stopper.state_dict(),
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "global_step": self.global_step, "history": self.history,
                "meter": ranks[0]["meter"], "world_size": self.info.world_size,
                "config": to_dict(self.config), "rng": ranks[0]["rng"], "ranks": ranks}

    def save_checkpoint(self) -> None:
        """Every rank contributes its state; rank 0 writes the file."""
        state = self.checkpoint_state()
        if self.info.is_main:
            ckpt.save_checkpoint(self.out_dir / ckpt.CHECKPOINT_NAME, state)

    def resume(self) -> None:
        state = ckpt.load_checkpoint(self.out_dir / ckpt.CHECKPOINT_NAME)
        if state["world_size"] != self.info.world_size:
            raise CheckpointError(f"checkpoint was written by {state['world_size']} processes, "
                                  f"this run has {self.info.world_size}",
                                  self.out_dir / ckpt.CHECKPOINT_NAME,
                                  "resume with the same number of processes")
        try:
            self.objective.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"checkpoint does not fit this model/method: "
                                  f"{str(exc).splitlines()[0][:200]}",
                                  self.out_dir / ckpt.CHECKPOINT_NAME) from exc
        self.scheduler.load_state_dict(state["scheduler"])
        self.stopper.load_state_dict(state["stopper"])
        self.epoch, self.batch_in_epoch = state["epoch"], state["batch_in_epoch"]
        self.global_step, self.history = state["global_step"], list(state["history"])
        own = (state["ranks"][self.info.rank] if "ranks" in state
               else {"rng": state["rng"], "meter": state["meter"]})
        self.meter = MeanMeter(self.device, own["meter"])
        ckpt.restore_rng_state(own["rng"], self.generator)
        log.info("resumed at epoch %d, batch %d, step %d", self.epoch, self.batch_in_epoch,
                 self.global_step)

    # -- epochs ------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, sampler: Iterable[int], drop_last: bool = True
                ) -> Iterator[Any]:
        """Batches of ``sampler``'s items from the run's loader for ``dataset``, whose
        workers persist across epochs and passes (see :mod:`.loaders`)."""
        key = (id(dataset), drop_last)
        if key not in self._loaders:
            self._loaders[key] = PassLoader(
                dataset, self.config.batch_size, self.config.num_workers,
                self.device.type == "cuda", drop_last,
                seed=self.config.seed * 1_000_003 * 1009 + self.info.rank)
        return self._loaders[key].iterate(sampler, self.epoch)

    def train_epoch(self) -> bool:
        """Runs the rest of the current epoch; False when max_steps cut it short."""
        for dataset in (self.train_set, self.val_set):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(self.epoch)  # type: ignore[union-attr]
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start(self.batch_in_epoch * self.config.batch_size)
        self.objective.train()
        if self.global_step == 0:  # the bar starts at 0 %, before the first (slow) step
            self.reporter.progress(0, self.total_steps, f"epoch 1/{self.config.epochs}",
                                   stage=self.stage)
        for batch in self._loader(self.train_set, self.sampler):
            if self.batch_in_epoch >= self.batches_per_epoch:
                break
            if self.config.max_steps and self.global_step >= self.config.max_steps:
                return False
            self.train_step(batch)
        return True

    def train_step(self, batch: Any) -> None:
        batch = _to_device(batch, self.device, self.config.channels_last)
        with self.autocast:
            terms = self.model(batch, self.generator)
        loss = terms["loss"]
        lr = self.optimizer.param_groups[0]["lr"]
        # Every step on a CPU (no cost); a GPU checks at the read points (no per-step sync).
        every_step = self.device.type == "cpu"
        if every_step:
            check_loss(loss, self.global_step, self.stage, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if every_step or self._read_now():
            check_weights(self.objective.parameters(), self.global_step + 1, self.stage, lr)
        n = next(v for v in batch.values() if isinstance(v, torch.Tensor)).shape[0]
        self.meter.add(terms, n)
        self.batch_in_epoch += 1
        self.global_step += 1
        every = self.config.checkpoint_every
        checkpoint = bool(every) and self.global_step % every == 0
        if checkpoint or self._read_now():
            self._read_running_loss()
        if checkpoint:
            self.save_checkpoint()
        self.reporter.progress(self.global_step, self.total_steps,
                               f"epoch {self.epoch + 1}/{self.config.epochs}", stage=self.stage,
                               loss=round(self._last_loss, 6))

    def _read_now(self) -> bool:
        """Whether this step reads the running loss from the device: every step on a CPU
        (no cost), else every :data:`SYNC_EVERY` steps and at the end of an epoch, so a
        GPU's queue of steps is not drained each step."""
        return (self.device.type == "cpu" or self.global_step % SYNC_EVERY == 0
                or self.batch_in_epoch >= self.batches_per_epoch
                or self.global_step >= self.total_steps)

    def _read_running_loss(self) -> None:
        self._last_loss = self.meter.mean("loss")
        if not math.isfinite(self._last_loss):
            raise TrainingError(f"{self.stage} loss became {self._last_loss} by step "
                                f"{self.global_step}, so training stopped and no model was saved",
                                hint="the training diverged; lower the learning rate")

    def recalibrate_batchnorm(self, steps_this_epoch: int) -> None:
        """Batch-norm statistics for the current weights (see :mod:`.batchnorm_stats`),
        from up to ``bn_recalibration`` training batches, no more than the epoch trained.
        Its own sampler order and corruption generator leave the training stream (and so
        an exact resume) untouched."""
        n_batches = min(self.config.bn_recalibration, steps_this_epoch)
        sampler = ResumableDistributedSampler(self.train_set, self.info.world_size,
                                              self.info.rank, self.config.seed + 7919)
        sampler.set_epoch(self.epoch)
        generator = torch.Generator(device=self.device)
        generator.manual_seed((self.config.seed * 1009 + self.epoch) * 1009 + self.info.rank)

        def forward(batch: Any) -> None:
            with self.autocast:
                self.objective(_to_device(batch, self.device, self.config.channels_last),
                               generator)
        recalibrate_batchnorm(self.objective, self._loader(self.train_set, sampler),
                              n_batches, forward)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.val_set is None:
            return {}
        self.objective.eval()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.config.seed + 1_000_003)  # same corruptions every epoch
        meter = MeanMeter(self.device)
        sampler = ShardSampler(len(self.val_set), self.info.world_size,  # type: ignore[arg-type]
                               self.info.rank)
        batches = math.ceil(len(sampler) / self.config.batch_size)
        stage = f"{self.stage} validation"
        self.reporter.progress(0, batches, f"epoch {self.epoch + 1}", stage=stage)
        loader = self._loader(self.val_set, sampler, drop_last=False)
        for number, batch in enumerate(loader, start=1):
            batch = _to_device(batch, self.device, self.config.channels_last)
            with self.autocast:
                terms = self.objective(batch, generator)
            meter.add(terms, next(v for v in batch.values() if isinstance(v, torch.Tensor)).shape[0])
            self.reporter.progress(number, batches, f"epoch {self.epoch + 1}", stage=stage)
        return meter.means(self.info)

    def end_epoch(self, seconds: float) -> bool:
        """Validation, scheduling, best model, files; True when training should stop."""
        train = self.meter.means(self.info)
        self.recalibrate_batchnorm(self.batch_in_epoch)
        val = self.validate()
        monitored = _monitored(val) if val else _monitored(train)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step,
                               "lr": self.optimizer.param_groups[0]["lr"],
                               "seconds": round(seconds, 2)}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        self.scheduler.step(monitored)
        improved = self.stopper.update(monitored, self.epoch + 1)
        self.history.append(row)
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.meter = MeanMeter(self.device)
        if self.info.is_main and improved and self.save_best is not None:
            self.save_best(self.objective, row)
        self.save_checkpoint()
        if self.info.is_main:
            write_metrics_csv(self.out_dir / "metrics.csv", self.history)
            plot_loss_curves(self.out_dir / "loss_curves.png", self.history, self.stage)
        self.reporter.log(f"{self.stage} epoch {self.epoch}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float) and k != "seconds"))
        return broadcast_flag(self.stopper.should_stop, self.device, self.info)


def _monitored(means: dict[str, float]) -> float:
    """The quantity selection follows: ``monitor`` when the objective gives one."""
    return means.get("monitor", means.get("loss", math.inf))


def train(objective: nn.Module, optimizer_factory: Callable[[nn.Module], Any],
          train_set: Dataset, val_set: Dataset | None, out_dir: str | Path,
          config: LoopConfig, *, resume: bool = False,
          save_best: Callable[[nn.Module, dict[str, Any]], None] | None = None,
          reporter: Reporter | None = None, stage: str = "train") -> TrainResult:
    """Train ``objective`` until epochs, ``max_steps`` or early stopping end it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    owns_group = not group_active()  # else the caller's process_group() leaves it
    run = _Run(objective, optimizer_factory, train_set, val_set, out_dir, config,
               reporter or NullReporter(), stage, save_best)
    try:
        if resume:
            run.resume()
        stopped_early = run.stopper.should_stop
        while not stopped_early and run.epoch < config.epochs:
            started = time.monotonic()
            finished = run.train_epoch()
            if not finished and run.batch_in_epoch == 0:
                break
            stopped_early = run.end_epoch(time.monotonic() - started)
            if not finished or (config.max_steps and run.global_step >= config.max_steps):
                break
        if owns_group:  # every rank done sending before the group goes (see process_group)
            barrier(run.info)
        return TrainResult(run.stopper.best, run.stopper.best_epoch, run.epoch, run.global_step,
                           stopped_early, run.history)
    finally:
        if owns_group:
            cleanup(run.info)
