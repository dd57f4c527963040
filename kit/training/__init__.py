"""Training a network and recording what happened.

schedule.py (warmup -> cosine, a pure function), early_stopping.py (decides only),
trainer.py (Trainer: fit, epochs, evaluation, prediction; AMP, EMA, resume),
checkpoints.py (safe loading, a fold's best checkpoint, last.pt's resume, RNG state, EMA),
track.py (history.csv written live, wandb), plots.py (curves, confusion, residuals,
importance, image grids), importance.py (feature importance tables per fold and per run).
Imports: the core below it (errors, io, config, runtime, metrics, objective) and
kit.models.heads; never a task, the run folder or the pipeline.
"""
