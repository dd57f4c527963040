"""Benchmark: refit on all rows against the fold models' mean, on outer holdouts.

    python scripts/bench_refit.py                                  # titanic, house-prices, synthetic
    python scripts/bench_refit.py --datasets titanic --refit-seeds 3
    python scripts/bench_refit.py --datasets synthetic --synthetic-rows 5000 --set model.name=xgb

CV cannot score a refit (it has no OOF rows), so each dataset's training rows are cut into
--holdouts seeded outer holdouts (5 x 20 %: the folds of a shuffled StratifiedKFold for a
classification, KFold for a regression; disjoint, so every row is held out once). Each
holdout becomes a competition data folder: train.csv the other rows, test.csv the holdout
without its labels, a sample submission. On it, ONE `train.py --refit only --seeds N` run of
the competition's default config (plus --set) gives both predictions on the same folds: the
run's test_pred.parquet is the fold models' mean, refit/test_pred.parquet the refit models'
mean; `with_folds` is half each (kit.pipeline.refit.combine, as train.py submits it). Each
is scored on the holdout's labels with the competition's metric (kit.metrics.competition
.resolve_metric), from the prediction columns as scores.json scores the OOF (probabilities;
argmax for a label metric). Metrics with fitted cut points (qwk; mcc / f1_macro on two
classes) are refused: the refit's cut would need the run's cut points.

Printed: dataset, metric, fold mean, refit and with_folds as mean ± std over the holdouts;
the paired differences refit - fold mean and with_folds - fold mean (sign turned so that
> 0 is better than the fold mean) as mean ± std (standard error) with wins / losses; the
mean wall seconds of one run. Datasets: titanic
and house-prices (the training rows of the Kaggle zips in --kaggle-dir, read from the zip,
never copied into the repo), synthetic (kit.data.synthetic, --synthetic-rows, its
competition made from the template as scripts/bench_vs_autogluon.py makes it). Everything
goes under --work-dir (default runs/bench_refit/); a finished holdout (its result.json) is
read back, so a killed bench continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_autogluon import DATASETS, dataset, dataset_names  # noqa: E402

from kit.errors import ConfigError, KitError  # noqa: E402
from kit.io import write_json  # noqa: E402
from kit.metrics.competition import resolve_metric  # noqa: E402
from kit.metrics.cut_points import applies  # noqa: E402
from kit.paths import ROOT  # noqa: E402
from kit.pipeline.refit import combine  # noqa: E402
from kit.run_folder import REFIT, TEST_PRED, pred_columns, read_config, read_scores  # noqa: E402

WAYS = ("folds", "refit", "with_folds")
SETTINGS = {"refit_seeds": 1, "overrides": []}  # what a result.json without them ran with


def log(msg: str) -> None:
    print(f"[bench_refit] {msg}", file=sys.stderr, flush=True)


def holdouts(cfg, rows: pd.DataFrame, n: int, seed: int) -> list[np.ndarray]:
    """The holdouts' row positions: n disjoint folds, stratified for a classification."""
    y = rows[cfg.data.target]
    if cfg.competition.problem == "classification":
        cut = StratifiedKFold(n, shuffle=True, random_state=seed).split(rows, y)
    else:
        cut = KFold(n, shuffle=True, random_state=seed).split(rows)
    return [held for _, held in cut]


