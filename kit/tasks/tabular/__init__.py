"""The tabular task: a table's features and folds, for every model kind.

task.py (prepare / fit_fold / predict_fold: the features hook, the parquet cache, the
stream for networks, arrays for scikit-learn kinds, frames for the boosters),
tables.py (a fold's rows: extra and kept training rows, the fold-safe features joined),
fold_features.py (label-using columns fitted inside each fold with an inner split).
Imports: everything below kit.tasks (data, models, training, run_folder); never the
pipeline, out of core, ensembles.
"""
