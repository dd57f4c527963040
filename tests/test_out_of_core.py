"""The out-of-core run (kit/out_of_core/) against the in-memory path on small generated
tables, forced by data.out_of_core = "on" or a low data.out_of_core_mb."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kit.cli import run_script, train_main
from kit.data.synthetic import write_competition
from kit.splits.folds import hash_folds

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SLUG = "synthetic-tabular"


@pytest.fixture
def comp(tmp_path, monkeypatch):
    """A 2,400-row synthetic competition (1,920 train, 480 test rows) set up as a user would."""
    comps = tmp_path / "comps"
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(comps))
    write_competition(tmp_path / "data", 2400, seed=1, competitions=comps)
    return tmp_path


def argv(tmp, *sets, folds=None):
    out = ["--comp", SLUG, "--data", str(tmp / "data"), "--runs", str(tmp / "runs"),
           "--submissions", str(tmp / "subs"), "--set", "cv.n_splits=3",
           "--set", "model.params.xgb.rounds=30", "--set", "train.epochs=2"]
    for s in sets:
        out += ["--set", s]
    return out + (["--fits", str(folds)] if folds else [])


def oof(summary) -> pd.DataFrame:
    return pd.read_parquet(f"{summary['run_dir']}/oof.parquet").sort_values("id", ignore_index=True)


@pytest.mark.parametrize("kind,folds", [("xgb", None), ("lgbm", None), ("mlp", 1)])
def test_streamed_run_equals_the_in_memory_run_on_the_same_folds(comp, kind, folds):
    """Same hashed folds, same preprocessing (no medians differ at this size: the sample is
    the table), same model: the same OOF and submission. A network's later folds start
    from the RNG state earlier folds left, which the two paths use differently, so the
    network compares its first fold."""
    same = [f"model.name={kind}", "cv.strategy=hash", "cv.repeats=1", "train.device_data=false"]
    streamed = train_main(argv(comp, "data.out_of_core=on", *same, folds=folds))
    memory = train_main(argv(comp, "data.out_of_core=off", *same, folds=folds))
    a, b = oof(streamed), oof(memory)
    assert len(a) == len(b) == (1920 if folds is None else len(a))
    np.testing.assert_array_equal(a["id"], b["id"])
    np.testing.assert_array_equal(a["fold"], b["fold"])
    np.testing.assert_allclose(a[["p_0", "p_1"]], b[["p_0", "p_1"]], rtol=1e-6, atol=1e-7)
    sub_a, sub_b = pd.read_csv(streamed["submission"]), pd.read_csv(memory["submission"])
    pd.testing.assert_series_equal(sub_a["id"], sub_b["id"])
    np.testing.assert_allclose(sub_a["target"], sub_b["target"], rtol=1e-6, atol=1e-7)
    # the streamed score bins the predictions (kit/out_of_core/metrics.py): within 1e-5 here
    assert streamed["cv"]["fold_scores"] == pytest.approx(memory["cv"]["fold_scores"], abs=1e-5)


def test_every_row_gets_one_fold_from_its_id_and_auto_switches_by_size(comp, capsys):
    summary = train_main(argv(comp, "data.out_of_core_mb=0.01", "model.name=xgb"))
    assert "MB) pass data.out_of_core_mb = 0.01" in capsys.readouterr().out  # auto streamed
    prepared = pq.read_table(f"{summary['run_dir']}/cache/train.parquet").to_pandas()
    train = pd.read_csv(comp / "data" / "train.csv")
    assert len(prepared) == len(train) and prepared["_row"].tolist() == list(range(len(train)))
    np.testing.assert_array_equal(prepared["_fold"], hash_folds(train["id"].to_numpy(), 3, 42))
    assert set(prepared["_fold"]) == {0, 1, 2}
    frame = oof(summary)
    assert sorted(frame["id"]) == sorted(train["id"]) and frame["id"].is_unique
    submission = pd.read_csv(summary["submission"])
    sample = pd.read_csv(comp / "data" / "sample_submission.csv")
    pd.testing.assert_series_equal(submission["id"], sample["id"])
    assert submission["target"].between(0, 1).all()


def test_a_regression_streams_too(comp):
    train = pd.read_csv(comp / "data" / "train.csv")
    train["target"] = train["num_00"] * 3 + train["target"]  # a value to predict
    train.to_csv(comp / "data" / "train.csv", index=False)
    summary = train_main(argv(comp, "data.out_of_core=on", "model.name=xgb",
                              "competition.problem=regression", "competition.metric=rmse",
                              "submission.kind=value"))
    assert summary["cv"]["oof"] < train["target"].std()  # learned something
    assert pd.read_csv(summary["submission"])["target"].notna().all()


def test_kinds_that_cannot_stream_and_whole_table_hooks_stop_before_training(comp, capsys):
    code = run_script(train_main, argv(comp, "data.out_of_core=on", "model.name=catboost"))
    err = capsys.readouterr().err
    assert code == 2 and "'catboost' cannot stream" in err and "mlp, tabm, xgb" in err
    (comp / "comps" / SLUG / "features.py").write_text(
        "def build(train, test):\n    return train, test\n")
    code = run_script(train_main, argv(comp, "data.out_of_core=on", "model.name=xgb"))
    err = capsys.readouterr().err
    assert code == 2 and "build()" in err and "transform_batch" in err
    assert not (comp / "subs").exists()


def test_a_test_file_missing_a_sample_id_writes_no_submission(comp, capsys):
    test = pd.read_csv(comp / "data" / "test.csv")
    missing = test["id"].iloc[-1]
    test.iloc[:-1].to_csv(comp / "data" / "test.csv", index=False)
    code = run_script(train_main, argv(comp, "data.out_of_core=on", "model.name=xgb"))
    err = capsys.readouterr().err
    assert code == 2 and f"no id {missing!r}" in err.replace('"', "'")
    assert not list((comp / "subs").rglob("*.csv"))
    assert not list((comp / "runs").rglob("submission.csv"))


def test_a_resumed_run_reuses_its_prepared_table_while_the_sources_are_unchanged(comp, capsys):
    import os

    first = train_main(argv(comp, "data.out_of_core=on", "model.name=xgb"))
    run_dir = Path(first["run_dir"])
    prepared = run_dir / "cache" / "train.parquet"
    written = prepared.stat().st_mtime_ns
    (run_dir / "fold2" / "done.json").unlink()  # as if stopped in the last fold
    capsys.readouterr()
    resume = ["--resume", str(run_dir), "--submissions", str(comp / "subs")]
    again = train_main(resume)
    assert "prepared table reused" in capsys.readouterr().out
    assert prepared.stat().st_mtime_ns == written
    assert again["cv"]["fold_scores"] == pytest.approx(first["cv"]["fold_scores"])
    pd.testing.assert_frame_equal(pd.read_csv(again["submission"]), pd.read_csv(first["submission"]))
    # a changed source: the table is prepared again, and the folds trained on the old one
    # are not mixed with the new (the resume is refused; the run's files stay as they were)
    source = comp / "data" / "train.csv"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    scores = (run_dir / "scores.json").read_bytes()
    assert run_script(train_main, resume) == 2
    out, err = capsys.readouterr()
    assert "prepared table reused" not in out
    assert "done.json: the fold trained on prepared table" in err
    assert "start a new run instead of --resume" in err
    assert (run_dir / "scores.json").read_bytes() == scores


def test_transform_batch_runs_on_streamed_batches_with_the_target_hidden(comp):
    (comp / "comps" / SLUG / "features.py").write_text(
        "def transform_batch(frame):\n"
        "    assert 'target' not in frame.columns\n"
        "    frame = frame.copy()\n"
        "    frame['num_sum'] = frame['num_00'] + frame['num_02']\n"
        "    return frame\n")
    summary = train_main(argv(comp, "data.out_of_core=on", "model.name=xgb"))
    prepared = pq.read_schema(f"{summary['run_dir']}/cache/test.parquet")
    assert "num_sum" in prepared.names


def test_xgboost_on_a_two_worker_dask_cluster_writes_a_valid_submission(comp, capsys,
                                                                       monkeypatch):
    from kit.out_of_core import prepared as layout

    monkeypatch.setattr(layout, "BATCH_ROWS", 500)  # row groups dask's reader may merge
    summary = train_main(argv(comp, "model.name=xgb", "train.dask_scheduler=local:2"))
    assert "out of core (" in capsys.readouterr().out  # Dask reads the prepared parquet
    run = pd.read_json(f"{summary['run_dir']}/scores.json", typ="series")
    assert all(info["dask_scheduler"].startswith("tcp://") for info in run["fold_info"])
    assert [info["dask_workers"] for info in run["fold_info"]] == [2, 2, 2]  # both hold rows
    assert 0.6 < summary["cv"]["oof"] < 0.95
    submission = pd.read_csv(summary["submission"])
    sample = pd.read_csv(comp / "data" / "sample_submission.csv")
    pd.testing.assert_series_equal(submission["id"], sample["id"])
    assert submission["target"].between(0, 1).all()
    code = run_script(train_main, argv(comp, "model.name=mlp", "train.dask_scheduler=local:2"))
    assert code == 2 and "trains xgb (xgboost.dask)" in capsys.readouterr().err


def test_xgboost_on_a_scheduler_and_workers_started_as_the_readme_says(comp, tmp_path):
    """`dask scheduler`, `dask worker ADDRESS`, then the run pointed at the address."""
    import json
    import subprocess
    import sys
    import time

    from dask.distributed import Client

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(file)], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address,
                                       "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                                      **quiet))
        with Client(address, timeout="30s") as probe:
            probe.wait_for_workers(2, timeout=60)
        summary = train_main(argv(comp, "model.name=xgb", f"train.dask_scheduler={address}",
                                  folds=1))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    run = pd.read_json(f"{summary['run_dir']}/scores.json", typ="series")
    assert run["fold_info"][0]["dask_scheduler"] == address
    assert run["fold_info"][0]["dask_workers"] == 2
    submission = pd.read_csv(summary["submission"])
    assert submission["target"].between(0, 1).all() and len(submission) == 480


def test_a_network_scores_its_epochs_on_a_bounded_subset_and_its_fold_on_all_rows(
        comp, monkeypatch):
    from kit.out_of_core import prepared as layout

    monkeypatch.setattr(layout, "VALID_ROWS", 100)  # ~15 % of a fold's 640 validation rows
    summary = train_main(argv(comp, "data.out_of_core=on", "model.name=mlp", folds=1))
    frame = oof(summary)
    prepared = pq.read_table(f"{summary['run_dir']}/cache/train.parquet").to_pandas()
    assert len(frame) == (prepared["_fold"] == 0).sum()  # every validation row predicted
    history = pd.read_csv(f"{summary['run_dir']}/fold0/history.csv")
    assert history["valid_metric"].iloc[-1] != pytest.approx(summary["cv"]["fold_scores"][0], abs=1e-3)


def test_xgboost_beyond_its_memory_budget_trains_on_external_memory(comp):
    sets = ["data.out_of_core=on", "model.name=xgb"]
    in_core = train_main(argv(comp, *sets, folds=1))
    external = train_main(argv(comp, *sets, "data.out_of_core_xgb_mb=0.001", folds=1))
    info = pd.read_json(f"{external['run_dir']}/fold0/done.json", typ="series")
    assert info["xgb_matrix"] == "external"
    assert not list((comp / "runs").rglob("xgb-cache"))  # the page cache is removed
    assert external["cv"]["oof"] == pytest.approx(in_core["cv"]["oof"], abs=0.02)


def test_parquet_parts_with_other_schemas_and_an_empty_glob_are_named(tmp_path):
    from kit.data.sources import parquet_sources
    from kit.errors import DataError

    pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"id": [3, 4], "x": ["u", "v"]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"b.parquet and .*a.parquet are parts of one table "
                                        r"but differ in column\(s\) \['x'\]"):
        parquet_sources(tmp_path, "*.parquet", what="train")
    with pytest.raises(DataError, match="no files match"):
        parquet_sources(tmp_path, "train-*.parquet", what="train")


def test_predict_py_refuses_an_out_of_core_run(comp, capsys):
    from kit.predict import predict_main

    summary = train_main(argv(comp, "data.out_of_core=on", "model.name=xgb", folds=1))
    code = run_script(predict_main, ["--run", summary["run_dir"], "--data", str(comp / "data")])
    assert code == 2 and "trained out of core" in capsys.readouterr().err


# --- row weights (data.weight) out of core ------------------------------------------------


def weighted(comp) -> pd.DataFrame:
    """train.csv with a weight column `w` (0.5, 1 or 3; the test file has none)."""
    train = pd.read_csv(comp / "data" / "train.csv")
    train["w"] = np.random.default_rng(3).choice([0.5, 1.0, 3.0], len(train))
    train.to_csv(comp / "data" / "train.csv", index=False)
    return train


@pytest.mark.parametrize("kind,folds", [("xgb", None), ("lgbm", None), ("mlp", 1)])
def test_a_weighted_streamed_run_trains_and_scores_as_the_in_memory_one(comp, kind, folds):
    """The weights stream with the rows: the boosters and the network train on them (the
    same OOF as the in-memory weighted run on the same folds), and every score is the
    weighted metric of oof.parquet, whose `weight` is each row's."""
    import json

    from kit.metrics.registry import get_metric

    train = weighted(comp)
    same = [f"model.name={kind}", "cv.strategy=hash", "cv.repeats=1", "train.device_data=false",
            "data.weight=w"]
    streamed = train_main(argv(comp, "data.out_of_core=on", *same, folds=folds))
    memory = train_main(argv(comp, "data.out_of_core=off", *same, folds=folds))
    plain = train_main(argv(comp, "data.out_of_core=on", *same, "data.weight=", folds=folds))
    a, b, c = oof(streamed), oof(memory), oof(plain)
    np.testing.assert_array_equal(a["id"], b["id"])
    np.testing.assert_allclose(a[["p_0", "p_1"]], b[["p_0", "p_1"]], rtol=1e-6, atol=1e-7)
    assert np.abs(a[["p_0", "p_1"]].to_numpy() - c[["p_0", "p_1"]].to_numpy()).max() > 1e-3
    np.testing.assert_array_equal(a["weight"], a["id"].map(train.set_index("id")["w"]))
    scores = json.loads((Path(streamed["run_dir"]) / "scores.json").read_text())
    assert scores["weight"] == "w" and scores["out_of_core"]
    auc, labels = get_metric("auc"), a["target"].to_numpy()
    proba, w = a[["p_0", "p_1"]].to_numpy(), a["weight"].to_numpy()
    # auc is counted in bins out of core: within 1e-4 (the run prints the bound past it)
    assert scores["oof"] == pytest.approx(auc(labels, proba, w), abs=1e-4)
    assert scores["oof"] != pytest.approx(auc(labels, proba), abs=1e-3)
    for k, score in enumerate(scores["fold_scores"]):
        part = a["fold"].to_numpy() == k
        assert score == pytest.approx(auc(labels[part], proba[part], w[part]), abs=1e-4)
    assert scores["fold_scores"] == pytest.approx(memory["cv"]["fold_scores"], abs=1e-4)


