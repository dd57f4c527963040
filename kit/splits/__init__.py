"""Which training rows validate which fit.

folds.py (the fold assignment: stratified / kfold / group / stratified_group, repeats,
hashed folds for streamed tables, the stored split and its key, `Split`), time.py
(time-ordered expanding windows: cv.strategy = "time", cv.time, cv.gap).
Imports: kit.errors, kit.config; time.py imports folds.py.
"""
