"""Refit on all rows (train.refit): one model of the run's kind trained on every training row
for a fixed length, with no validation rows and no early stopping. kit/pipeline/refit.py
decides the length from the folds and writes the refit folder's done.json.

- boosters (lgbm, xgb, catboost): exactly `model.params.<kind>.rounds` rounds, as the
  pipeline set them (the folds' best rounds);
- scikit-learn kinds (gbdt, rf, extratrees, linear, blend): their configured settings
  (they have no best round to copy);
- networks (mlp, tabm): `train.epochs` epochs (the folds' best epochs), the last epoch's
  weights saved as the folder's checkpoint; the batch size the folds used.

The tables are the folds' rule on all rows (kit/tasks/tabular/tables.py all_rows_setup);
the folder holds what a fold's holds for prediction: preprocessors.json, the model file,
the text features; predict.py predicts with it through task.predict_fold.
"""

from __future__ import annotations

import time

from kit.errors import DataError
from kit.io import save_torch
from kit.tasks import FoldContext, FoldOutput, Prepared
from kit.tasks.joint import shared_fit
from kit.tasks.tabular.models import (
    booster_frame,
    booster_predict,
)
from kit.tasks.tabular.tables import all_rows_setup
from kit.tasks.tabular.task import (
    FoldFit,
    fit_on_rows,
    network_batches,
    predict_test,
    row_weights,
    sklearn_arrays,
    sklearn_predict,
    train_sklearn,
)
from kit.training.checkpoints import drop_stale_best


def refit_fold(prep: Prepared, ctx: FoldContext) -> FoldOutput:
    """One model on all training rows; its test predictions and info (rows, length)."""
    started = time.monotonic()
    cache = prep.state["tables"].cache / f"refit_{ctx.fold_dir.name}"
    tables, rows = all_rows_setup(prep, ctx.cfg, cache)
    # ctx.cfg: a network's batch size was resolved by the pipeline (the folds')
    out = fit_on_rows(prep, ctx, ctx.cfg, tables, rows, cache,
                      {"booster": _booster, "sklearn": _sklearn, "torch": _network})
    out.info.update(seconds=time.monotonic() - started, train_rows=len(rows), refit=True)
    return out


def _booster(model, f: FoldFit) -> FoldOutput:
    model.fit_rounds(booster_frame(f.tables.train.iloc[f.rows], f.num, f.cat),
                     f.objective.batch_target(f.tables.y[f.rows]),
                     weight=row_weights(f.tables, f.rows))
    model.save(f.ctx.fold_dir / model.file_name)
    test = booster_predict(model, booster_frame(f.tables.test, f.num, f.cat), f.objective)
    return FoldOutput(None, test, {"model_file": model.file_name, "rounds": model.rounds,
                                   "threads": model.library_threads()})


def _sklearn(model, f: FoldFit) -> FoldOutput:
    """Fitted with the configured settings (a scikit-learn kind has no best round)."""
    model, _ = train_sklearn(model, f)
    test = sklearn_predict(model, sklearn_arrays(f.tables, "test", None, f.num, f.cat, f.text),
                           f.objective)
    return FoldOutput(None, test, {"model_file": "model.skops"})


def _network(model, f: FoldFit) -> FoldOutput:
    """`train.epochs` epochs on all rows. The Trainer validates each epoch: here on the
    training rows themselves, with patience past the last epoch (the pipeline set it), so
    nothing stops early; the last epoch's raw weights are kept as best_e<last>_refit.pt (the
    checkpoint predict.py loads), the Trainer's own best_*.pt removed."""
    return shared_fit(f.cfg, f.ctx, lambda ctx: _train_network(model, f, ctx))


def _train_network(model, f: FoldFit, ctx: FoldContext) -> FoldOutput:
    cfg, transform = f.cfg, f.transform()
    trainer = ctx.trainer(cfg, f.objective)
    train = network_batches(f.tables, cfg, transform, "train", f.rows, shuffle=True,
                            seed=cfg.train.seed + ctx.fold, device=ctx.device)
    seen = network_batches(f.tables, cfg, transform, "train", f.rows, device=ctx.device)
    result = trainer.fit(model, train, seen, f.labels, resume=ctx.resume)
    if len(result.history) < cfg.train.epochs:
        raise DataError(f"refit {ctx.fold_dir.name}: {len(result.history)} of "
                        f"{cfg.train.epochs} epochs ({result.stop_reason}); run it again with "
                        "train.py --resume RUN_DIR")
    last = cfg.train.epochs - 1
    kept = ctx.fold_dir / f"best_e{last:03d}_refit.pt"
    save_torch(kept, {"model": model.state_dict()})
    drop_stale_best(ctx.fold_dir, kept)  # after the save: a kill never leaves none
    test = predict_test(trainer, model, f.tables, cfg, f.num, f.cat)
    return FoldOutput(None, test, {"epochs": cfg.train.epochs, "best_epoch": last},
                      history=result.history)
