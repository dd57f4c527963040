"""Re-create a finished run's submission from its fold checkpoints: no training.

    python scripts/predict.py --run runs/titanic/20240101-120000_mlp_eng
    python scripts/predict.py --run RUN_DIR --data /kaggle/input/titanic --summary-json s.json

Each finished fold (`fold<k>/done.json`) predicts the test set with its saved
preprocessors and best checkpoint (`best_*.pt`, or `model.skops` for scikit-learn
models) through the task's `predict_fold`; the fold mean is the run's test prediction.
A run refitted on all rows (scores.json "refit") predicts with its `refit/seed<i>/`
models as well and combines them as the run did (the refit mean, or half refit, half folds).
The run's own files are never touched: the output goes to `--out` (default
`RUN_DIR/predict/`, or `/kaggle/working/predict/` inside a kernel, where run folders come
from read-only datasets), and inside a kernel also to `/kaggle/working/submission.csv`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from kit.config import Config
from kit.errors import CheckpointError
from kit.io import atomic_path, write_json, write_parquet
from kit.paths import competition_dir, in_kaggle, kaggle_root

if TYPE_CHECKING:  # scripts/predict.py answers --help before pandas loads (kit.run_folder too)
    import numpy as np
    import pandas as pd


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A finished run's submission from its checkpoints")
    p.add_argument("--run", type=Path, required=True, metavar="RUN_DIR",
                   help="run folder written by scripts/train.py (runs/<comp>/<run>)")
    p.add_argument("--data", type=Path, help="competition data folder (default: data/<comp>)")
    p.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/predict)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--summary-json", type=Path, help="write what was produced here")
    return p


def finished_folds(run: Path) -> list[Path]:
    """fold<k>/ folders holding done.json, in fold order; a folder that is no run is an error."""
    from kit.run_folder import fold_dirs, is_ensemble, is_run_folder

    if not is_run_folder(run):
        inside = sorted(p.name for p in run.glob("*") if is_run_folder(p))[-3:]
        hint = (f"; the newest runs in it: {', '.join(inside)}" if inside else
                ", e.g. runs/titanic/<YYYYmmdd-HHMMSS>_<model>_<features>")
        what = "not a run folder (no config.toml)" if run.is_dir() else "no such folder"
        raise CheckpointError(f"--run {run}: {what}; give a folder that scripts/train.py "
                              f"wrote{hint}")
    if is_ensemble(run):
        raise CheckpointError(_ensemble_advice(run))
    folds = fold_dirs(run)
    if not folds:
        raise CheckpointError(
            f"--run {run}: no finished fold (no fold<k>/done.json); finish training with "
            f"`python scripts/train.py --resume {run}`")
    return folds


def _ensemble_advice(run: Path) -> str:
    """An ensemble folder holds blended predictions, no checkpoints: say where its submission
    is and how to blend again (train.py --resume cannot continue it)."""
    from kit.run_folder import SUBMISSION, read_config, read_ensemble_info

    info = read_ensemble_info(run)
    members = " ".join(str(m.get("run_dir", "?")) for m in info.get("members", []))
    slug = read_config(run).competition.slug
    return (f"--run {run} is an ensemble (ensemble.json), not a trained run: it has no "
            f"checkpoints to predict with; its submission is already {run / SUBMISSION}; "
            f"to blend again run `python scripts/ensemble.py --comp {slug} {members} "
            f"--method {info.get('method', 'soft')}`")


def _data_dir(cfg: Config, run: Path, data: Path | None) -> Path:
    from kit.data.folder import resolve_data_dir
    from kit.run_folder import read_run_info

    info = read_run_info(run)
    if data is None and info.get("data_dir") and Path(info["data_dir"]).is_dir():
        data = Path(info["data_dir"])  # where the run trained, when it recorded that
    # A demo run's data is re-made (seeded: the same files) unless --data names a folder.
    return resolve_data_dir(cfg, data, bool(info.get("demo")) and data is None)


def _check_classes(run: Path, classes: list) -> None:
    from kit.run_folder import SCORES, read_scores

    trained = read_scores(run).get("classes")
    if trained is not None and trained != [str(c) for c in classes]:
        raise CheckpointError(
            f"{run / SCORES}: the run was trained on classes {trained}, the data has "
            f"{[str(c) for c in classes]}; pass the run's competition data with --data")


def _saved_cuts(run: Path, metric) -> np.ndarray | None:
    """Under qwk (mcc / f1_macro on two classes) the cuts the run's submission was cut with,
    for the classes it trained on (checked against the data's by _check_classes); None for
    another metric, or a run from before cut points (it wrote argmax labels: so does this)."""
    from kit.metrics.cut_points import applies
    from kit.run_folder import read_cut_points, read_scores

    classes = read_scores(run).get("classes") or []
    return read_cut_points(run, classes) if applies(metric, classes) else None


def default_out(run: Path) -> Path:
    if in_kaggle():
        return kaggle_root() / "working" / "predict"
    return run / "predict"


def _with_refit(run: Path, task, prep, cfg: Config, dev, test: np.ndarray):
    """(the test predictions the run submitted, the run's file holding them): a run with a
    refit on all rows (scores.json "refit") predicts with its refit/seed<i>/ models too
    and combines them as the run did (kit/pipeline/refit.py)."""
    from kit.pipeline.refit import combine
    from kit.run_folder import TEST_PRED, read_done, read_scores, refit_dir

    refit = read_scores(run).get("refit") or {}
    if not refit.get("test_pred"):
        return test, run / TEST_PRED
    folders = [refit_dir(run, i) for i in range(len(refit["fits"]))]
    missing = [str(f) for f in folders if read_done(f) is None]
    if missing:
        raise CheckpointError(f"{missing[0]}: a refit model the run submitted with is missing "
                              "(no done.json); copy the run folder whole")
    print(f"predict: refit models ({refit['mode']}): {', '.join(f.name for f in folders)}")
    preds = [task.predict_fold(prep, cfg, folder, dev) for folder in folders]
    return combine(preds, test, refit["mode"]), run / refit["test_pred"]


def compare_with_run(run: Path, frame: pd.DataFrame, path: Path | None = None) -> float | None:
    """Largest |difference| from the run's own test predictions (`path`, default its
    test_pred.parquet; None: not comparable)."""
    import numpy as np
    import pandas as pd

    from kit.run_folder import TEST_PRED

    path = path or run / TEST_PRED
    if not path.is_file():
        return None
    saved = pd.read_parquet(path)
    if list(saved.columns) != list(frame.columns) or len(saved) != len(frame) or not (
            saved["id"].astype(str).to_numpy() == frame["id"].astype(str).to_numpy()).all():
        return None  # another test set (a code competition's hidden one): nothing to compare
    cols = list(frame.columns[1:])
    return float(np.abs(saved[cols].to_numpy(float) - frame[cols].to_numpy(float)).max())


def _checked_config(run: Path):
    """The run's config, once the run is one predict.py can redo with today's code."""
    from kit.run_folder import check_hooks, check_library_versions, read_config, read_run_info, read_scores

    cfg = read_config(run)
    if read_scores(run).get("out_of_core"):
        raise CheckpointError(f"{run} trained out of core: its test_pred.parquet and "
                              "submission.csv are already the folds' predictions, written "
                              "batch by batch; predict.py re-predicts in-memory runs only")
    check_library_versions(run)
    check_hooks(run, read_run_info(run).get("hooks"), cfg.competition.slug)  # same code
    return cfg


def _predict_folds(run: Path, cfg, folds: list[Path], data_dir: Path, device: str):
    """(prepared data, the run's test predictions, the file they are compared with): each
    finished fold's, their mean, and the refit models' when the run has them."""
    from kit.pipeline import fold_mean
    from kit.run_folder import set_up_process
    from kit.tasks import get_task

    dev, _ = set_up_process(cfg, device)
    task = get_task(cfg.competition.task)
    print(f"predict: {run}  folds: {', '.join(p.name for p in folds)}  device: {dev}")
    with tempfile.TemporaryDirectory(prefix="kit-predict-") as cache:  # the run stays as it was
        prep = task.prepare(cfg, competition_dir(cfg.competition.slug), data_dir, Path(cache))
        _check_classes(run, prep.classes)
        probas = [task.predict_fold(prep, cfg, fold, dev) for fold in folds]
        test = fold_mean(probas, cfg.train.fold_vote)
        test, reference = _with_refit(run, task, prep, cfg, dev, test)
    return prep, test, reference


def predict_run(run: Path, *, data: Path | None = None, out: Path | None = None,
                device: str = "auto", kaggle_copy: bool = True) -> dict:
    """Predict the test set with every finished fold of `run`; write a checked submission
    (a run with several targets: each column's run, then one submission of them all)."""
    from kit.run_folder import has_targets, is_ensemble

    if has_targets(run) and not is_ensemble(run):
        return _predict_targets(run, data=data, out=out, device=device)
    folds = finished_folds(run)  # before the slow imports: a wrong --run fails at once
    from kit.metrics.competition import resolve_metric
    from kit.metrics.cut_points import apply
    from kit.run_folder import TEST_PRED, pred_frame
    from kit.submission import (
        build_submission,
        form_for,
        read_sample,
        target_sample,
        write_submission,
    )

    cfg = _checked_config(run)
    metric = resolve_metric(cfg)
    cuts = _saved_cuts(run, metric)  # before the slow part: a bad file fails now
    data_dir = _data_dir(cfg, run, data)
    out = out or default_out(run)
    prep, test, reference = _predict_folds(run, cfg, folds, data_dir, device)
    frame = pred_frame(prep.test_ids, test, prep.classes)
    write_parquet(out / TEST_PRED, frame)
    sample_path = data_dir / cfg.data.sample_submission
    sample = target_sample(read_sample(sample_path), cfg)  # one column of several targets
    form = form_for(cfg, sample, metric, classes=prep.classes, source=sample_path)
    submitted = test if cuts is None else apply(test, cuts)  # qwk: the run's cut labels
    submission = build_submission(prep.test_ids, submitted, prep.classes, sample, form)
    written = write_submission(submission, sample, out / submission_name(run), form)
    summary = {"run_dir": str(run), "data_dir": str(data_dir), "fold_dirs": [p.name for p in folds],
               "test_pred": str(out / TEST_PRED), "submission": str(written),
               "max_abs_diff_vs_run": compare_with_run(run, frame, reference)}
    return _for_kaggle(summary) if kaggle_copy else summary


def submission_name(run: Path) -> str:
    """submission.csv, or submission_demo.csv for a run trained on demo data (keeps the mark)."""
    from kit.run_folder import SUBMISSION
    from kit.submission import demo_trained

    return "submission_demo.csv" if demo_trained(run) else SUBMISSION


def _for_kaggle(summary: dict) -> dict:
    """Inside a kernel, the submission copied where Kaggle looks for it, under Kaggle's name."""
    if in_kaggle():
        final = kaggle_root() / "working" / "submission.csv"
        with atomic_path(final) as tmp:
            shutil.copyfile(summary["submission"], tmp)
        summary["kaggle_submission"] = str(final)
    return summary


def _predict_targets(run: Path, *, data: Path | None, out: Path | None, device: str) -> dict:
    """A run with several targets: each column's run predicted into out/targets/<column>/,
    then one submission of every column in the sample's order."""
    from kit.run_folder import merge_submissions, target_dirs
    from kit.submission import read_sample

    cfg = _checked_config(run)
    data_dir = _data_dir(cfg, run, data)
    out = out or default_out(run)
    runs, outs = target_dirs(run, cfg.data.targets), target_dirs(out, cfg.data.targets)
    columns = {c: predict_run(runs[c], data=data_dir, out=outs[c], device=device,
                              kaggle_copy=False) for c in cfg.data.targets}
    name = submission_name(run)
    merge_submissions(read_sample(data_dir / cfg.data.sample_submission), outs, out / name,
                      name=name)
    diffs = [s["max_abs_diff_vs_run"] for s in columns.values()]
    return _for_kaggle({"run_dir": str(run), "data_dir": str(data_dir), "fold_dirs": [],
                        "submission": str(out / name), "targets": columns,
                        "max_abs_diff_vs_run": None if None in diffs else max(diffs)})


def predict_main(argv: list[str] | None = None) -> dict:
    args = predict_parser().parse_args(argv)
    summary = predict_run(args.run, data=args.data, out=args.out, device=args.device)
    diff = summary["max_abs_diff_vs_run"]
    if diff is not None:
        print(f"largest difference from the run's test_pred.parquet: {diff:.2e}")
    print(f"submission: {summary['submission']}")
    if "kaggle_submission" in summary:
        print(f"kaggle submission: {summary['kaggle_submission']}")
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary
