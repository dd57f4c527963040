"""The trainer: fit / train_one_epoch / evaluate / predict for any torch model.

One fold at a time: AdamW (the fused kernel on CPU and CUDA), the warmup-cosine LR applied
every optimizer step (or ReduceLROnPlateau per epoch), mixed precision, gradient clipping
and accumulation, early stopping on the validation metric (or loss), the best checkpoint
named with its epoch and score, and `last.pt` (model, optimizer, scaler, scheduler, early
stopping, RNG) written atomically every epoch so `--resume` continues where a run was cut.

    trainer = Trainer(cfg, fold_dir, device, metric, Objective("classification", 2))
    result = trainer.fit(model, train_loader, valid_loader)
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from kit.config import Config
from kit.errors import CheckpointError, DataError
from kit.io import save_torch
from kit.metrics.registry import Metric
from kit.models.heads import param_groups
from kit.objective import Objective
from kit.runtime import distributed as dist
from kit.runtime.devices import autocast_dtype, fused_adamw_ok, to_device
from kit.training.checkpoints import (
    best_name,
    drop_stale_best,
    load_last,
    make_ema,
    save_last,
)
from kit.training.early_stopping import EarlyStopping
from kit.training.schedule import lr_at, warn_if_frozen
from kit.training.track import HISTORY_FILE, History, NullTracker, renamed_rows


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    best_path: Path | None
    stop_reason: str
    history: list[dict] = field(default_factory=list)


@dataclass
class _Fit:
    """What one fit holds across its epochs."""

    model: nn.Module  # unwrapped
    net: nn.Module | None  # what trains: DDP-wrapped and / or compiled
    train: object  # the training loader
    valid: object
    labels: np.ndarray  # the metric's targets by row position
    opt: torch.optim.Optimizer
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau
    stopper: EarlyStopping
    on_epoch_start: object = None  # (model, epoch) -> None
    weight: np.ndarray | None = None  # data.weight by row position: the metric weighs rows


# Progress bars: None shows them on a terminal only (tqdm's default), True always.
PROGRESS: bool | None = None


def model_inputs(batch: dict) -> dict:
    """What the model reads: a batch less its targets, row positions and row weights."""
    return {k: v for k, v in batch.items() if k not in ("y", "index", "w")}


class Trainer:
    def __init__(self, cfg: Config, fold_dir: Path, device: torch.device, metric: Metric,
                 objective: Objective, *, deadline: float | None = None, tracker=None,
                 desc: str = ""):
        self.cfg, self.t = cfg, cfg.train
        self.fold_dir, self.device, self.metric = Path(fold_dir), device, metric
        self.objective = objective  # loss and outputs -> predictions (kit/objective.py)
        self.deadline = deadline  # time.monotonic() value the fold must finish by
        self.tracker, self.desc = tracker or NullTracker(), desc
        self.main = dist.is_main()  # only rank 0 prints and writes files
        self.amp_dtype = autocast_dtype(self.t.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.ema = None  # ModelEmaV3 while fit runs with train.ema_decay
        # applied to training batches only, on the device (image tasks: MixUp / CutMix)
        self.train_batch_transform = None
        warn_if_frozen(self.t.min_lr)
        if self.t.scheduler == "plateau" and self.t.plateau_patience >= self.t.patience:
            warnings.warn(
                f"train.plateau_patience = {self.t.plateau_patience} >= train.patience = "
                f"{self.t.patience}: early stopping fires before the reduced LR gets a chance; "
                "make train.patience larger", stacklevel=2)

    # --- optimizer and schedule -----------------------------------------------------------
    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        o = self.cfg.optim
        # head vs backbone LR, no decay on biases and norms; each group carries the
        # lr_mult that set_lr scales it by
        groups = param_groups(model, lr=o.lr, backbone_lr_mult=o.backbone_lr_mult,
                                     weight_decay=o.weight_decay)
        return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay,
                                 fused=fused_adamw_ok(model))

    def set_lr(self, opt: torch.optim.Optimizer, steps_per_epoch: int) -> float:
        warmup = round(self.t.warmup_epochs * steps_per_epoch)
        if self.t.scheduler == "plateau" and self.step >= warmup:
            return opt.param_groups[0]["lr"] / opt.param_groups[0].get("lr_mult", 1.0)
        lr = lr_at(self.step, lr=self.cfg.optim.lr, total_steps=self.t.epochs * steps_per_epoch,
                   warmup_steps=warmup, min_lr=self.t.min_lr)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        return lr

    # --- one epoch ------------------------------------------------------------------------
    def train_one_epoch(self, model, loader, opt, epoch: int) -> dict:
        model.train()
        steps = self._steps_per_epoch(loader)
        accum, cap = self.t.accum_steps, self.t.max_steps_per_epoch * self.t.accum_steps
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        seen, shown, start = 0, time.perf_counter(), time.perf_counter()
        bar = tqdm(loader, total=self._batches(loader), leave=False, dynamic_ncols=True,
                   desc=f"{self.desc} epoch {epoch}", disable=self._bar_disabled())
        lr, pending = self.set_lr(opt, steps), 0
        n_batches = self._batches(loader)  # None: a loader without len()
        # DDP: all-reduce gradients only on the micro-step that steps the optimizer; that
        # needs the epoch's last batch known, or a final partial step would be unsynced
        skip_sync = accum > 1 and n_batches is not None and hasattr(model, "no_sync")
        # the time spent waiting for the loader's next batch (timm's data_time): a share
        # near 0 means the network, not the loader, sets the pace
        waited, asked = 0.0, time.perf_counter()
        for i, batch in enumerate(bar):
            waited += time.perf_counter() - asked
            if cap and i >= cap:
                break
            batch = to_device(batch, self.device, channels_last=self.t.channels_last)
            if self.train_batch_transform is not None:
                batch = self.train_batch_transform(batch)
            last_micro = (i + 1) % accum == 0 or i + 1 == n_batches
            sync = model.no_sync() if skip_sync and not last_micro else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    loss = self.objective.loss(model(**model_inputs(batch)), batch["y"],
                                               batch.get("w"))
                self.scaler.scale(loss / accum if accum > 1 else loss).backward()
            pending += 1
            if last_micro:
                self._optimizer_step(model, opt)
                lr, pending = self.set_lr(opt, steps), 0
            n = len(batch["y"])
            total_loss.add_(loss.detach(), alpha=n)  # stays on the device: no sync per batch
            seen += n
            now = time.perf_counter()
            if now - shown > 0.5 or (self.tracker.every_steps and last_micro
                                     and self.step % self.tracker.every_steps == 0):
                running = total_loss.item() / seen  # one sync, at most twice a second
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.2e}",
                                rate=f"{seen / (now - start):.0f}/s", refresh=False)
                if self.tracker.every_steps and self.main:
                    self.tracker.log_step(self.step, {"loss": running, "lr": lr})
                shown = now
            asked = time.perf_counter()
        if pending:  # a partial accumulation left by a loader without len()
            self._optimizer_step(model, opt)
        bar.close()
        seconds = time.perf_counter() - start
        train_loss = dist.mean_across_ranks(total_loss.item() / max(seen, 1), self.device)
        return {"train_loss": train_loss, "lr": lr, "samples_per_s": seen / max(seconds, 1e-9),
                "data_wait": waited / max(seconds, 1e-9)}

    def _autocast(self):
        if self.amp_dtype is None:  # a disabled autocast still costs a context per step
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _bar_disabled(self) -> bool | None:
        if not self.main:
            return True
        return None if PROGRESS is None else not PROGRESS  # None: only on a terminal

    def _optimizer_step(self, model, opt) -> None:
        if self.t.clip_grad > 0:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), self.t.clip_grad)
        self.scaler.step(opt)
        self.scaler.update()
        opt.zero_grad(set_to_none=True)
        self.step += 1
        if self.ema is not None:
            self.ema.update(self._ema_source, step=self.step)

    def _batches(self, loader) -> int | None:
        try:
            n = len(loader)
        except TypeError:
            return None
        cap = self.t.max_steps_per_epoch * self.t.accum_steps
        return min(n, cap) if cap else n

    def _steps_per_epoch(self, loader) -> int:
        return max(1, math.ceil((self._batches(loader) or 1) / self.t.accum_steps))

    # --- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model, loader, *, with_loss: bool = False):
        """Predictions (N, C) probabilities or (N, 1) original-scale values, and row
        positions (N,), for every batch of `loader`."""
        model.eval()
        probas, index, losses, shares = [], [], [], []
        for batch in loader:
            batch = to_device(batch, self.device, channels_last=self.t.channels_last)
            with self._autocast():
                logits = model(**model_inputs(batch))
            if with_loss:  # weighted rows (batch "w"): their weights' share, else one each
                share = batch["w"].sum() if "w" in batch else torch.tensor(
                    float(len(logits)), device=logits.device)
                losses.append(self.objective.loss(logits.float(), batch["y"], batch.get("w"))
                              .detach() * share)
                shares.append(share)  # summed once after the loop: no sync per batch
            probas.append(self.objective.predict(logits))
            index.append(batch["index"])
        if not probas:
            raise CheckpointError(f"{self.desc}: the prediction loader yielded no batches")
        proba = self.objective.to_original(torch.cat(probas).double().cpu().numpy())
        idx = torch.cat(index).cpu().numpy()
        proba, idx = dist.gather_rows(proba, idx)  # every rank: all rows, each once
        if not with_loss:
            return proba, idx
        seen = float(torch.stack(shares).sum()) if shares else 0.0
        loss = dist.mean_across_ranks(float(torch.stack(losses).sum()) / max(seen, 1), self.device)
        return proba, idx, loss

    def predict_rows(self, model, loader, rows: np.ndarray) -> np.ndarray:
        """Predictions in the order of `rows`: loaders yield rows in their own order (a
        shuffled file order, ranks' shares); a row the loader never yielded is an error."""
        proba, index = self.predict(model, loader)
        order = pd.Index(index).get_indexer(rows)
        if (order < 0).any():
            raise DataError(f"{self.desc or 'prediction'}: the loader missed "
                            f"{(order < 0).sum()} of {len(rows)} rows")
        return proba[order]

    def evaluate(self, model, loader, labels: np.ndarray, weight: np.ndarray | None = None
                 ) -> dict:
        """Validation loss and metric; `labels` are the metric's targets by row position
        (class indices, or original-scale values), `weight` the rows' data.weight (the loss
        weighs them through the batches' "w")."""
        proba, idx, loss = self.predict(model, loader, with_loss=True)
        if not np.isfinite(proba).all():  # a diverged network: early stopping says so
            return {"valid_loss": loss, "valid_metric": math.nan}
        rows = None if weight is None else weight[idx]
        return {"valid_loss": loss, "valid_metric": self.metric(labels[idx], proba, rows)}

    # --- the fold -------------------------------------------------------------------------
    def fit(self, model, train_loader, valid_loader, valid_labels: np.ndarray, *,
            resume: bool = False, on_epoch_start=None,
            valid_weight: np.ndarray | None = None) -> FitResult:
        """Train with early stopping; `model` (unwrapped) ends with the last epoch's weights.
        `valid_weight`: data.weight by row position, for the validation metric."""
        p = self._start(model, train_loader, valid_loader, valid_labels, on_epoch_start,
                        valid_weight)
        history = History(self.fold_dir / HISTORY_FILE, write=self.main)
        best_path, start_epoch = None, 0
        if resume and (self.fold_dir / "last.pt").exists():
            start_epoch, best_path = self._load_last(model, p.opt, p.plateau, p.stopper, history)
        p.net = dist.wrap(model, self.device)  # DDP under torchrun, else the model itself
        if self.t.compile:
            p.net = torch.compile(p.net)
        epoch_seconds, reason = 0.0, ""
        for epoch in range(start_epoch, self.t.epochs):
            if self._out_of_time(epoch_seconds):
                reason = "time budget (--max-time) reached"
                break
            row, best_path = self._epoch(p, epoch, best_path)
            epoch_seconds = max(epoch_seconds, row["seconds"])
            history.append(row)
            self._report(row, p.stopper)
            self._save_last(model, p.opt, p.plateau, p.stopper, history, epoch, best_path)
            self._drop_stale_best(best_path)
            if p.stopper.stopped:
                reason = p.stopper.reason
                break
        else:
            reason = reason or f"finished {self.t.epochs} epochs"
        if not dist.replicas_agree(model):
            raise CheckpointError("DDP ranks ended the fold with different weights; a rank "
                                  "trained on other data or skipped a step (report this)")
        if self.main:
            tqdm.write(f"{self.desc} stopped: {reason}; best epoch {p.stopper.best_epoch}")
        best = p.stopper.best if p.stopper.best is not None else math.nan
        return FitResult(p.stopper.best_epoch, best, best_path, reason, history.rows)

    def _start(self, model, train_loader, valid_loader, valid_labels, on_epoch_start,
               valid_weight=None) -> _Fit:
        """The model on the device, the optimizer, the plateau scheduler, early stopping and
        the EMA copy for one fit (`net` is set once a resume has loaded the weights)."""
        model.to(self.device)
        if self.t.channels_last:
            model.to(memory_format=torch.channels_last)
        opt = self.make_optimizer(model)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max" if self._monitor_mode() == "max" else "min",
            factor=self.t.plateau_factor, patience=self.t.plateau_patience)
        stopper = EarlyStopping(patience=self.t.patience, mode=self._monitor_mode(),
                                min_delta=self.t.min_delta, min_delta_mode=self.t.min_delta_mode)
        self.ema = make_ema(model, self.t.ema_decay)
        self._ema_source = model  # the unwrapped model: every DDP rank holds the same weights
        return _Fit(model, None, train_loader, valid_loader, valid_labels, opt, plateau, stopper,
                    on_epoch_start, valid_weight)

    def _epoch(self, p: _Fit, epoch: int, best_path: Path | None) -> tuple[dict, Path | None]:
        """One epoch: train, validate (raw and EMA weights), step the plateau scheduler and
        early stopping, save the best weights; the epoch's history row and best path."""
        started = time.monotonic()
        set_epoch(p.train, epoch)
        if p.on_epoch_start:
            p.on_epoch_start(p.model, epoch)
        row = {"epoch": epoch, **self.train_one_epoch(p.net, p.train, p.opt, epoch)}
        row.update(self.evaluate(p.net, p.valid, p.labels, p.weight))
        monitored, score, best_model = self._better_weights(row, p)
        if self.t.scheduler == "plateau":
            p.plateau.step(monitored)
        if p.stopper.step(monitored, epoch):
            best_path = self._save_best(best_model, epoch, score, best_path,
                                        weights=row.get("weights", "raw"))
        row["step"] = self.step  # optimizer steps so far (this rank's share under DDP)
        row["seconds"] = time.monotonic() - started
        return row, best_path

    def _better_weights(self, row: dict, p: _Fit) -> tuple[float, float, nn.Module]:
        """(monitored value, metric, weights) of the epoch: with train.ema_decay both the raw
        and the EMA weights are validated and the better one counts (row["weights"])."""
        if self.ema is None:
            return self._monitored(row), row["valid_metric"], p.model
        ema_row = self.evaluate(self.ema.module, p.valid, p.labels, p.weight)
        row.update({f"ema_{k}": v for k, v in ema_row.items()})
        row["weights"] = "raw"
        if p.stopper.is_better(self._monitored(ema_row), self._monitored(row)):
            row["weights"] = "ema"
            return self._monitored(ema_row), ema_row["valid_metric"], self.ema.module
        return self._monitored(row), row["valid_metric"], p.model

    def _monitor(self) -> str:
        """train.monitor with "auto" resolved: a label metric (accuracy, f1) jumps with a few
        argmax flips on a small validation set while the loss still falls (kit/config.py)."""
        if self.t.monitor != "auto":
            return self.t.monitor
        return "loss" if self.metric.scores == "labels" else "metric"

    def _monitored(self, row: dict) -> float:
        return row["valid_metric"] if self._monitor() == "metric" else row["valid_loss"]

    def _monitor_mode(self) -> str:
        return self.metric.mode if self._monitor() == "metric" else "min"

    def _out_of_time(self, epoch_seconds: float) -> bool:
        return self.deadline is not None and time.monotonic() + epoch_seconds > self.deadline

    def _report(self, row: dict, stopper: EarlyStopping) -> None:
        if not self.main:
            return
        mark = " *" if stopper.best_epoch == row["epoch"] else ""
        ema = (f"  ema {row['ema_valid_metric']:.4f}" + (" (kept)" if row["weights"] == "ema" else "")
               if "ema_valid_metric" in row else "")
        tqdm.write(f"{self.desc} epoch {row['epoch']:3d}  train_loss {row['train_loss']:.4f}  "
                   f"valid_loss {row['valid_loss']:.4f}  {self.metric.name} {row['valid_metric']:.4f}"
                   f"{ema}  lr {row['lr']:.2e}  {row['seconds']:.1f}s{mark}")
        if self.tracker:
            self.tracker.log_epoch(row)

    def _save_best(self, model, epoch: int, score: float, previous: Path | None, *,
                   weights: str = "raw") -> Path:
        """The epoch's better weights under "model"; meta["weights"] says which ("raw" or
        "ema"), so predict and the ensemble need nothing special."""
        path = best_name(self.fold_dir, epoch, self.metric.name, score)
        if self.main:
            save_torch(path, {"model": model.state_dict(),
                              "meta": {**self._meta(epoch, score), "weights": weights}})
        return path  # `previous` goes once last.pt names the new one (_drop_stale_best)

    def _drop_stale_best(self, best_path: Path | None) -> None:
        if self.main and best_path is not None:
            drop_stale_best(self.fold_dir, best_path)

    def _meta(self, epoch: int, score: float) -> dict:
        return {"epoch": epoch, "score": score, "metric": self.metric.name,
                "model": self.cfg.model.name, "problem": self.objective.problem,
                "n_outputs": self.objective.n_outputs}

    def _save_last(self, model, opt, plateau, stopper, history, epoch, best_path) -> None:
        if self.main:
            save_last(self.fold_dir, model, opt, {
                "scaler": self.scaler, "plateau": plateau, "early_stopping": stopper},
                epoch=epoch, step=self.step, best_path=best_path, history=history.rows,
                meta=self._meta(epoch, math.nan), ema=self.ema)

    def _load_last(self, model, opt, plateau, stopper, history):
        state = load_last(self.fold_dir / "last.pt", self.cfg.model.name, model, opt,
                          ema=self.ema, parts={"scaler": self.scaler, "plateau": plateau,
                                               "early_stopping": stopper})
        self.step = state["step"]
        history.rows = renamed_rows(state["history"])  # an older kit's names read as today's
        best = self.fold_dir / state["best_path"] if state["best_path"] else None
        if self.main:
            tqdm.write(f"{self.desc} resumed after epoch {state['epoch']}")
        return state["epoch"] + 1, best


def set_epoch(loader, epoch: int) -> None:
    """Give the epoch to whatever orders the batches: a stream, a sampler, device batches."""
    for obj in (loader, getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return