def write_holdout(cfg, rows: pd.DataFrame, held: np.ndarray, folder: Path) -> pd.DataFrame:
    """A data folder whose test rows are the holdout (labels removed); the holdout's labels."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(len(rows), dtype=bool)
    mask[held] = True
    kept, test = rows[~mask], rows[mask]
    kept.to_csv(data / cfg.data.train, index=False)
    test.drop(columns=cfg.data.target).to_csv(data / cfg.data.test, index=False)
    sample = 0.5 if cfg.submission.kind == "proba" else kept[cfg.data.target].iloc[0]
    pd.DataFrame({cfg.data.id: test[cfg.data.id], cfg.data.target: sample}).to_csv(
        data / cfg.data.sample_submission, index=False)
    return test[[cfg.data.id, cfg.data.target]]


def train(slug: str, folder: Path, env: dict | None, args) -> tuple[Path, float]:
    """One train.py --refit only run on the holdout's folder: (its run folder, wall s)."""
    summary = folder / "train.json"
    summary.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--comp", slug,
           "--data", str(folder / "data"), "--runs", str(folder / "runs"),
           "--submissions", str(folder / "submissions"), "--refit", "only",
           "--seeds", str(args.refit_seeds), "--summary-json", str(summary)]
    cmd += [f"--set={o}" for o in args.overrides]
    start = time.perf_counter()
    with open(folder / "train.log", "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}).returncode
    wall = time.perf_counter() - start
    if rc or not summary.is_file():
        raise KitError(f"train.py exit {rc} on {folder}: see {folder / 'train.log'}")
    return Path(json.loads(summary.read_text())["run_dir"]), wall


def predictions(run_dir: Path, classes: list) -> dict[str, pd.DataFrame]:
    """The three test predictions of one run, indexed by id as str."""
    cols = pred_columns(classes)
    frames = {}
    for way, path in (("folds", run_dir / TEST_PRED), ("refit", run_dir / REFIT / TEST_PRED)):
        frame = pd.read_parquet(path)
        frames[way] = frame.set_axis(frame["id"].astype(str).to_numpy(), axis=0)[cols]
    both = combine([frames["refit"].to_numpy()], frames["folds"].to_numpy(), "with_folds")
    frames["with_folds"] = pd.DataFrame(both, index=frames["folds"].index, columns=cols)
    return frames


def score(metric, cfg, truth: pd.DataFrame, pred: pd.DataFrame, classes: list) -> float:
    """The metric on the holdout's labels, from the prediction columns."""
    ids = truth[cfg.data.id].astype(str).to_numpy()
    proba = pred.loc[ids].to_numpy(np.float64)
    y = truth[cfg.data.target].to_numpy()
    if metric.problem == "regression":
        return metric(y.astype(np.float64), proba)
    index = {c: i for i, c in enumerate(classes)}
    return metric(np.array([index[str(v)] for v in y]), proba)


def bench_holdout(name: str, slug: str, cfg, rows, held, k: int, env, metric, args) -> dict:
    folder = args.work_dir / name / f"holdout{k}"
    done = folder / "result.json"
    settings = {"refit_seeds": args.refit_seeds, "overrides": args.overrides}
    if done.is_file():
        result = json.loads(done.read_text())
        was = {key: result.get(key, value) for key, value in SETTINGS.items()}
        if was != settings:
            raise ConfigError(f"{done} was measured with {list(was.values())}, "
                              f"not {list(settings.values())} (--refit-seeds, --set); give "
                              "another --work-dir")
        log(f"{name} holdout {k}: finished earlier, read from {done}")
        return result
    truth = write_holdout(cfg, rows, held, folder)
    log(f"{name} holdout {k}: {len(rows) - len(truth)} training rows, {len(truth)} held out")
    run_dir, wall = train(slug, folder, env, args)
    scores = read_scores(run_dir)
    classes = [str(c) for c in scores.get("classes", [])]
    preds = predictions(run_dir, classes)
    result = {"holdout": k, "run_dir": str(run_dir), "wall": wall, "cv": scores.get("mean"),
              "model": read_config(run_dir).model.name, **settings,
              **{way: score(metric, cfg, truth, preds[way], classes) for way in WAYS}}
    write_json(done, result)
    log(f"{name} holdout {k}: " + ", ".join(f"{w} {result[w]:.5f}" for w in WAYS)
        + f" ({wall:.0f} s)")
    return result


def bench_dataset(name: str, args) -> dict:
    slug, cfg, rows, competitions = dataset(name, args)
    metric = resolve_metric(cfg)
    classes = [] if metric.problem == "regression" else \
        sorted(rows[cfg.data.target].astype(str).unique())
    if applies(metric, classes):
        raise ConfigError(f"{name}: metric {metric.name} cuts labels with fitted cut points; "
                          "this bench scores prediction columns only")
    env = {"KIT_COMPETITIONS_ROOT": str(competitions)} if competitions else None
    results = [bench_holdout(name, slug, cfg, rows, held, k, env, metric, args)
               for k, held in enumerate(holdouts(cfg, rows, args.holdouts, args.seed))]
    return {"dataset": name, "metric": metric.name, "mode": metric.mode,
            "model": results[0]["model"], "holdouts": results}


def mean_std(values) -> str:
    arr = np.asarray(values, dtype=np.float64)
    return f"{arr.mean():.4f} ± {arr.std(ddof=1) if len(arr) > 1 else float('nan'):.4f}"


def gain(r: dict, way: str) -> str:
    """`way` - the fold mean, paired by holdout, sign turned so that > 0 is better for `way`:
    mean ± std (standard error), wins / losses."""
    sign = 1 if r["mode"] == "max" else -1
    diff = np.array([sign * (x[way] - x["folds"]) for x in r["holdouts"]])
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    return (f"{mean_std(diff)} ({se:.4f}) | {int((diff > 0).sum())} / {int((diff < 0).sum())} "
            f"of {len(diff)}")


def row(r: dict) -> str:
    h = r["holdouts"]
    cells = [mean_std([x[w] for x in h]) for w in WAYS]
    return (f"| {r['dataset']} | {r['metric']} ({r['mode']}) | {r['model']} | "
            + " | ".join(cells) + f" | {gain(r, 'refit')} | {gain(r, 'with_folds')} | "
            f"{np.mean([x['wall'] for x in h]):.0f} |")


def table(results: list[dict], seeds: int) -> str:
    head = (f"| dataset | metric | model | fold mean | refit (seeds {seeds}) | with_folds | "
            "refit - fold mean, mean ± std (se) | refit wins / losses | with_folds - fold "
            "mean, mean ± std (se) | with_folds wins / losses | s per run |")
    return "\n".join([head, "|---|---|---|---|---|---|---|---|---|---|---|", *map(row, results)])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated, of {', '.join(DATASETS)}")
    p.add_argument("--holdouts", type=int, default=5, help="disjoint outer holdouts (5: 5 x 20 %%)")
    p.add_argument("--seed", type=int, default=0, help="the holdouts' shuffle seed")
    p.add_argument("--refit-seeds", type=int, default=1, help="train.py --seeds N: refit models")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run, e.g. --set model.name=lgbm")
    p.add_argument("--synthetic-rows", type=int, default=10_000,
                   help="rows of kit.data.synthetic's table (its train part is cut)")
    p.add_argument("--kaggle-dir", type=Path, default=Path("/work/shared/kaggle"),
                   help="folder of the Kaggle zips (titanic.zip, house-prices-...zip)")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_refit")
    p.add_argument("--summary-json", type=Path)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = dataset_names(args.datasets)
        if args.holdouts < 2 or args.refit_seeds < 1:
            raise ConfigError("--holdouts must be 2 or more and --refit-seeds 1 or more")
        args.work_dir = args.work_dir.resolve()
        results = [bench_dataset(name, args) for name in names]
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(results, args.refit_seeds), flush=True)
    if args.summary_json:
        write_json(args.summary_json, {"refit_seeds": args.refit_seeds,
                                       "overrides": args.overrides, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
