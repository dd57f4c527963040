"""Optuna tuning: one study per competition, data and search space.

key.py (what a study is keyed on: the training files' content, hooks, config, space),
study.py (search spaces, storage, claiming a study, the trial loop of one process),
loop.py (scripts/tune.py's study: opened for its key, trials here or in --jobs processes,
each a CV run in its own trial folder, then best.toml and the plots).
Imports: the core, kit.models, kit.run_folder; the trials run through kit.pipeline.
"""
