"""A run's files: one module reads and writes them (docs/architecture.md, "Run folder").

Training (kit/pipeline/), prediction (kit/predict.py) and the ensemble (kit/ensembles/build.py)
all go through here, so the prediction-file contract lives in one place:

- `oof.parquet`: id, fold, target, then the prediction columns;
- `test_pred.parquet`: id, then the same prediction columns (the mean over folds);
- prediction columns: `p_<class>` per class (a classification) or `pred` (a regression,
  original scale);
- `scores.json`: metric, mode, problem, per-fold scores, mean, std, OOF score, classes;
- `folds.csv`: id, fold (fold_r1 ... for repeats; -1: never validated), train_from (time
  splits: the first fit that trains on the row, kit/splits/folds.py `Split`), split (its hash);
- `run.json`: git commit, command line, seed, start time (its "resumes" appended);
- `config.toml`: the resolved config;
- `cut_points.json`: under qwk (mcc / f1_macro on two classes), the cuts on the expected
  class index that made the submission's labels (kit/metrics/cut_points.py);
- `submission.csv`: the run's checked submission;
- `ensemble.json`: only in an ensemble's folder (members, weights, scores).

Fold folders hold the same two prediction files for their rows, plus `done.json`.
A run's set-up is here too: its own new folder (`new_run_dir`, a tuning trial's
`new_trial_dir`), its first records (`start_run`) and the process it runs in
(`set_up_process`: seed, threads, device).

The package: names.py (file names, prediction columns, which folders are runs), records.py
(a run's set-up: its folder, config.toml, run.json; scores.json read; the process),
fold_files.py (a fold's files, cut points, the submission's copy, refit models),
predictions.py (OOF, test predictions, scores, folds.csv; a finished run read back).
`kit.run_folder` re-exports them: the one import for the rest of the kit.
"""

from kit.run_folder.fold_files import (  # noqa: F401
    CUT_POINTS,
    DONE,
    HISTORY,
    IMPORTANCE,
    REFIT,
    fold_dir,
    prediction_files,
    read_cut_points,
    read_done,
    read_fold_importance,
    read_history,
    read_refit_fit,
    refit_dir,
    submission_copy,
    write_cut_points,
    write_done,
    write_fold_importance,
    write_history,
    write_refit_fit,
    write_run_importance,
)
from kit.run_folder.names import (  # noqa: F401
    CONFIG,
    ENSEMBLE_INFO,
    OOF,
    PRED,
    RUN_FILES,
    RUN_INFO,
    SCORES,
    SUBMISSION,
    TARGETS,
    TEST_PRED,
    fold_dirs,
    is_ensemble,
    is_run_folder,
    pred_columns,
)
from kit.run_folder.predictions import (  # noqa: F401
    Run,
    fold_columns,
    load_run,
    oof_frame,
    pred_frame,
    read_fold,
    read_folds,
    read_pred_frame,
    read_split_key,
    scores_dict,
    shared_split,
    write_fold,
    write_folds,
    write_predictions,
    write_scores,
)
from kit.run_folder.records import (  # noqa: F401
    check_hooks,
    check_library_versions,
    finished_runs,
    git_commit,
    has_progress,
    new_run_dir,
    new_trial_dir,
    provenance,
    read_config,
    read_ensemble_info,
    read_run_info,
    read_scores,
    set_up_process,
    start_run,
    write_config,
    write_ensemble_info,
    write_run_info,
)
from kit.run_folder.targets import (  # noqa: F401
    combined_scores,
    has_targets,
    merge_submissions,
    target_dirs,
)
