"""Refit on all rows (train.refit, `train.py --refit [only|with_folds] --seeds N`).

After the CV, the run's model kind is trained once more on every training row, for a
length fixed by the folds, once per seed (model seed train.seed + i, i < train.refit_seeds):

- boosters (lgbm, xgb, catboost): rounds = round(mean of the fold fits' best rounds x
  K / (K - 1)), K = cv.n_splits (a fold trains on (K - 1) / K of the rows; under
  cv.repeats the mean is over every fold fit and K stays n_splits). A fold whose best round
  is its last round was stopped by the round budget, not the data: warned, naming
  model.params.<kind>.rounds;
- networks (mlp, tabm): epochs likewise from the folds' best epochs (warned at train.epochs);
  the batch size the folds used (train.batch_size = 0: the rule on the folds' mean training
  rows, so steps per epoch grow with the rows); no early stopping. train.scheduler =
  "plateau" has no length to copy: refused;
- scikit-learn kinds (gbdt, rf, extratrees, linear, voting): no best round; their configured
  settings (gbdt's own early stopping, when on, applies as in a fold);
- time-ordered CV (cv.strategy = "time"): the last fit's best round / epoch, unscaled: it
  trained on the most and the latest rows; the folds' sizes differ, so K/(K-1) means nothing;
- fold-safe features are fitted on all rows by the folds' inner-split rule;
- qwk (cut points): the cut points fitted on all OOF rows (cut_points.json), as for the
  folds' mean, cut the refit's expected class index.

The submission: train.refit = "only": the refit models' mean; "with_folds": half the refit
models' mean, half the folds' mean. A refit model has no OOF rows, so no score: the CV
score the run reports stays the folds'. Files: refit/seed<i>/ (preprocessors.json, the
model file, test_pred.parquet, done.json: rounds or epochs, seed, written last: --resume
keeps a finished refit model and trains the others), refit/test_pred.parquet (what the
submission was made from); scores.json and run.json "refit" record it.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from kit import out_of_core
from kit.config import Config, apply_overrides
from kit.errors import ConfigError
from kit.io import write_parquet
from kit.models import get_entry
from kit.run_folder import (
    REFIT,
    TEST_PRED,
    pred_columns,
    pred_frame,
    read_refit_fit,
    read_run_info,
    refit_dir,
    write_refit_fit,
    write_run_info,
)
from kit.tasks import FoldContext, refit_module
from kit.tasks.tabular.models import batch_size_for

NO_SCORE = "refit models have no OOF rows, so no score: the run's CV score is the folds'"


def check_refit(cfg: Config, data_dir: Path) -> None:
    """Refuse a refit the kit cannot do, before any run folder is made."""
    t = cfg.train
    if t.refit == "off":
        if t.refit_seeds != 1:
            raise ConfigError(f"--seeds {t.refit_seeds} (train.refit_seeds) sets how many "
                              "refit models to train, and the refit is off; add --refit")
        return
    if refit_module(cfg.competition.task) is None:
        raise ConfigError(f"train.refit = {t.refit!r}: a {cfg.competition.task!r} task cannot "
                          "refit on all rows (tabular only); drop --refit")
    if out_of_core.reason(cfg, data_dir):
        raise ConfigError(f"train.refit = {t.refit!r}: this table trains out of core "
                          f"(data.out_of_core = {cfg.data.out_of_core!r}), where refit is not "
                          "supported; drop --refit, or set data.out_of_core = \"off\" when the "
                          "table fits in memory")
    if _kind(cfg) == "torch" and t.scheduler == "plateau":
        raise ConfigError(f"train.refit = {t.refit!r} with train.scheduler = \"plateau\": a "
                          "plateau schedule follows validation rows a refit does not have, so "
                          "it has no length to copy; set train.scheduler = \"cosine\" or drop "
                          "--refit")


def _kind(cfg: Config) -> str:
    return get_entry(cfg.model.name, "tabular").kind


def refit_length(cfg: Config, infos: list[dict]) -> tuple[dict, str, list[str]]:
    """(config overrides giving the refit's length, the rule as printed, warnings) from the
    fold fits' done.json infos, in fold order."""
    kind, k = _kind(cfg), cfg.cv.n_splits
    if kind == "sklearn":
        return {}, f"{cfg.model.name} has no best round: refit with its configured settings", []
    booster = kind == "booster"
    key = f"model.params.{cfg.model.name}.rounds" if booster else "train.epochs"
    best = [i["best_iteration"] if booster else i["best_epoch"] + 1 for i in infos]
    last = [i["rounds"] if booster else cfg.train.epochs for i in infos]
    what = "round" if booster else "epoch"
    capped = [f for f, (b, n) in enumerate(zip(best, last, strict=True)) if b >= n]
    warned = [f"fold {', '.join(map(str, capped))}: the best {what} is the last one trained "
              f"({best[capped[0]]}): the budget stopped it, not the data; raise {key}"] \
        if capped else []
    if cfg.cv.strategy == "time":
        n = best[-1]
        rule = f"{what}s {n} = the last fit's best {what} (time-ordered CV: no K/(K-1))"
    else:
        n = max(1, round(float(np.mean(best)) * k / (k - 1)))
        rule = f"{what}s {n} = mean best {what} {np.mean(best):.1f} x {k}/{k - 1}"
    if booster:
        return {key: n}, rule, warned
    overrides = {key: n, "train.patience": n + 1}  # all rows: nothing to stop early on
    rule += " (its epoch lines score the training rows: a refit has no validation rows)"
    if not cfg.train.batch_size:
        rows = round(float(np.mean([i["train_rows"] for i in infos])))
        overrides["train.batch_size"] = batch_size_for(rows)
        rule += (f"; batch size {overrides['train.batch_size']}, the folds' (train.batch_size "
                 f"= 0 on their {rows} rows): steps per epoch grow with the rows")
    return overrides, rule, warned


def refit_run(path, cfg: Config, opts, infos: list[dict], deadline: float | None) -> dict:
    """Train the refit models (a finished one is read: --resume), hand the run path the
    submission's test predictions, write refit/test_pred.parquet; the record scores.json
    and run.json keep."""
    overrides, rule, warned = refit_length(cfg, infos)
    for line in warned:
        warnings.warn(f"refit: {line}", stacklevel=1)
    seeds = [cfg.train.seed + i for i in range(cfg.train.refit_seeds)]
    print(f"refit: {cfg.model.name} on all {len(path.prep.ids)} training rows, {rule}; "
          f"seeds {', '.join(map(str, seeds))}; {NO_SCORE}")
    preds, fits = [], []
    for i, seed in enumerate(seeds):
        if deadline is not None and time.monotonic() >= deadline:
            print(f"refit: time budget reached before seed {seed}")
            break
        test, info = _refit_one(path, cfg, opts, i, {**overrides, "train.seed": seed})
        preds.append(test)
        fits.append({"seed": seed, **{k: info[k] for k in ("rounds", "epochs") if k in info},
                     "seconds": info.get("seconds")})
    record = {"mode": cfg.train.refit, "seeds": [f["seed"] for f in fits], "fits": fits,
              "rule": rule, "warnings": warned, "length": overrides, "oof": None,
              "note": NO_SCORE, "test_pred": f"{REFIT}/{TEST_PRED}"}
    if not preds:
        record["test_pred"] = None
        print("refit: no refit model finished; the submission is the folds' mean")
        return record
    _submit(path, cfg, opts.run_dir, preds)
    info = read_run_info(opts.run_dir)
    write_run_info(opts.run_dir, {**info, "refit": record})
    return record


def _refit_one(path, cfg: Config, opts, i: int, overrides: dict) -> tuple[np.ndarray, dict]:
    """Refit model i: read when finished (--resume), else trained and written."""
    folder = refit_dir(opts.run_dir, i)
    done = read_refit_fit(folder) if opts.resume else None
    cols = pred_columns(path.classes)
    if done is not None and _same_length(done[1], overrides):
        return done[0][cols].to_numpy(), done[1]
    if done is not None:  # the resumed run has more folds: their length is another
        print(f"refit seed {cfg.train.seed + i}: {folder} was trained for "
              f"{_length(done[1])}, the folds now give another length; training it again")
    folder.mkdir(parents=True, exist_ok=True)
    seed_cfg = apply_overrides(cfg, overrides, source="refit")
    ctx = FoldContext(seed_cfg, path.n_fits + i, np.arange(len(path.prep.ids)),
                      np.array([], dtype=np.int64), folder, opts.device, path.metric,
                      resume=opts.resume, refit=True)
    out = refit_module(cfg.competition.task).refit_fold(path.prep, ctx)
    info = {**out.info, "seed": seed_cfg.train.seed}
    write_refit_fit(folder, pred_frame(path.prep.test_ids, out.test_pred, path.classes), info)
    print(f"refit seed {seed_cfg.train.seed}: {folder} ({info['seconds']:.1f}s)")
    return out.test_pred, info


def _length(info: dict) -> dict:
    return {k: info[k] for k in ("rounds", "epochs") if k in info}


def _same_length(info: dict, overrides: dict) -> bool:
    """Whether a finished refit (its done.json) trained for the length the folds give now."""
    return all(info.get("epochs" if key == "train.epochs" else "rounds") == value
               for key, value in overrides.items()
               if key == "train.epochs" or key.endswith(".rounds"))


def combine(refit_preds: list[np.ndarray], fold_mean: np.ndarray, mode: str) -> np.ndarray:
    """The submission's test predictions: the refit models' mean ("only"), or half that and
    half the folds' mean ("with_folds")."""
    refit = np.mean(refit_preds, axis=0)
    return refit if mode == "only" else (refit + fold_mean) / 2


def _submit(path, cfg: Config, run_dir: Path, preds: list[np.ndarray]) -> None:
    test = combine(preds, path.test_mean, cfg.train.refit)
    write_parquet(run_dir / REFIT / TEST_PRED, pred_frame(path.prep.test_ids, test,
                                                          path.classes))
    path.submit_refit(test)
    how = "the refit models' mean" if cfg.train.refit == "only" else \
        "half the refit models' mean, half the folds' mean"
    cuts = " (cut with the OOF's cut points, cut_points.json)" if path.cuts is not None else ""
    print(f"refit: the submission is {how}{cuts}")
