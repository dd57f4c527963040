"""train.py and ensemble.py as subprocesses: their command lines, their output and their
--summary-json file are the portfolio's whole interface to training and blending.

Each call's output is passed through, indented; the run folder is taken from train.py's
first line (`run: <folder>  device: ...`) as soon as it is printed, so a portfolio killed
mid-run still knows the folder to resume. Ctrl-C or SIGTERM stops the child first (it
keeps its finished folds), then the portfolio.

    outcome = call("train.py", ["--comp", "titanic", "--fits", "1"], summary_json,
                   on_run_dir=lambda path: ...)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kit.paths import ROOT

SCRIPTS = ROOT / "scripts"
RUN_LINE = re.compile(r"^run: (.+?)  device: ")


@dataclass(frozen=True)
class Outcome:
    """How a script call ended: exit status, its summary (None unless it wrote one), wall
    seconds, its last `error:` line (or the last line when it crashed), the run folder."""

    rc: int
    summary: dict | None
    wall: float
    error: str
    run_dir: str


def call(script: str, args: list[str], summary_json: Path, *, log=print,
         on_run_dir: Callable[[str], None] | None = None) -> Outcome:
    """Run scripts/<script> with `args` and --summary-json in this Python; wait for it."""
    summary_json.unlink(missing_ok=True)
    cmd = [sys.executable, str(SCRIPTS / script), *args, "--summary-json", str(summary_json)]
    start = time.monotonic()
    run_dir, error, last = "", "", ""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        try:
            for line in proc.stdout:
                line = line.rstrip()
                log(f"    {line}")
                last = line or last
                error = line if line.startswith("error:") else error
                found = RUN_LINE.match(line)
                if found and not run_dir:
                    run_dir = found.group(1)
                    if on_run_dir:
                        on_run_dir(run_dir)
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()  # train.py takes SIGTERM as Ctrl-C: finished folds are kept
            proc.wait()
            raise
    summary = _read(summary_json) if rc == 0 else None
    return Outcome(rc, summary, time.monotonic() - start, error or (last if rc else ""),
                   str(summary.get("run_dir", run_dir)) if summary else run_dir)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

