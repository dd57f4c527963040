"""train.py and ensemble.py called in the portfolio's own process: their command lines,
their output and their --summary-json file are the portfolio's whole interface to training
and blending (kit.runtime.in_process runs each script's `__main__` as `python` would).

In-process, not a subprocess a call: a new interpreter paid about 3.3 s of imports (torch,
pandas, the boosters) on a 2-core machine, twice a member; here they are paid once. Each
call's output is passed through, indented; the run folder is taken from train.py's first
line (`run: <folder>  device: ...`) as soon as it is printed, so a portfolio killed mid-run
still knows the folder to resume. Ctrl-C or SIGTERM reaches train.py's run_script, which
keeps its finished folds and exits 130; the portfolio then stops too. A call that crashes
(an exception, a sys.exit) is an exit status and an error line, never the portfolio's end.
A native crash (a segfault in a library) ends the portfolio's process: `--resume` keeps its
finished members.

    outcome = call("train.py", ["--comp", "titanic", "--fits", "1"], summary_json,
                   on_run_dir=lambda path: ...)
"""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kit.paths import ROOT
from kit.runtime.in_process import run_file

SCRIPTS = ROOT / "scripts"
RUN_LINE = re.compile(r"^run: (.+?)  device: ")
FOLD_LINE = re.compile(r"^fold \d+(?: \(repeat \d+\))?: ")  # kit.pipeline.loop, a fold scored


@dataclass(frozen=True)
class Outcome:
    """How a script call ended: exit status, its summary (None unless it wrote one), wall
    seconds, its last `error:` line (or the last line when it crashed), the run folder, and
    the seconds into the call at which each `fold k: <score>` line was printed (a fold fit
    with everything after it: scoring, plots, its files)."""

    rc: int
    summary: dict | None
    wall: float
    error: str
    run_dir: str
    fold_times: tuple[float, ...] = ()


def call(script: str, args: list[str], summary_json: Path, *, log=print,
         on_run_dir: Callable[[str], None] | None = None) -> Outcome:
    """Run scripts/<script> with `args` and --summary-json in this process; its outcome."""
    summary_json.unlink(missing_ok=True)
    start = time.monotonic()
    seen = {"run_dir": "", "error": "", "last": "", "folds": []}

    def line(text: str) -> None:
        if FOLD_LINE.match(text):
            seen["folds"].append(time.monotonic() - start)
        log(f"    {text}")
        seen["last"] = text or seen["last"]
        seen["error"] = text if text.startswith("error:") else seen["error"]
        found = RUN_LINE.match(text)
        if found and not seen["run_dir"]:
            seen["run_dir"] = found.group(1)
            if on_run_dir:
                on_run_dir(seen["run_dir"])

    rc = run_file(SCRIPTS / script, [*args, "--summary-json", str(summary_json)], on_line=line)
    gc.collect()  # a finished run's models and frames, before the next member's
    summary = _read(summary_json) if rc == 0 else None
    run_dir = seen["run_dir"]
    return Outcome(rc, summary, time.monotonic() - start,
                   seen["error"] or (seen["last"] if rc else ""),
                   str(summary.get("run_dir", run_dir)) if summary else run_dir,
                   tuple(seen["folds"]))


def import_once() -> None:
    """Import what every train.py call needs, once, before the first probe: kit.pipeline
    (torch, pandas, scikit-learn) and pyplot (every run plots its folds; 0.7 s measured on a
    Titanic probe). The probe's call then measures the call, not imports no later call pays.
    A kind's own library (lightgbm, skops for the scikit-learn kinds: 1.7 s) is imported by
    its first probe and counted in that member's estimate."""
    import kit.pipeline  # noqa: F401
    from kit.training.plots import pyplot

    pyplot()  # Agg unless a backend was chosen, as train.py's plots do


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
