"""Tracking: history.csv per fold always; Weights & Biases when asked for.

wandb layout: one wandb run per fold, grouped by the CV run (`group=<run folder name>`,
`job_type="fold"`), finished after its fold, plus one `job_type="cv"` run holding the
fold mean ± std. Train metrics are logged per optimizer step against their own axis
`train/step`, validation metrics per epoch against `epoch` (`define_metric`), so the two
never fight over wandb's single `_step` and nothing is dropped as non-increasing.
Without credentials (no WANDB_API_KEY, no `wandb login`) runs are written offline under
the run folder and can be uploaded later with `wandb sync`.

    tracker = make_tracker(cfg, run_dir)       # NullTracker unless track.wandb is on
    tracker.start_fold(0); tracker.log_step(step, {...}); tracker.log_epoch(row)
    tracker.finish_fold(); tracker.finish_cv(scores)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from kit.io import write_csv

HISTORY_FILE = "history.csv"  # a fold's rows (kit/run_folder/ reads and writes it for the run)
# history.csv columns an older kit wrote for a network, and their names now (valid_, as the
# boosters' rows: one prefix in every history.csv); read back in the new names
OLD_HISTORY = {"val_loss": "valid_loss", "val_metric": "valid_metric",
               "ema_val_metric": "ema_valid_metric"}


def renamed_rows(rows: list[dict]) -> list[dict]:
    """History rows as read (history.csv, last.pt), an older kit's column names renamed."""
    return [{OLD_HISTORY.get(k, k): v for k, v in row.items()} for row in rows]


class History:
    """Per-epoch rows of one fold, rewritten atomically to history.csv after every epoch."""

    def __init__(self, path: Path, *, write: bool = True):
        self.path = Path(path)
        self.rows: list[dict] = []
        self.write = write  # False on DDP ranks other than 0

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))
        if self.write:
            write_csv(self.path, pd.DataFrame(self.rows))


class NullTracker:
    """Tracking off: every call does nothing."""

    every_steps = 0

    def start_fold(self, fold: int) -> None: ...

    def log_step(self, step: int, values: dict) -> None: ...

    def log_epoch(self, row: dict) -> None: ...

    def finish_fold(self, summary: dict | None = None) -> None: ...

    def finish_cv(self, scores: dict) -> None: ...


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandbTracker:
    every_steps = 10  # train metrics every N optimizer steps: enough for a curve, cheap

    def __init__(self, cfg, run_dir: Path):
        import wandb

        self.wandb, self.cfg, self.run_dir = wandb, cfg, Path(run_dir)
        if "WANDB_MODE" not in os.environ and not has_wandb_credentials():
            os.environ["WANDB_MODE"] = "offline"
            print("wandb: no credentials found; logging offline under "
                  f"{self.run_dir / 'wandb'} (upload later with `wandb sync`)")
        self.run = None
        self.entity = cfg.track.entity or os.environ.get("WANDB_ENTITY") or None

    def _init(self, name: str, job_type: str):
        return self.wandb.init(
            project=self.cfg.track.project, entity=self.entity, group=self.run_dir.name,
            job_type=job_type, name=name, dir=str(self.run_dir),
            config=dataclasses.asdict(self.cfg), reinit="finish_previous")

    def start_fold(self, fold: int) -> None:
        self.run = self._init(f"{self.run_dir.name}-fold{fold}", "fold")
        self.run.define_metric("train/step")
        self.run.define_metric("train/*", step_metric="train/step")
        self.run.define_metric("epoch")
        self.run.define_metric("valid/*", step_metric="epoch")
        self.run.define_metric("lr", step_metric="epoch")

    def log_step(self, step: int, values: dict) -> None:
        self.run.log({"train/step": step, **{f"train/{k}": v for k, v in values.items()}})

    def log_epoch(self, row: dict) -> None:
        self.run.log({"epoch": row["epoch"], "lr": row["lr"], "valid/loss": row["valid_loss"],
                      "valid/metric": row["valid_metric"], "valid/train_loss": row["train_loss"],
                      **({"valid/ema_metric": row["ema_valid_metric"]} if "ema_valid_metric" in row
                         else {})})

    def finish_fold(self, summary: dict | None = None) -> None:
        if self.run is not None:
            self.run.summary.update(summary or {})
            self.run.finish()
            self.run = None

    def finish_cv(self, scores: dict) -> None:
        run = self._init(f"{self.run_dir.name}-cv", "cv")
        run.summary.update({"cv/mean": scores["mean"], "cv/std": scores["std"],
                            "cv/oof": scores["oof"], "cv/metric": scores["metric"],
                            **{f"cv/fold{i}": s for i, s in enumerate(scores["fold_scores"])}})
        run.finish()


def make_tracker(cfg, run_dir: Path, *, main: bool = True):
    """WandbTracker when track.wandb is on (rank 0 only), else a NullTracker."""
    if cfg.track.wandb and main:
        return WandbTracker(cfg, run_dir)
    return NullTracker()
