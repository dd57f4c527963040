"""The thread budget: one decision for torch, the BLAS/OpenMP pools and pyarrow.

Left alone, torch, OpenBLAS, OpenMP and pyarrow each size their pool to every core (or to
OMP_NUM_THREADS, read once at import; pyarrow's IO pool is 8 threads whatever the cores),
and TabularStream adds three pipeline threads (read | to pandas | transform) on top. The
kit decides the counts itself, at run time, so a plain shell gets the same settings as a
tuned one and run.json records them.

    threads = apply_thread_budget(cfg.train.num_threads)   # {"cores": 2, "num_threads": 1, ...}
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pyarrow as pa
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from kit.errors import ConfigError

CGROUP = Path("/sys/fs/cgroup")


def cpu_quota(root: Path | None = None) -> int | None:
    """Cores the cgroup's CPU quota allows (v2 cpu.max, else v1 cpu.cfs_quota_us), rounded
    up as joblib's loky does (1.5 cores -> 2 threads: the quota is a share of time, and two
    threads use 1.5 cores where one uses 1); None when there is no quota."""
    root = CGROUP if root is None else root
    for quota_file, period_file in (("cpu.max", None),
                                    ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us"),
                                    ("cpu,cpuacct/cpu.cfs_quota_us",
                                     "cpu,cpuacct/cpu.cfs_period_us")):
        try:
            text = (root / quota_file).read_text().split()
            quota, period = (text[0], text[1]) if period_file is None else (
                text[0], (root / period_file).read_text().strip())
        except (OSError, IndexError):
            continue
        if quota in ("max", "-1"):  # v2 / v1 spelling of "no limit"
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    return None


def kit_jobs() -> int:
    """How many of the kit's jobs share this machine's cores: KIT_JOBS (tune.py --jobs J
    sets it for its workers), 1 when unset."""
    raw = os.environ.get("KIT_JOBS", "") or "1"
    jobs = int(raw) if raw.strip().isdigit() else 0
    if jobs < 1:
        raise ConfigError(f"KIT_JOBS={raw!r}: use a whole number >= 1, the kit's jobs sharing "
                          "this machine (tune.py --jobs J sets it); unset it for one job")
    return jobs


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity and the cgroup's CPU quota, shared by
    torchrun's local ranks and the kit's concurrent jobs (KIT_JOBS). Not os.cpu_count(),
    which counts the host's cores in a container limited to a few."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity call
        cores = os.cpu_count() or 1
    cores = min(cores, cpu_quota() or cores)
    # torchrun starts LOCAL_WORLD_SIZE ranks on this machine, tune.py --jobs J starts J
    # trials: each taking every core would oversubscribe them that many times over
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cores // (max(1, ranks) * kit_jobs()))


# Training cells (rows x columns) each thread of one fit needs before a thread more pays:
# a fit of R x C takes R * C // MIN_CELLS[kind] threads, at least 1, at most the usable
# cores (so 2 threads from 1M cells: a 25,000 x 40 fold). Every round of a tree library
# waits at many barriers (one per histogram / split search), so on a small table a second
# thread adds a wake-up and a wait per barrier for microseconds of work; beside other
# processes the wait is a scheduler time slice. Measured on 2 cores with
# scripts/bench_threads.py --grid: t(2 threads) / t(1 thread), 50 rounds (torch: kit's mlp,
# one epoch), synthetic rows x columns from 250 x 7 to 64,000 x 40, three runs while other
# test suites kept the load average at 2.5-6.4 (no idle block in the hour measured):
# - up to 640k cells (16,000 x 40), median [range] over 27 points: lgbm 1.24 [0.49-11.7],
#   gbdt 1.39 [0.93-6.9], xgb 1.14 [0.88-3.4], torch 1.22 [0.27-2.4]: a second thread
#   mostly lost; catboost (its own pool, not OpenMP) 1.02 [0.67-1.9], a wash;
# - at 2.56M cells (64,000 x 40): lgbm 0.99-1.21, xgb 0.85-1.03, gbdt 0.62-1.17,
#   catboost 1.04-1.65, torch 1.22-1.43: about even for the OpenMP libraries;
# - nearly idle (load 0.27), 900 x 30, 300 rounds, OpenMP's default spinning, one run with
#   the 1-thread fit first in its process: 2 threads won (lgbm 0.33 s vs 0.54 s, xgb 0.29
#   vs 0.36); beside one busy core the same lgbm fit took 7.2 s with 2 spinning threads,
#   0.67 s with 2 passive ones (OMP_WAIT_POLICY=PASSIVE, kit/__init__.py), 0.56 s with 1.
#   What PASSIVE costs idle was not measurable here: a 1-thread fit never waits, and from
#   1M cells a barrier's work outweighs a wake-up.
# 500k cells a thread puts a Titanic fold (712 x 7) and the 15,000 x 54 table on one
# thread, the 100,000-row synthetic table (80,000 x 40 per fold) on two. The libraries did
# not separate beyond the noise, so they share the figure; torch's threads stay with
# thread_budget (half the cores: the mlp lost with 2 threads up to 64,000 x 40 above).
# gbdt (HistGradientBoosting) has no n_jobs: the kit's fit takes the process's OpenMP pool
# (thread_budget); its figure here is for a caller that limits that pool per fit.
MIN_CELLS = {"lgbm": 500_000, "xgb": 500_000, "catboost": 500_000, "gbdt": 500_000}


def fit_threads(kind: str, rows: int = 0, columns: int = 0, *, num_threads: int = 0,
                cores: int | None = None) -> int:
    """Threads for one fit of `kind` on `rows` x `columns`: train.num_threads when set, else
    one per MIN_CELLS[kind] cells, at least 1, at most the usable cores (rows 0: the size
    is not known, every usable core).

    >>> fit_threads("lgbm", 712, 7, cores=2)          # a Titanic fold
    1
    >>> fit_threads("lgbm", 80_000, 40, cores=2)      # a fold of the 100,000-row synthetic table
    2
    """
    if num_threads:
        return num_threads
    cores = usable_cores() if cores is None else cores
    if rows <= 0 or kind not in MIN_CELLS:
        return cores
    return max(1, min(cores, rows * max(1, columns) // MIN_CELLS[kind]))


def thread_budget(num_threads: int = 0, *, cores: int | None = None) -> dict[str, int]:
    """The thread counts for `cores` usable cores and train.num_threads (0 = auto).

    >>> thread_budget(0, cores=2)
    {'cores': 2, 'num_threads': 1, 'arrow_cpu_count': 1, 'arrow_io_thread_count': 1}
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ConfigError(f"train.num_threads={num_threads!r}: use 0 (the kit chooses from "
                          "the cores) or the number of threads for torch and BLAS/OpenMP")
    cores = usable_cores() if cores is None else cores
    if cores < 1:
        raise ConfigError(f"cores={cores!r}: use an integer >= 1")
    # Auto: half the cores compute (torch, BLAS/OpenMP), the rest go to pyarrow, whose pool
    # decodes parquet for TabularStream's read thread. Measured on 2 cores, settings taken in
    # turns in one process (200k rows x 250 columns, bench_tabular.py's data):
    # - the stream alone read at the same rows/s under every setting tried (pyarrow 1 or 2
    #   threads, io 1 or 8, BLAS 1 or 2); it costs 4-6 us of CPU per row, a tenth to half a
    #   core at the training speeds below, so it needs little room;
    # - training kit's mlp from the stream at batch 1024, 1 torch thread vs 2: default
    #   (128, 64) 108k vs 107k rows/s; (256, 128) 67k vs 76k; (512, 512) 25k vs 36k; a
    #   plain 512-512 mlp 45k vs 67k on an idle machine but 37k vs 17k while other
    #   processes shared the cores (OpenMP waits on its slowest thread).
    # Half loses nothing on the default model and does not collapse on a shared machine
    # (the shipped CPU configs, titanic, house-prices, digit-recognizer, already set 1).
    # Set train.num_threads to the core count for a wide model on a machine of your own.
    compute = num_threads or max(1, cores // 2)
    arrow = max(1, cores - compute)
    # TabularStream reads local files only: an IO thread beyond the decoding threads waits
    # on the same page cache (io 1 and 8 measured alike), pyarrow's default is 8 whatever
    # the cores
    return {"cores": cores, "num_threads": compute, "arrow_cpu_count": arrow,
            "arrow_io_thread_count": arrow}


def apply_thread_budget(num_threads: int = 0, *, cores: int | None = None) -> dict[str, int]:
    """Set torch, BLAS/OpenMP and pyarrow thread counts; return them as the libraries report.

    Call it after the imports that load native libraries (numpy, scikit-learn): threadpoolctl
    limits only the pools already loaded. Torch's inter-op pool can be sized once per
    process, before its first use; after that it is left as it is and reported as it is.

    The result is recorded in run.json as "threads". Not run as a doctest: it sets the thread
    pools of the whole process.

    >>> apply_thread_budget(cfg.train.num_threads)   # doctest: +SKIP
    """
    budget = thread_budget(num_threads, cores=cores)
    n = budget["num_threads"]
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set, or inter-op work has started in this process
        pass
    # called, not used as a context manager: the limits stay for the whole process
    threadpool_limits(limits=n, user_api=None)
    pa.set_cpu_count(budget["arrow_cpu_count"])
    pa.set_io_thread_count(budget["arrow_io_thread_count"])
    pools = {p["num_threads"] for p in threadpool_info()}
    return {**budget, "torch_num_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "blas_openmp_threads": max(pools, default=n),
            "arrow_cpu_count": pa.cpu_count(), "arrow_io_thread_count": pa.io_thread_count()}
