"""The out-of-core tabular run: a table larger than memory streamed through the whole of
`train.py`, from the source files to the submission, in record batches.

When (`reason`): `data.out_of_core = "auto"` (the default) takes this path when the
training files exceed `data.out_of_core_mb` on disk, or `train.dask_scheduler` is set;
"on" / "off" force either. Smaller tables keep the
in-memory path (kit/tasks/tabular/task.py under kit/pipeline/in_memory.py), which has everything this
one refuses below.

Once per run (`prepare`): the source files (a CSV converted once to parquet,
kit/data/sources.py) are read in record batches of BATCH_ROWS; features.py
transform_batch runs on each (target hidden); the target becomes `_y` (a class index, or
the value), the fold `_fold` (a stable hash of the id, or of cv.group: kit/splits/folds.py
hash_folds, the in-memory path's cv.strategy = "hash"), the row number `_row`, data.weight's
column `_w` (which the boosters, the networks' batches and every score weigh rows by); the
batches land in one parquet file in the run's cache. Per fold: the preprocessors are
fitted in one pass (kit/data/stream_fit.py); a network (mlp, tabm) trains through
TabularStream filtered on `_fold`; XGBoost trains on a QuantileDMatrix built from a
DataIter over the same batches (on XGBoost's external memory when that matrix would pass
data.out_of_core_xgb_mb), or with xgboost.dask on a cluster; LightGBM on a
Dataset built from lgb.Sequence objects, one per row group. Predictions are
made scan by scan and written batch by batch to parquet; the run's OOF and test files and
the submission are assembled from the folds' files as streams. The submission is checked
against the sample chunk by chunk (the test file's ids in the sample's order, every value
valid) into a temporary file, then renamed.

What stays in memory, by design: per fold, the validation rows' labels and a network's
validation predictions (the metric each epoch), a sample of at most SAMPLE_ROWS training
rows (tabm's bins, a regression's target scaling), XGBoost's labels, gradients and
quantized matrix, LightGBM's labels (and weights) and binned Dataset.

Refused here, each with its reason (they need the whole table): features.py build(),
fold_features, keep_train_rows and extra_train_rows, features.target_encode, quantile
scaling, cv.repeats > 1, more than one process (torchrun), and model kinds outside
STREAMING_KINDS (run.py); data.weight with train.dask_scheduler (xgboost.dask trains
unweighted here).

The package, in import order: prepared.py (the one pass, and the prepared table read back
by fold), dask_xgb.py (xgboost.dask on a cluster), fit.py (one fold, per model kind),
metrics.py (metrics summed batch by batch), submission.py (the submission checked chunk
by chunk against the sample), run.py (when, what is refused, and OutOfCore: this path
through kit/pipeline/loop.py's run loop, which owns resume, the deadline, tracking, scores
and the submission's copy).
The model pieces shared with the in-memory task come from kit/tasks/tabular/models.py.
"""

from kit.out_of_core.run import OutOfCore, check_supported, reason

__all__ = ["OutOfCore", "check_supported", "reason"]
