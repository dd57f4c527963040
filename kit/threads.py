"""The thread budget: one decision for torch, the BLAS/OpenMP pools and pyarrow.

Left alone, torch, OpenBLAS, OpenMP and pyarrow each size their pool to every core (or to
OMP_NUM_THREADS, read once at import; pyarrow's IO pool is 8 threads whatever the cores),
and TabularStream adds three pipeline threads (read | to pandas | transform) on top. The
kit decides the counts itself, at run time, so a plain shell gets the same settings as a
tuned one and run.json records them.

    threads = apply_thread_budget(cfg.train.num_threads)   # {"cores": 2, "num_threads": 1, ...}
"""

from __future__ import annotations

import os

import pyarrow as pa
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from kit.errors import ConfigError


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, shared by torchrun's local ranks."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity call
        cores = os.cpu_count() or 1
    # torchrun starts LOCAL_WORLD_SIZE ranks on this machine; each taking every core would
    # oversubscribe them world-size times over
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cores // max(1, ranks))


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

    >>> apply_thread_budget(cfg.train.num_threads)   # recorded in run.json as "threads"
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
