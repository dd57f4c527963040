"""kit.threads: the rule pinned at fixed core counts, and every pool set to what it says."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP, as training does
import torch
from conftest import run_train
from threadpoolctl import threadpool_info, threadpool_limits

from kit.errors import ConfigError
from kit.threads import apply_thread_budget, thread_budget, usable_cores


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
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
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
