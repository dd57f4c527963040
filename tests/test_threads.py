"""kit.runtime.threads: the rule pinned at fixed core counts, and every pool set to what it says."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP, as training does
import torch
from conftest import ROOT, run_train
from threadpoolctl import threadpool_info, threadpool_limits

from kit.errors import ConfigError
from kit.runtime.threads import (
    MIN_CELLS,
    apply_thread_budget,
    cpu_quota,
    fit_threads,
    thread_budget,
    usable_cores,
)


@pytest.fixture(autouse=True)
def restore_threads():
    """Put every pool back as it was: the budget is process-wide."""
    before = (torch.get_num_threads(), pa.cpu_count(), pa.io_thread_count())
    with threadpool_limits():  # restores the BLAS/OpenMP limits on exit
        yield
    torch.set_num_threads(before[0])
    pa.set_cpu_count(before[1])
    pa.set_io_thread_count(before[2])


def pools() -> set[int]:
    return {p["num_threads"] for p in threadpool_info()}


@pytest.mark.parametrize("cores, num_threads, compute, arrow", [
    (1, 0, 1, 1), (2, 0, 1, 1), (3, 0, 1, 2), (4, 0, 2, 2), (16, 0, 8, 8),
    (2, 2, 2, 1), (16, 4, 4, 12), (4, 6, 6, 1),
])
def test_rule_at_fixed_core_counts(cores, num_threads, compute, arrow):
    assert thread_budget(num_threads, cores=cores) == {
        "cores": cores, "num_threads": compute, "arrow_cpu_count": arrow,
        "arrow_io_thread_count": arrow}


@pytest.mark.parametrize("num_threads, cores, want", [
    (0, 2, {"num_threads": 1, "arrow_cpu_count": 1}),    # auto on 2 cores
    (2, 2, {"num_threads": 2, "arrow_cpu_count": 1}),    # train.num_threads = 2
    (0, 4, {"num_threads": 2, "arrow_cpu_count": 2}),
    (3, 4, {"num_threads": 3, "arrow_cpu_count": 1}),
])
def test_every_pool_reports_the_budget(num_threads, cores, want):
    torch.set_num_threads(4)  # start away from every expected value
    threadpool_limits(4)
    pa.set_cpu_count(5)
    pa.set_io_thread_count(7)
    got = apply_thread_budget(num_threads, cores=cores)
    n, arrow = want["num_threads"], want["arrow_cpu_count"]
    assert torch.get_num_threads() == n
    assert pools() == {n}, threadpool_info()
    assert pa.cpu_count() == arrow and pa.io_thread_count() == arrow
    assert got["cores"] == cores and got["num_threads"] == n
    assert got["torch_num_threads"] == n and got["blas_openmp_threads"] == n
    assert got["arrow_cpu_count"] == arrow and got["arrow_io_thread_count"] == arrow
    json.dumps(got)  # goes into run.json as it is


def test_one_core_gives_one_thread_everywhere():
    got = apply_thread_budget(0, cores=1)
    assert torch.get_num_threads() == 1 and pools() == {1}
    assert pa.cpu_count() == 1 and pa.io_thread_count() == 1
    assert got["torch_interop_threads"] == torch.get_num_interop_threads()
    assert {k: v for k, v in got.items() if k != "torch_interop_threads"} == dict.fromkeys(
        ["cores", "num_threads", "arrow_cpu_count", "arrow_io_thread_count",
         "torch_num_threads", "blas_openmp_threads"], 1)


def test_auto_follows_the_affinity_and_torchrun_ranks(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setattr("kit.runtime.threads.cpu_quota", lambda: None)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("KIT_JOBS", raising=False)
    assert usable_cores() == 6
    assert thread_budget(0)["num_threads"] == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun ranks share the six cores
    assert usable_cores() == 3
    assert thread_budget(0) == {"cores": 3, "num_threads": 1, "arrow_cpu_count": 2,
                                "arrow_io_thread_count": 2}
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # more ranks than cores: still one each
    assert usable_cores() == 1


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_bad_num_threads_names_the_setting(bad):
    before = (torch.get_num_threads(), pa.cpu_count())
    with pytest.raises(ConfigError, match=r"train\.num_threads=.*use 0 \(the kit chooses"):
        apply_thread_budget(bad, cores=2)
    assert (torch.get_num_threads(), pa.cpu_count()) == before  # nothing applied


def test_bad_cores_is_refused():
    with pytest.raises(ConfigError, match=r"cores=0: use an integer >= 1"):
        thread_budget(0, cores=0)


def test_train_applies_and_records_the_budget(tmp_path, titanic_demo):
    # run_train sets OMP_NUM_THREADS=1: the budget, applied after the imports, wins over it
    proc, summary = run_train(tmp_path, titanic_demo, "--dry-run",
                              "--set", "train.num_threads=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    threads = json.loads((Path(summary["run_dir"]) / "run.json").read_text())["threads"]
    assert threads["num_threads"] == threads["torch_num_threads"] == 2
    assert threads["blas_openmp_threads"] == 2
    want = thread_budget(2)  # this process has the same affinity as the run's
    assert threads["arrow_cpu_count"] == want["arrow_cpu_count"]
    assert threads["arrow_io_thread_count"] == want["arrow_io_thread_count"]


# --- the rule for one fit: table size, jobs, affinity, the cgroup quota --------------------


@pytest.mark.parametrize("kind", sorted(MIN_CELLS))
def test_a_small_table_fits_on_one_thread_and_a_large_one_on_every_core(kind):
    assert fit_threads(kind, 712, 7, cores=2) == 1  # a Titanic fold
    assert fit_threads(kind, 200, 50, cores=16) == 1
    big = MIN_CELLS[kind] * 64  # cells enough for 64 threads
    assert fit_threads(kind, big, 1, cores=2) == 2
    assert fit_threads(kind, big // 40 + 1, 40, cores=16) == 16
    assert fit_threads(kind, MIN_CELLS[kind] * 3, 1, cores=16) == 3  # one per MIN_CELLS


def test_the_size_rule_steps_at_its_crossover():
    n = MIN_CELLS["lgbm"]
    assert fit_threads("lgbm", 2 * n - 1, 1, cores=2) == 1  # the step is at 2 x MIN_CELLS
    assert fit_threads("lgbm", 2 * n, 1, cores=2) == 2
    assert fit_threads("lgbm", 10 * n, 1, cores=2) == 2  # never past the usable cores


def test_train_num_threads_wins_and_an_unknown_size_takes_every_core():
    assert fit_threads("lgbm", 712, 7, num_threads=3, cores=2) == 3
    assert fit_threads("lgbm", 0, 0, cores=6) == 6  # size not known (streamed matrices)
    assert fit_threads("rf", 712, 7, cores=6) == 6  # no size rule: every usable core


@pytest.mark.parametrize("jobs, cores, want", [("1", 6, 6), ("2", 6, 3), ("4", 6, 1),
                                                ("3", 2, 1), ("", 4, 4)])
def test_jobs_divide_the_cores(monkeypatch, jobs, cores, want):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr("kit.runtime.threads.cpu_quota", lambda: None)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("KIT_JOBS", jobs)
    assert usable_cores() == want
    assert fit_threads("lgbm", 10**9, 40) == want  # a huge table: every core the job has
    assert thread_budget(0)["cores"] == want  # torch and BLAS share the same cores


def test_jobs_and_torchrun_ranks_divide_together(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr("kit.runtime.threads.cpu_quota", lambda: None)
    monkeypatch.setenv("KIT_JOBS", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert usable_cores() == 2


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_a_bad_kit_jobs_names_the_variable_and_the_fix(monkeypatch, bad):
    monkeypatch.setenv("KIT_JOBS", bad)
    with pytest.raises(ConfigError, match=rf"KIT_JOBS={bad!r}: use a whole number >= 1"):
        usable_cores()


@pytest.mark.parametrize("files, want", [
    ({"cpu.max": "150000 100000\n"}, 2),                   # v2: 1.5 cores -> 2 threads
    ({"cpu.max": "100000 100000\n"}, 1),
    ({"cpu.max": "max 100000\n"}, None),                   # v2: no limit
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),                                            # no cgroup files at all
])
def test_the_cgroup_quota_in_cores(tmp_path, files, want):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(tmp_path) == want


def test_the_quota_caps_the_affinity(monkeypatch, tmp_path):
    (tmp_path / "cpu.max").write_text("200000 100000\n")  # 2 cores in a 16-core box
    monkeypatch.setattr("kit.runtime.threads.CGROUP", tmp_path)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("KIT_JOBS", raising=False)
    assert usable_cores() == 2
    assert fit_threads("xgb", 10**9, 40) == 2


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_a_process_pinned_to_one_core_gets_one_thread_everywhere():
    code = ("import os, json; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from kit.runtime.threads import usable_cores, fit_threads, thread_budget; "
            "print(json.dumps([usable_cores(), fit_threads('lgbm', 10**7, 40), "
            "fit_threads('rf'), thread_budget(0)['num_threads']]))")
    env = {k: v for k, v in os.environ.items() if k not in ("KIT_JOBS", "LOCAL_WORLD_SIZE")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [1, 1, 1, 1]


def test_openmp_sleeps_instead_of_spinning_once_kit_is_imported():
    """OMP_WAIT_POLICY must be in the environment before an OpenMP runtime loads: importing
    kit (the first import of every script) sets it; an explicit value is kept."""
    code = "import os, kit; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "PASSIVE", out.stderr[-2000:]
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, timeout=60)
    assert out.stdout.strip() == "ACTIVE"
