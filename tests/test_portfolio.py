"""scripts/portfolio.py: real members on the Titanic demo data (train.py --dry-run: two fold
fits each, one thread), killed and resumed; a member that crashes is recorded and the rest
goes on; the budget rule on a probe whose cost is given; bad input refused with exit status 2
before anything is written; kit.runtime.in_process (the members' train.py calls) puts the
process back as it was."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_in_process

SCRIPT = ROOT / "scripts" / "portfolio.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def portfolio_args(tmp_path, *extra) -> list[str]:
    return ["--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"), *extra]


def portfolio(*args) -> subprocess.CompletedProcess:
    """scripts/portfolio.py in this process (conftest.run_in_process); its members' train.py
    and ensemble.py calls run in this process too (kit.portfolio.calls), one thread each."""
    return run_in_process(SCRIPT.name, *args, env={"OMP_NUM_THREADS": "1"})


def resume(folder, budget: float, *extra):
    return portfolio("--resume", folder, "--time-budget", budget, *extra)


def manifest_of(tmp_path) -> tuple:
    found = list((tmp_path / "runs" / "titanic" / "portfolios").glob("*/manifest.json"))
    return (found[0].parent, json.loads(found[0].read_text())) if found else (None, None)


def kill_after_first_member(tmp_path, data) -> tuple:
    """Start a portfolio; SIGKILL it (and its train.py) once its first member is done."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *portfolio_args(
                                tmp_path, "--comp", "titanic", "--data", str(data),
                                "--dry-run", "--members", "linear,lgbm", "--seeds", "1",
                                "--time-budget", "600")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            folder, manifest = manifest_of(tmp_path)
            if manifest and manifest["jobs"][0]["state"] == "done":
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return manifest_of(tmp_path)