@pytest.mark.parametrize("name,k", [(name, k) for name in ("accuracy", "logloss", "f1_macro",
                                                            "auc") for k in (2, 4)]
                         + [(name, 0) for name in ("rmse", "rmsle", "mae", "r2")])
def test_weighted_metric_sums_are_the_registrys_weighted_metrics(name, k):
    """k classes, or a regression (k = 0)."""
    from kit.metrics.registry import get_metric
    from kit.out_of_core.metrics import MetricSums

    metric = get_metric(name)
    rng = np.random.default_rng(k)
    weight = rng.uniform(0, 3, 5000)
    if k:
        y = rng.integers(0, k, 5000)
        pred = rng.dirichlet(np.ones(k), 5000)
        pred[np.arange(5000), y] += 0.3
        pred /= pred.sum(axis=1, keepdims=True)
    else:
        y = rng.gamma(2.0, size=5000)
        pred = (y + rng.normal(0, 0.5, 5000))[:, None]
    sums = MetricSums(metric, k)
    for start in range(0, 5000, 700):
        sums.add(y[start:start + 700], pred[start:start + 700], weight[start:start + 700])
    value = sums.value()
    if name == "auc":
        assert abs(value - metric(y, pred, weight)) <= sums.bound * (1 + 1e-9)
    else:
        assert value == pytest.approx(metric(y, pred, weight), rel=1e-10)
    assert value != pytest.approx(metric(y, pred), rel=1e-6)  # the weights count


def test_xgboost_on_dask_trains_on_row_weights(comp, monkeypatch):
    """Weights of 0 on most positive rows: a model that trained on them predicts far fewer
    positives than the labels hold; every score is the weighted one."""
    import json

    from kit.metrics.registry import get_metric
    from kit.out_of_core import prepared as layout

    monkeypatch.setattr(layout, "BATCH_ROWS", 500)
    train = pd.read_csv(comp / "data" / "train.csv")
    rng = np.random.default_rng(5)
    train["w"] = np.where((train["target"] == 1) & (rng.random(len(train)) < 0.9), 0.0, 1.0)
    train.to_csv(comp / "data" / "train.csv", index=False)
    summary = train_main(argv(comp, "model.name=xgb", "train.dask_scheduler=local:2",
                              "data.weight=w", folds=1))
    frame = oof(summary)
    assert frame["p_1"].mean() < 0.5 * train["target"].mean()
    scores = json.loads((Path(summary["run_dir"]) / "scores.json").read_text())
    assert scores["weight"] == "w"
    auc = get_metric("auc")
    expected = auc(frame["target"].to_numpy(), frame[["p_0", "p_1"]].to_numpy(),
                   frame["weight"].to_numpy())
    assert scores["fold_scores"][0] == pytest.approx(expected, abs=1e-3)


def test_a_bad_weight_is_named_with_its_row_before_training(comp, capsys):
    train = weighted(comp)
    train.loc[1500, "w"] = -1.0  # in the first batch: row 1500 of the file
    train.to_csv(comp / "data" / "train.csv", index=False)
    code = run_script(train_main, argv(comp, "data.out_of_core=on", "model.name=xgb",
                                       "data.weight=w"))
    err = capsys.readouterr().err
    assert code == 2 and "data.weight column 'w' holds -1.0 in row 1500" in err, err[-2000:]
    assert not list((comp / "runs").rglob("done.json"))
