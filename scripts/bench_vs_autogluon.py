"""Benchmark: AutoGluon `medium_quality` against scripts/portfolio.py on repeated holdouts.

    python scripts/bench_vs_autogluon.py --autogluon-python /tmp/ag/bin/python
    python scripts/bench_vs_autogluon.py --autogluon-python /tmp/ag/bin/python \
        --datasets titanic --quick                 # a smoke check: one holdout, small members
    AUTOGLUON_PYTHON=/tmp/ag/bin/python python scripts/bench_vs_autogluon.py --holdouts 5

AutoGluon is an optional extra that lives in its own Python (never in the kit's venv, never
in `make test`): --autogluon-python names it, else $AUTOGLUON_PYTHON. Datasets (--datasets):
`titanic` and `house-prices` (the training rows of the Kaggle zips in --kaggle-dir, read
from the zip, never copied into the repo) and `synthetic` (kit.data.synthetic's table,
--synthetic-rows rows, its competition set up from the template as a new user would).

For each dataset, --holdouts times: --holdout-fraction of the training rows (a seeded
shuffle, seed + k) is held out; the rest becomes a competition data folder (train.csv, the
held-out rows without their labels as test.csv, a sample submission). AutoGluon fits the
rest in a subprocess (TabularPredictor, the competition's metric: rmsle as RMSE on log1p of
the target) and predicts the held-out rows; then scripts/portfolio.py runs on the same
folder with AutoGluon's measured wall time as --time-budget (at least --min-budget, default
0). Both are scored on the held-out labels with the kit's own metric (kit.metrics). A
portfolio that finished no member in its budget has no score: the row then says "n/a
(portfolio failed on a holdout)". Wall seconds are the bench's
clock around each subprocess; CPU seconds its children's user + system time
(getrusage), grandchildren included; load the machine's 1-minute load average at each
side's start and end (averaged; 2 cores here, other work shares them). Printed: one row per dataset, each score as mean ±
standard error over the holdouts, and win / loss / tie for the portfolio, where a tie is a
mean paired difference within its standard error (one holdout: no standard error, so the
row says "n/a"). Everything goes under --work-dir (default runs/bench_vs_autogluon/).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kit.config import load_config  # noqa: E402
from kit.data.synthetic import SLUG, write_competition  # noqa: E402
from kit.errors import ConfigError, KitError  # noqa: E402
from kit.io import write_json, write_text  # noqa: E402
from kit.metrics.competition import resolve_metric  # noqa: E402
from kit.paths import ROOT  # noqa: E402

REAL = {"titanic": "titanic", "house-prices": "house-prices-advanced-regression-techniques"}
DATASETS = (*REAL, "synthetic")
AG_METRIC = {"accuracy": "accuracy", "auc": "roc_auc", "rmsle": "root_mean_squared_error"}
QUICK_MEMBERS = "linear,lgbm"
QUICK_BUDGET = 60.0  # --quick: the portfolio gets at least this, AutoGluon fits LightGBM only

DRIVER = '''
import json, sys, time
import numpy as np, pandas as pd
from autogluon.tabular import TabularPredictor
spec = json.load(open(sys.argv[1]))
train, test = pd.read_csv(spec["train"]), pd.read_csv(spec["test"])
label = spec["label"]
if spec["log_label"]:
    train[label] = np.log1p(train[label])
kwargs = {"presets": spec["preset"]}
if spec["hyperparameters"]:
    kwargs["hyperparameters"] = spec["hyperparameters"]
predictor = TabularPredictor(label=label, eval_metric=spec["eval_metric"],
                             problem_type=spec["problem_type"], path=spec["path"],
                             verbosity=1).fit(train, **kwargs)
if spec["proba"]:
    pred = predictor.predict_proba(test).iloc[:, -1].to_numpy()
else:
    pred = predictor.predict(test).to_numpy()
if spec["log_label"]:
    pred = np.expm1(pred)
pd.DataFrame({"pred": pred}).to_csv(spec["out"], index=False)
json.dump({"best_model": predictor.model_best}, open(spec["out"] + ".json", "w"))
'''


def log(msg: str) -> None:
    print(f"[bench_vs_autogluon] {msg}", file=sys.stderr, flush=True)


def autogluon_python(given: str | None) -> str:
    path = given or os.environ.get("AUTOGLUON_PYTHON")
    if not path or not Path(path).is_file():
        raise ConfigError(f"AutoGluon's Python {path or '(not given)'} is not a file: give "
                          "--autogluon-python PATH (or set AUTOGLUON_PYTHON), a Python with "
                          "autogluon.tabular installed, e.g. python -m venv /tmp/ag && "
                          "/tmp/ag/bin/pip install autogluon.tabular")
    return path


# -- datasets: (competition slug, config, training rows, KIT_COMPETITIONS_ROOT or None) --------

def dataset(name: str, args) -> tuple[str, object, pd.DataFrame, Path | None]:
    if name == "synthetic":
        folder = args.work_dir / f"synthetic-{args.synthetic_rows}"
        competitions = folder / "competitions"
        if not (competitions / SLUG / "config.toml").exists():
            write_competition(folder / "data", args.synthetic_rows, 0, competitions=competitions)
        cfg = load_config(competitions / SLUG / "config.toml")
        return SLUG, cfg, pd.read_csv(folder / "data" / "train.csv"), competitions
    slug = REAL[name]
    cfg = load_config(ROOT / "competitions" / slug / "config.toml")
    archive = args.kaggle_dir / f"{slug}.zip"
    if not archive.is_file():
        raise KitError(f"{archive}: no such file; give --kaggle-dir, the folder of the "
                       f"Kaggle zips ({slug}.zip)")
    with zipfile.ZipFile(archive) as zf, zf.open(cfg.data.train) as fh:
        return slug, cfg, pd.read_csv(fh), None


def holdout_folder(cfg, rows: pd.DataFrame, k: int, args, name: str) -> tuple[Path, pd.DataFrame]:
    """Write a competition data folder whose test rows are a seeded holdout; its labels."""
    rng = np.random.default_rng(args.seed + k)
    order = rng.permutation(len(rows))
    cut = int(round(len(rows) * args.holdout_fraction))
    held, kept = rows.iloc[np.sort(order[:cut])], rows.iloc[np.sort(order[cut:])]
    folder = args.work_dir / name / f"holdout{k}"
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    kept.to_csv(data / cfg.data.train, index=False)
    held.drop(columns=cfg.data.target).to_csv(data / cfg.data.test, index=False)
    sample_value = 0.5 if cfg.submission.kind == "proba" else kept[cfg.data.target].iloc[0]
    pd.DataFrame({cfg.data.id: held[cfg.data.id], cfg.data.target: sample_value}).to_csv(
        data / cfg.data.sample_submission, index=False)
    return folder, held[[cfg.data.id, cfg.data.target]]


def timed(cmd: list[str], log_path: Path, env: dict | None = None) -> dict:
    """rc (exit status), wall seconds, cpu seconds of the process and its descendants, and
    load: the machine's 1-minute load average before and after (other work shares it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log_path, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"rc": rc, "wall": wall, "load": [load, os.getloadavg()[0]],
            "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def run_autogluon(cfg, metric, folder: Path, args) -> dict:
    data, out = folder / "data", folder / "autogluon"
    out.mkdir(exist_ok=True)
    target, drop = cfg.data.target, [cfg.data.id]
    pd.read_csv(data / cfg.data.train).drop(columns=drop).to_csv(out / "train.csv", index=False)
    pd.read_csv(data / cfg.data.test).drop(columns=drop).to_csv(out / "test.csv", index=False)
    spec = {"train": str(out / "train.csv"), "test": str(out / "test.csv"), "label": target,
            "log_label": metric.name == "rmsle", "eval_metric": AG_METRIC[metric.name],
            "problem_type": problem_type(cfg, metric, data),
            "proba": metric.scores == "probabilities", "path": str(out / "model"),
            "preset": args.preset, "out": str(out / "pred.csv"),
            "hyperparameters": {"GBM": {}} if args.quick else None}
    write_json(out / "spec.json", spec)
    write_text(out / "driver.py", DRIVER)
    times = timed([args.autogluon_python, str(out / "driver.py"), str(out / "spec.json")],
                  out / "log.txt")
    rc = times.pop("rc")
    if rc:
        return {"error": f"AutoGluon exit {rc}: see {out / 'log.txt'}", **times}
    ids = pd.read_csv(data / cfg.data.test)[cfg.data.id]
    pred = pd.read_csv(out / "pred.csv")["pred"].to_numpy()
    return {"pred": pd.Series(pred, index=ids.to_numpy()), **times}


