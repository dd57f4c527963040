"""Training a network and recording what happened.

schedule.py (warmup -> cosine, a pure function), early_stopping.py (decides only),
trainer.py (Trainer: fit, epochs, evaluation, prediction; AMP, EMA, resume), track.py
(history.csv, wandb), plots.py (curves, confusion, residuals, importance, image grids),
importance.py (feature importance per fold and per run).
Imports: the core below it (errors, io, config, runtime, metrics, objective) and
kit.models.heads; never a task, the run folder or the pipeline.
"""
