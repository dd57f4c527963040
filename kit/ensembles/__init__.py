"""Ensembles of finished runs on one split.

blend.py (the array math: soft / hard / weighted / hill / stack, fold votes, CV of a
blend), hill_climbing.py (Caruana selection), stacking.py (a level-2 model on OOF),
report.py (an ensemble's run folder, ensemble.json, correlation heatmap, tables),
build.py (ensemble_runs: load the members, check the split, align, blend, write).
Imports: the core (metrics, run_folder, submission, paths); never a task or the pipeline.
"""