def problem_type(cfg, metric, data: Path) -> str:
    """AutoGluon's name for the problem: regression, binary or multiclass."""
    if metric.problem == "regression":
        return "regression"
    classes = cfg.data.classes or pd.read_csv(data / cfg.data.train)[cfg.data.target].unique()
    return "binary" if len(classes) == 2 else "multiclass"


def run_portfolio(slug: str, cfg, folder: Path, budget: float, env: dict | None, args) -> dict:
    summary = folder / "portfolio.json"
    summary.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "scripts" / "portfolio.py"), "--comp", slug,
           "--data", str(folder / "data"), "--runs", str(folder / "runs"),
           "--submissions", str(folder / "submissions"), "--time-budget", f"{budget:.1f}",
           "--summary-json", str(summary)]
    if args.quick:
        cmd += ["--members", QUICK_MEMBERS, "--seeds", "1", "--dry-run"]
    times = timed(cmd, folder / "portfolio.log", env)
    if times.pop("rc") or not summary.exists():
        tail = (folder / "portfolio.log").read_text(errors="replace").strip().splitlines()
        return {"error": (tail or ["(no output)"])[-1], **times}
    facts = json.loads(summary.read_text())
    sub = pd.read_csv(facts["submission"])
    column = cfg.submission.target or cfg.data.target
    return {"pred": pd.Series(sub[column].to_numpy(), index=sub[cfg.data.id].to_numpy()),
            **times, "blend": (facts["blend"] or {}).get("method"),
            "members": sum(m["state"] == "done" for m in facts["members"])}


def score(metric, cfg, truth: pd.DataFrame, pred: pd.Series) -> float:
    """The kit's metric on the holdout: labels become one-hot rows, a probability of the
    positive class a two-column row, a regression's values stay values."""
    y = truth[cfg.data.target].to_numpy()
    p = pred.reindex(truth[cfg.data.id].to_numpy()).to_numpy()
    if metric.problem == "regression":
        return metric(y.astype(float), p.astype(float))
    classes = list(cfg.data.classes) or sorted({str(v) for v in y})
    labels = np.array([classes.index(str(v)) for v in y])
    if metric.scores == "labels":
        index = np.array([classes.index(str(v)) for v in p])
        return metric(labels, np.eye(len(classes))[index])
    return metric(labels, np.column_stack([1 - p.astype(float), p.astype(float)]))


# -- the bench -------------------------------------------------------------------------------

def bench_dataset(name: str, args) -> dict:
    slug, cfg, rows, competitions = dataset(name, args)
    env = {"KIT_COMPETITIONS_ROOT": str(competitions)} if competitions else None
    metric = resolve_metric(cfg)
    holdouts = []
    for k in range(args.holdouts):
        folder, truth = holdout_folder(cfg, rows, k, args, name)
        log(f"{name} holdout {k}: {len(rows) - len(truth)} training rows, {len(truth)} held "
            f"out; AutoGluon {args.preset}")
        ag = run_autogluon(cfg, metric, folder, args)
        budget = max(ag["wall"], args.min_budget)
        log(f"{name} holdout {k}: AutoGluon {ag['wall']:.0f} s wall; portfolio with "
            f"--time-budget {budget:.0f}")
        kit = run_portfolio(slug, cfg, folder, budget, env, args)
        record = {"holdout": k, "budget": budget}
        for who, out in (("autogluon", ag), ("portfolio", kit)):
            record[who] = {key: v for key, v in out.items() if key != "pred"}
            if "pred" in out:
                record[who]["score"] = score(metric, cfg, truth, out["pred"])
        log(f"{name} holdout {k}: " + ", ".join(
            f"{who} {record[who].get('score', record[who].get('error'))}"
            for who in ("autogluon", "portfolio")))
        holdouts.append(record)
    return {"dataset": name, "metric": metric.name, "mode": metric.mode,
            "holdouts": holdouts, **compare(holdouts, metric.mode)}