def files_of(run_dir) -> dict:
    return {p.relative_to(run_dir): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_a_killed_portfolio_resumes_skips_what_does_not_fit_then_blends(tmp_path, titanic_demo):
    folder, manifest = kill_after_first_member(tmp_path, titanic_demo)
    linear = manifest["jobs"][0]
    assert linear["member"] == "linear" and linear["state"] == "done", manifest
    kept = files_of(Path(linear["run_dir"]))
    assert not (tmp_path / "subs" / "titanic").exists()  # members' submissions stay inside

    # a budget two seconds above what is spent: lgbm cannot fit, and the line says so. The
    # earlier session is made to have spent a minute more than the least budget allowed, so
    # the two seconds are all that is left however fast the machine is (a dry-run lgbm
    # takes a few seconds: against MIN_BUDGET it could fit)
    from kit.portfolio.members import MIN_BUDGET

    record = json.loads((folder / "manifest.json").read_text())
    record["spent"] = MIN_BUDGET + 60.0
    (folder / "manifest.json").write_text(json.dumps(record))
    short = resume(folder, record["spent"] + 2)
    assert short.returncode == 0, short.stderr
    assert "lgbm_s0: skipped:" in short.stdout and "budget left" in short.stdout
    assert "linear_s0: done in an earlier session, kept" in short.stdout
    lgbm = json.loads((folder / "manifest.json").read_text())["jobs"][1]
    assert lgbm["state"] == "skipped" and lgbm["run_dir"] == ""

    # a resume with more time tries the skipped member again, then blends the two
    summary_path = tmp_path / "summary.json"
    full = resume(folder, 600, "--summary-json", str(summary_path))
    assert full.returncode == 0, full.stderr + full.stdout
    summary = json.loads(summary_path.read_text())
    states = {(m["member"], m["state"]) for m in summary["members"]}
    assert states == {("linear", "done"), ("lgbm", "done")}
    assert files_of(Path(linear["run_dir"])) == kept  # the finished member untouched
    blend = summary["blend"]
    assert blend["method"] in ("hill", "stack") and set(blend["cv_by_method"]) == {"hill", "stack"}
    assert len(blend["weights"]) == 2 and summary["metric"] == "accuracy"
    submission = pd.read_csv(summary["submission"])
    sample = pd.read_csv(titanic_demo / "gender_submission.csv")
    assert list(submission.columns) == list(sample.columns) and len(submission) == len(sample)
    assert summary["submission"].startswith(str(tmp_path / "subs" / "titanic"))
    report = (folder / "report.md").read_text()
    assert "Refit off: each member's test predictions are its fold models' mean." in report
    assert "| lgbm | 0 | done |" in report and "Chosen: " in report


@pytest.mark.parametrize("fold_times, budget, why", [
    # no `fold k` lines: the probe's own 30 s are two fits of 15 s; 36 - 2 x 15 = 6 s a call
    ((), 100.0, "estimated 201 s for its other 13 fold fits (15.0 s a fold + 6.0 s a call)"),
    # fold 0 printed at 25 s, fold 1 at 27 s: a fold costs 2 s, the rest of the call
    # (36 - 2 x 2 = 32 s: the data read, the first fit's first use) is paid once
    ((25.0, 27.0), 50.0, "estimated 58 s for its other 13 fold fits (2.0 s a fold + "
                         "32.0 s a call)"),
    # --max-time stopped the probe after one fold fit: the budget, not the member
    ((25.0,), 30.0, "the budget ran out during its probe (1 fold fit in 36 s)"),
])
def test_a_member_whose_estimate_does_not_fit_is_skipped_and_its_probe_removed(
        tmp_path, monkeypatch, fold_times, budget, why):
    """The probe's fold rate x the fits left + what its call spent besides, against the
    budget left."""
    from kit.config import load_config, to_toml
    from kit.portfolio import loop
    from kit.portfolio.calls import Outcome
    from kit.portfolio.manifest import Manifest, Options
    from kit.portfolio.members import choose

    cfg = load_config(ROOT / "competitions" / "titanic" / "config.toml")  # 5 x 3 fold fits
    runs = tmp_path / "runs"
    probe = runs / "titanic" / "20260101-000000_rf_wcg"

    def fake_train(script, args, summary_json, *, log=print, on_run_dir=None):
        assert args[-2:] == ["--fits", "2"] and args[0] == "--max-time"
        assert 0 < float(args[1]) <= budget
        probe.mkdir(parents=True)
        (probe / "config.toml").write_text(to_toml(cfg))
        trained = 1 if len(fold_times) == 1 else 2  # one `fold k` line: stopped after one
        (probe / "scores.json").write_text(json.dumps({"fold_scores": [0.8] * trained}))
        on_run_dir(str(probe))
        return Outcome(0, {"seconds": 30.0, "run_dir": str(probe)}, 36.0, "", str(probe),
                       fold_times)

    monkeypatch.setattr(loop, "call", fake_train)
    manifest = Manifest.create(runs, Options("titanic", budget, 1, ("rf",), runs=str(runs),
                                             submissions=str(tmp_path / "subs")))
    lines = []
    loop.Portfolio(manifest, cfg, choose("rf"), log=lines.append).run()
    job = manifest.jobs[0]
    assert job.state == "skipped", lines
    assert job.why.startswith(why), job.why
    assert not probe.exists() and job.run_dir == ""
    assert any(line.startswith(f"[1/1] rf_s0: skipped: {why}") for line in lines)


def test_no_probe_starts_when_even_the_cheapest_run_probed_would_not_fit(tmp_path,
                                                                        monkeypatch):
    """A probe followed by no run only spends the budget (the bench overran AutoGluon's time
    that way): skipped with the cheapest measured whole run named, no train.py started."""
    from kit.config import load_config
    from kit.portfolio import loop
    from kit.portfolio.manifest import Job, Manifest, Options
    from kit.portfolio.members import choose

    def no_train(*args, **kwargs):
        raise AssertionError("no probe may start")

    monkeypatch.setattr(loop, "call", no_train)
    cfg = load_config(ROOT / "competitions" / "titanic" / "config.toml")
    runs = tmp_path / "runs"
    manifest = Manifest.create(runs, Options("titanic", 100.0, 1, ("linear", "rf"),
                                             runs=str(runs), submissions=str(tmp_path / "s")))
    manifest.jobs[0] = Job("linear", state="done", cv=0.8, std=0.01, fits=15, fold_seconds=2.0,
                           start_seconds=6.0)
    manifest.spent = 70.0  # left: 100 - 70 - 3 (loop.BLEND_RESERVE) = 27 s < 6 + 15 x 2
    lines = []
    loop.Portfolio(manifest, cfg, choose("linear,rf"), log=lines.append).run()
    rf = manifest.jobs[1]
    assert rf.state == "skipped" and rf.run_dir == "", lines
    assert "less than a whole run at the cheapest rate probed so far (linear: 36 s)" in rf.why


def test_refit_members_are_blended_on_their_refit_predictions(tmp_path, titanic_demo):
    """--refit only: every member's refit has the length all its folds give (the probe's,
    from one fold, is trained again), and the blend applies its OOF weights to the refit
    predictions."""
    summary_path = tmp_path / "summary.json"
    proc = portfolio(*portfolio_args(tmp_path, "--comp", "titanic", "--data", str(titanic_demo),
                                     "--dry-run", "--members", "linear,lgbm", "--seeds", "1",
                                     "--time-budget", "600", "--refit", "only",
                                     "--summary-json", str(summary_path)))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    summary = json.loads(summary_path.read_text())
    assert summary["refit"] == "only" and summary["blend"]["method"] in ("hill", "stack")
    for member in summary["members"]:
        run = Path(member["run_dir"])
        scores = json.loads((run / "scores.json").read_text())
        assert scores["refit"]["mode"] == "only" and len(scores["fold_scores"]) == 2
        refit = json.loads((run / "refit" / "seed0" / "done.json").read_text())
        length = scores["refit"]["length"]  # {} for linear: its settings, no best round
        assert [refit.get("rounds")] == list(length.values()) or not length, (refit, length)
    blend = json.loads((Path(summary["blend"]["run_dir"]) / "ensemble.json").read_text())
    assert blend["test_from"] == "refit"
    report = (Path(summary["portfolio_dir"]) / "report.md").read_text()
    assert "Refit on all rows (--refit only)" in report


def test_a_member_that_crashes_is_recorded_failed_and_the_portfolio_goes_on(tmp_path,
                                                                           titanic_demo):
    """lgbm raises inside train.py (LightGBM refuses num_leaves = -3): in this process that is
    exit status 1 and its error line, the member failed, its run folder removed; linear is
    the one finished member and submits alone."""
    summary_path = tmp_path / "summary.json"
    proc = portfolio(*portfolio_args(tmp_path, "--comp", "titanic", "--data", str(titanic_demo),
                                     "--dry-run", "--members", "linear,lgbm", "--seeds", "1",
                                     "--time-budget", "600", "--set",
                                     "model.params.lgbm.num_leaves=-3",
                                     "--summary-json", str(summary_path)))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    summary = json.loads(summary_path.read_text())
    linear, lgbm = summary["members"]
    assert linear["state"] == "done" and lgbm["state"] == "failed", summary["members"]
    assert lgbm["why"].startswith("train.py exit 1: ") and "num_leaves" in lgbm["why"]
    assert lgbm["run_dir"] == "" and len(list((tmp_path / "runs" / "titanic").glob("*_lgbm_*"))) == 0
    assert summary["blend"]["method"] == "single"
    assert "    Traceback (most recent call last):" in proc.stdout  # passed through, indented
    from kit.portfolio.calls import FOLD_LINE  # the probe's rate: linear's two `fold k` lines

    assert sum(bool(FOLD_LINE.match(line.strip())) for line in proc.stdout.splitlines()) == 2
    assert Path(summary["submission"]).is_file()


SCRIPT_THAT_CHANGES_THE_PROCESS = """
import os, random, signal, sys, warnings
import numpy as np, torch
print("first line", flush=True)
print("to stderr", file=sys.stderr)
sys.stdout.write("a line written in two parts, ")
sys.stdout.write("then its end\\n")
torch.set_num_threads(1); np.random.seed(7); random.seed(7); torch.manual_seed(7)
os.environ["KIT_IN_PROCESS_TEST"] = "1"; os.environ.pop("KIT_KEEP_ME")
os.chdir(sys.argv[1]); signal.signal(signal.SIGTERM, signal.SIG_IGN)
warnings.simplefilter("error")
sys.exit(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
"""


@pytest.mark.parametrize("status, rc", [("3", 3), ("0", 0), ("a message", 1), ("raise", 1)])
def test_a_script_run_in_process_gives_its_lines_and_status_and_leaves_the_process_as_it_was(
        tmp_path, monkeypatch, status, rc):
    import random
    import warnings

    import numpy as np
    import torch

    from kit.runtime.in_process import run_file

    script = tmp_path / "script.py"
    body = SCRIPT_THAT_CHANGES_THE_PROCESS
    script.write_text(body.replace("sys.exit(", "raise ValueError('boom')\nsys.exit(")
                      if status == "raise" else body)
    monkeypatch.setenv("KIT_KEEP_ME", "yes")
    run_file(script, [tmp_path, "0"], on_line=lambda line: None)  # its first imports' filters
    monkeypatch.setenv("KIT_KEEP_ME", "yes")
    threads, cwd, handler = torch.get_num_threads(), os.getcwd(), signal.getsignal(signal.SIGTERM)
    filters = list(warnings.filters)
    np.random.seed(0), random.seed(0), torch.manual_seed(0)
    expected = np.random.rand(), random.random(), torch.rand(1).item()
    np.random.seed(0), random.seed(0), torch.manual_seed(0)
    lines = []
    assert run_file(script, [tmp_path, status], on_line=lines.append) == rc
    assert lines[:3] == ["first line", "to stderr", "a line written in two parts, then its end"]
    last = {"a message": "a message", "raise": "ValueError: boom"}.get(status)
    assert last is None or lines[-1] == last, lines
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected
    assert torch.get_num_threads() == threads and os.getcwd() == cwd
    assert signal.getsignal(signal.SIGTERM) == handler and warnings.filters == filters
    assert "KIT_IN_PROCESS_TEST" not in os.environ and os.environ["KIT_KEEP_ME"] == "yes"


def _script():
    spec = importlib.util.spec_from_file_location("portfolio_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, named", [
    (["--comp", "titanic", "--time-budget", "5"], "--time-budget 5:"),
    (["--comp", "titanic", "--members", "lgbm,boosted"], "unknown member boosted; valid: linear"),
    (["--comp", "titanic", "--seeds", "0"], "--seeds 0:"),
    (["--comp", "digit-recognizer"], "competition.task = 'image'"),
    (["--comp", "titanic", "--set", "cv.n_splits=x"], "cv.n_splits"),
    (["--resume", "nowhere", "--members", "lgbm"], "--resume nowhere with --members"),
    (["--resume", "nowhere", "--refit", "only"], "--resume nowhere with --refit"),
])
def test_bad_input_exits_2_naming_the_value_and_writes_nothing(tmp_path, capsys, args, named):
    from kit.cli import run_script

    main = _script().main
    argv = ["--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"), *args]
    if args[0] == "--resume":
        argv = args
    assert run_script(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
