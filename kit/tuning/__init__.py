"""Optuna tuning: one study per competition, data and search space.

key.py (what a study is keyed on: the training files' content, hooks, config, space),
study.py (search spaces, storage, claiming a study, a folder per trial, the loop).
Imports: the core, kit.models; the trials run through kit.pipeline.
"""
