"""A script run inside this process, as `python script.py args` would run it, without the
seconds of imports a new interpreter pays (torch, pandas, the boosters: about 3.3 s a start
on a 2-core machine, measured by issue 31's portfolio, two starts a member).

The script's `__main__` block runs under its own sys.argv (runpy), its stdout and stderr are
handed over line by line as they are written (`on_line`), and its exit status comes back as
`python` would give it: sys.exit's code, 1 for an uncaught exception (its traceback in the
output). What a run changes in the process is put back afterwards: environment, sys.argv,
sys.path, cwd, the SIGTERM handler, warnings, torch / OpenMP / BLAS / Arrow thread counts, the
determinism switches and the Python, NumPy and torch RNGs. KeyboardInterrupt is not caught:
scripts that use kit.cli.run_script turn Ctrl-C and SIGTERM into exit status 130 themselves.

Not as in a new interpreter: modules imported stay imported (kit.hooks loads a hook file
afresh when its path, size or mtime differ), torch's inter-op pool keeps the size it first
had, and output written by native code straight to file descriptor 1 or 2 (a C++ library's
own logging) bypasses `on_line`.

    rc = run_file(ROOT / "scripts" / "train.py", ["--comp", "titanic", "--demo"], on_line=print)
"""

from __future__ import annotations

import io
import os
import random
import runpy
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path


def run_file(path: Path, args: Sequence[str], *, on_line: Callable[[str], None],
             env: dict | None = None) -> int:
    """Run `python path args` in this process; each output line to `on_line`; its exit
    status. `env` is added to the environment for the call."""
    out = _Lines(on_line, (sys.stdout, sys.stderr))
    try:
        with process_kept(env), redirect_stdout(out), redirect_stderr(out):
            sys.argv = [str(path), *map(str, args)]
            return exit_status(str(path))
    finally:
        out.flush_rest()


def exit_status(path: str) -> int:
    """The status `python path` exits with: sys.exit's code (a message: printed, 1), 1 and
    the traceback for an uncaught exception."""
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - a crashed script is an exit status, as in a process
        traceback.print_exc()
        return 1
    return 0


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line (without its newline) to a callback, run
    with the caller's own stdout and stderr (a callback that prints must not print here)."""

    def __init__(self, on_line: Callable[[str], None], outer: tuple):
        super().__init__()
        self.on_line, self.outer = on_line, outer
        self.part, self.lock = "", threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:  # a library's worker thread may print too
            *lines, self.part = (self.part + text).split("\n")
        for line in lines:
            self._hand(line.rstrip("\r"))
        return len(text)

    def flush_rest(self) -> None:
        if self.part:
            self._hand(self.part)
            self.part = ""

    def _hand(self, line: str) -> None:
        inner = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.outer
        try:
            self.on_line(line)
        finally:
            sys.stdout, sys.stderr = inner


@contextmanager
def process_kept(env: dict | None = None) -> Iterator[None]:
    """Inside: the environment plus `env`, warnings as a new interpreter filters them. On the
    way out: the process-wide settings a run sets, restored."""
    import numpy as np
    import pyarrow as pa
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    environ, argv, path, cwd = dict(os.environ), sys.argv, list(sys.path), os.getcwd()
    main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    formatwarning = warnings.formatwarning
    threads, pools = torch.get_num_threads(), threadpool_info()
    arrow = pa.cpu_count(), pa.io_thread_count()
    determinism = (torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled(),
                   torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    rngs = random.getstate(), np.random.get_state(), torch.get_rng_state()
    os.environ.update(env or {})
    try:
        with warnings.catch_warnings():
            _fresh_warnings()
            yield
    finally:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
        sys.argv, sys.path[:] = argv, path
        os.chdir(cwd)
        if main_thread:
            signal.signal(signal.SIGTERM, sigterm)
        warnings.formatwarning = formatwarning
        torch.set_num_threads(threads)
        threadpool_limits(limits=pools)
        pa.set_cpu_count(arrow[0])
        pa.set_io_thread_count(arrow[1])
        if determinism[:2] != (torch.are_deterministic_algorithms_enabled(),
                               torch.is_deterministic_algorithms_warn_only_enabled()):
            # only when changed: the call imports torch._dynamo (seconds, measured) once
            torch.use_deterministic_algorithms(determinism[0], warn_only=determinism[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = determinism[2:]
        random.setstate(rngs[0])
        np.random.set_state(rngs[1])
        torch.set_rng_state(rngs[2])


def _fresh_warnings() -> None:
    """Warnings as `python script.py` shows them: on stderr (the redirected one), formatted
    by warnings.formatwarning, under a new interpreter's default filters."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                     ResourceWarning):
        warnings.simplefilter("ignore", category)

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show
