"""The portfolio: one command from a competition to a blended, checked submission.

members.py (the fixed, ordered list of model kinds and settings, cheap first; which apply),
manifest.py (the portfolio folder: its options, one job per member and seed, the time spent;
written atomically, read back by --resume), calls.py (train.py and ensemble.py run in this
process, kit.runtime.in_process: their command lines, output and --summary-json are the whole
interface),
loop.py (a member's cost from a one-fold probe against the time left: continue or skip;
extra seeds), blending.py (hill climbing, stacking when its cross-validated score wins, the
one submission), report.py (report.md and the summary), run.py (run_portfolio: the checks,
the loop, the blend, the report; scripts/portfolio.py calls it).
Imports: the core (kit.errors, kit.io, kit.paths, kit.config, kit.metrics, kit.run_folder: a
run's files are read through it);
runs are trained and blended through the scripts, never by importing kit.pipeline or
kit.ensembles, and only their documented files are read (scores.json, run.json).
"""
