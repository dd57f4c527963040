"""Every competition folder is a working example: its config loads, its demo data trains
end to end, and the demo competitions for the shapes beyond one class or one number per row
show theirs (issue 30, item 8): PetFinder (an ordinal target scored by qwk, labels cut
with cut points fitted in the CV, a text column, folds grouped by rescuer), Bike
Sharing Demand (time-ordered rows: forward-only CV on cv.time, RMSLE), Playground S3E18
(two binary targets, the mean column AUC), Jane Street 2024 (row weights, the
competition's own weighted metric, days in time order) and Tabular Playground July 2021
(three numeric targets a row, hours in time order, the mean column RMSLE)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_script

from kit.config import load_config

ROOT = Path(__file__).resolve().parents[1]
COMPETITIONS = sorted(p.parent.name for p in (ROOT / "competitions").glob("*/config.toml"))


@pytest.mark.parametrize("slug", COMPETITIONS)
def test_every_competition_config_loads_and_has_demo_data(slug):
    cfg = load_config(ROOT / "competitions" / slug / "config.toml")
    assert cfg.competition.slug == slug
    assert (ROOT / "competitions" / slug / "demo.py").is_file(), \
        f"competitions/{slug} has no demo.py: `train.py --comp {slug} --demo` cannot run"


def demo_run(tmp_path: Path, slug: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`train.py --comp SLUG --demo --dry-run` in this process (conftest.run_script)."""
    proc, summary = run_script("train.py", "--comp", slug, "--demo", "--dry-run", "--data",
                               tmp_path / "data", "--runs", tmp_path / "runs", "--submissions",
                               tmp_path / "subs", summary=tmp_path / "summary.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, summary


def test_petfinder_demo_submits_ordinal_labels_from_cut_points_with_text_and_groups(tmp_path):
    proc, summary = demo_run(tmp_path, "petfinder-adoption-prediction")
    run = Path(summary["run_dir"])
    cuts = json.loads((run / "cut_points.json").read_text())
    assert len(cuts["cut_points"]) == 4  # five ordered classes
    submission = pd.read_csv(summary["submission"])
    sample = pd.read_csv(tmp_path / "data" / "test" / "sample_submission.csv")
    assert list(submission.columns) == ["PetID", "AdoptionSpeed"]
    assert submission["PetID"].tolist() == sample["PetID"].tolist()
    assert set(submission["AdoptionSpeed"]) <= {0, 1, 2, 3, 4}  # labels, not probabilities
    assert "cut points fitted on the other folds" in proc.stdout
    folds = pd.read_csv(run / "folds.csv").merge(
        pd.read_csv(tmp_path / "data" / "train" / "train.csv")[["PetID", "RescuerID"]],
        left_on="id", right_on="PetID")
    assert folds.groupby("RescuerID")["fold"].nunique().max() == 1  # a rescuer in one fold
    assert any(c.startswith("svd_Description") for c in
               pd.read_csv(run / "importance.csv")["feature"])  # the text column was used


def test_bike_sharing_demo_validates_forward_in_time(tmp_path):
    proc, summary = demo_run(tmp_path, "bike-sharing-demand")
    assert "expanding-window fits" in proc.stdout
    run = Path(summary["run_dir"])
    folds = pd.read_csv(run / "folds.csv")
    times = pd.to_datetime(folds["id"])
    for fit in sorted(set(folds["fold"]) - {-1}):
        trained = times[folds["train_from"] <= fit]
        assert trained.max() < times[folds["fold"] == fit].min()  # the past predicts the future
    submission = pd.read_csv(summary["submission"])
    assert list(submission.columns) == ["datetime", "count"] and (submission["count"] >= 0).all()
    scores = json.loads((run / "scores.json").read_text())
    assert scores["metric"] == "rmsle" and scores["oof_rows"] < len(folds)  # block 0 trains only


def test_s3e18_demo_predicts_two_labels_on_one_split(tmp_path):
    proc, summary = demo_run(tmp_path, "playground-series-s3e18")
    run = Path(summary["run_dir"])
    submission = pd.read_csv(summary["submission"])
    assert list(submission.columns) == ["id", "EC1", "EC2"]
    assert submission[["EC1", "EC2"]].stack().between(0, 1).all()
    folds = [pd.read_csv(run / "targets" / c / "folds.csv") for c in ("EC1", "EC2")]
    pd.testing.assert_frame_equal(*folds)  # one split for both labels
    scores = json.loads((run / "scores.json").read_text())
    assert scores["oof"] == pytest.approx(np.mean([scores["targets"][c]["oof"]
                                                   for c in ("EC1", "EC2")]))
    assert "mean over 2 targets" in proc.stdout


def test_jane_street_demo_weighs_rows_in_its_own_metric(tmp_path):
    _, summary = demo_run(tmp_path, "jane-street-real-time-market-data-forecasting")
    run = Path(summary["run_dir"])
    scores = json.loads((run / "scores.json").read_text())
    assert scores["metric"] == "weighted_zero_mean_r2" and scores["weight"] == "weight"
    train = pd.read_csv(tmp_path / "data" / "train.csv")
    oof = pd.read_parquet(run / "oof.parquet")  # each row's weight beside its prediction
    assert (oof["weight"] == oof["id"].map(train.set_index("row_id")["weight"])).all()
    y, p, w = oof["target"], oof["pred"], oof["weight"]
    assert scores["oof"] == pytest.approx(1 - (w * (y - p) ** 2).sum() / (w * y ** 2).sum())
    assert scores["oof"] != pytest.approx(1 - ((y - p) ** 2).sum() / (y ** 2).sum())
    folds = pd.read_csv(run / "folds.csv").merge(train[["row_id", "date_id"]],
                                                 left_on="id", right_on="row_id")
    for fit in sorted(set(folds["fold"]) - {-1}):  # later days validate
        assert folds.loc[folds["train_from"] <= fit, "date_id"].max() < \
            folds.loc[folds["fold"] == fit, "date_id"].min()


def test_tps_jul_2021_demo_predicts_three_numbers_forward_in_time(tmp_path):
    proc, summary = demo_run(tmp_path, "tabular-playground-series-jul-2021")
    targets = ["target_carbon_monoxide", "target_benzene", "target_nitrogen_oxides"]
    run = Path(summary["run_dir"])
    submission = pd.read_csv(summary["submission"])
    sample = pd.read_csv(tmp_path / "data" / "sample_submission.csv")
    assert list(submission.columns) == list(sample.columns) == ["date_time", *targets]
    assert submission["date_time"].tolist() == sample["date_time"].tolist()  # the id: a string
    assert (submission[targets] >= 0).all().all()
    folds = [pd.read_csv(run / "targets" / c / "folds.csv") for c in targets]
    for other in folds[1:]:
        pd.testing.assert_frame_equal(folds[0], other)  # one split for the three columns
    times = pd.to_datetime(folds[0]["id"])
    for fit in sorted(set(folds[0]["fold"]) - {-1}):  # each validation block after its training
        assert times[folds[0]["train_from"] <= fit].max() < times[folds[0]["fold"] == fit].min()
    scores = json.loads((run / "scores.json").read_text())
    for c in targets:  # each column's OOF is its RMSLE on the validated hours
        oof = pd.read_parquet(run / "targets" / c / "oof.parquet")
        rmsle = np.sqrt(np.mean((np.log1p(oof["pred"]) - np.log1p(oof["target"])) ** 2))
        assert scores["targets"][c]["oof"] == pytest.approx(rmsle)
        column = json.loads((run / "targets" / c / "scores.json").read_text())
        assert len(oof) == column["oof_rows"] < len(folds[0])  # the first block trains only
    assert scores["oof"] == pytest.approx(np.mean([scores["targets"][c]["oof"] for c in targets]))
    lists = load_config(run / "targets" / targets[0] / "config.toml").features.numeric
    assert "date_time" not in lists and {"hour", "weekday"} <= set(lists)  # "auto", features.py
    assert "expanding-window fits" in proc.stdout and "mean over 3 targets" in proc.stdout
