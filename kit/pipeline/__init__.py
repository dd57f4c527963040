"""The run: every fold fit of a CV run, then the run's predictions, scores and submission.

loop.py       run_cv, the one run loop for every table size: resume (a fold's done.json),
              the deadline (--max-time), tracking, the fold and run scores (scores.json),
              the submission and its named copy, the printed summary. It asks a run path
              for the rest (RunPath):
in_memory.py  the path of a table or an image set held in memory: the task adapter
              (kit/tasks/) fits each fold; the split (folds.csv), OOF frames, cut points,
              plots and importance;
kit/out_of_core/run.py  the path of a table larger than memory, streamed in batches.

Imports: everything below (tasks, out of core, run_folder, submission, ...); nothing
imports the pipeline but prediction, tuning and the command line.
"""

from kit.pipeline.in_memory import fold_mean
from kit.pipeline.loop import RunOptions, run_cv

__all__ = ["RunOptions", "fold_mean", "run_cv"]