def mean_se(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    se = arr.std(ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else float("nan")
    return float(arr.mean()), float(se)


def compare(holdouts: list[dict], mode: str) -> dict:
    """Means ± standard errors; win / loss / tie from the paired differences."""
    out = {}
    for who in ("autogluon", "portfolio"):
        scores = [h[who]["score"] for h in holdouts if "score" in h[who]]
        out[who] = {"score": mean_se(scores) if scores else None,
                    "scored": len(scores),
                    "wall": float(np.mean([h[who]["wall"] for h in holdouts])),
                    "cpu": float(np.mean([h[who]["cpu"] for h in holdouts])),
                    "load": float(np.mean([np.mean(h[who]["load"]) for h in holdouts]))}
    both = [h for h in holdouts if "score" in h["autogluon"] and "score" in h["portfolio"]]
    sign = 1 if mode == "max" else -1
    diffs = [sign * (h["portfolio"]["score"] - h["autogluon"]["score"]) for h in both]
    if len(both) < len(holdouts):  # a side failed on some holdout: said, never scored
        failed = [who for who in ("autogluon", "portfolio")
                  if any("score" not in h[who] for h in holdouts)]
        out["result"] = f"n/a ({' and '.join(failed)} failed on a holdout)"
    elif len(diffs) < 2:
        out["result"] = "n/a (one holdout)"
    else:
        gain, se = mean_se(diffs)
        out["result"] = "tie" if abs(gain) <= se else ("win" if gain > 0 else "loss")
    return out


def table(results: list[dict]) -> str:
    def cell(s):
        if s["score"] is None:
            return "failed"
        mean, se = s["score"]
        return f"{mean:.4f}" if np.isnan(se) else f"{mean:.4f} ± {se:.4f}"

    lines = ["| dataset | metric | AutoGluon | portfolio | AutoGluon wall / CPU s | "
             "portfolio wall / CPU s | load (AutoGluon / portfolio) | portfolio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        ag, kit = r["autogluon"], r["portfolio"]
        lines.append(f"| {r['dataset']} | {r['metric']} ({r['mode']}) | {cell(ag)} | "
                     f"{cell(kit)} | {ag['wall']:.0f} / {ag['cpu']:.0f} | "
                     f"{kit['wall']:.0f} / {kit['cpu']:.0f} | "
                     f"{ag['load']:.1f} / {kit['load']:.1f} | {r['result']} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--autogluon-python", help="a Python with autogluon.tabular "
                   "(default: $AUTOGLUON_PYTHON)")
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help=f"comma-separated, of {', '.join(DATASETS)}")
    p.add_argument("--holdouts", type=int, default=3, help="repeated holdouts per dataset")
    p.add_argument("--holdout-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="holdout k shuffles with seed + k")
    p.add_argument("--preset", default="medium_quality", help="AutoGluon's preset "
                   "(medium_quality; best_quality is optional and slow)")
    p.add_argument("--synthetic-rows", type=int, default=10_000,
                   help="rows of kit.data.synthetic's table (train 80 %% + test)")
    p.add_argument("--kaggle-dir", type=Path, default=Path("/work/shared/kaggle"),
                   help="folder of the Kaggle zips (titanic.zip, house-prices-...zip)")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_vs_autogluon")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke check: one holdout, AutoGluon LightGBM only, the portfolio "
                   f"--members {QUICK_MEMBERS} --dry-run with at least {QUICK_BUDGET:.0f} s")
    p.add_argument("--min-budget", type=float, default=0.0, metavar="SECONDS",
                   help="the portfolio's --time-budget is at least this (default 0: "
                   f"AutoGluon's wall time alone; --quick: {QUICK_BUDGET:.0f}); a floor gives the "
                   "portfolio more time than AutoGluon took: the wall columns show how much")
    p.add_argument("--summary-json", type=Path)
    return p.parse_args(argv)


def dataset_names(text: str) -> list[str]:
    """--datasets as a list of DATASETS' names; an unknown or empty one is a ConfigError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or any(n not in DATASETS for n in names):
        raise ConfigError(f"--datasets {text!r}: valid: {', '.join(DATASETS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.autogluon_python = autogluon_python(args.autogluon_python)
        names = dataset_names(args.datasets)
        if args.quick:
            args.holdouts, args.min_budget = 1, max(args.min_budget, QUICK_BUDGET)
        if args.holdouts < 1 or not 0 < args.holdout_fraction < 1:
            raise ConfigError("--holdouts must be 1 or more and --holdout-fraction in (0, 1)")
        args.work_dir = args.work_dir.resolve()
        results = [bench_dataset(name, args) for name in names]
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(results), flush=True)
    if args.min_budget:
        print(f"(the portfolio's budget: AutoGluon's wall time, at least {args.min_budget:.0f} s)")
    if args.summary_json:
        write_json(args.summary_json, {"preset": args.preset, "quick": args.quick,
                                       "min_budget": args.min_budget,
                                       "holdouts": args.holdouts, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
