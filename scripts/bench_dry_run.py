#!/usr/bin/env python
"""Wall time of `train.py --dry-run` for every competition, start-up included.

For each competition the demo data is written first (untimed: `--demo` once), then
`python scripts/train.py --comp C --dry-run` runs as a fresh process, as a user would
type it, into a temporary folder. The baseline, measured in the same run, is the bare
start-up of that process (`python -c "import kit.pipeline, kit.tasks.tabular.task, kit.tasks.image"`:
torch, torchvision, timm, pandas, pyarrow, scikit-learn and the kit), the part of the
wall time no dry-run setting can remove. Target: 30 s per competition on 2 CPU cores.

    python scripts/bench_dry_run.py --summary-json bench.json [--comps titanic mask] [--repeat 3]

Each figure is the best of --repeat runs. The last line printed is the JSON summary.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 30.0


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed with exit status {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comps", nargs="+", default=["titanic", "digit-recognizer", "mask"])
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs per figure")
    p.add_argument("--summary-json", type=Path)
    args = p.parse_args(argv)

    env = {**os.environ, "WANDB_MODE": "disabled"}  # output is captured: no progress bars
    python = sys.executable
    imports = "import kit.pipeline, kit.tasks.tabular.task, kit.tasks.image"
    startup = min(timed([python, "-c", imports], env) for _ in range(args.repeat))
    print(f"start-up ({imports}): {startup:.1f} s")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for comp in args.comps:
            common = ["--comp", comp, "--data", str(tmp / "data" / comp), "--runs", str(tmp / "runs"),
                      "--submissions", str(tmp / "subs")]
            timed([python, "scripts/train.py", *common, "--demo", "--dry-run"], env)  # writes the data
            wall = min(timed([python, "scripts/train.py", *common, "--dry-run"], env)
                       for _ in range(args.repeat))
            results[comp] = {"wall_s": round(wall, 2), "startup_share": round(startup / wall, 3),
                             "within_target": wall <= TARGET_S}
            print(f"{comp:18s} {wall:6.1f} s wall  (start-up {startup / wall:.0%})  "
                  f"{'ok' if wall <= TARGET_S else 'OVER'} vs {TARGET_S:.0f} s target")
    summary = {"startup_s": round(startup, 2), "target_s": TARGET_S, "dry_run": results,
               "threads": os.environ.get("OMP_NUM_THREADS", "default"), "cpus": os.cpu_count()}
    line = json.dumps(summary)
    print(line)
    if args.summary_json:
        args.summary_json.write_text(line + "\n")
    return summary


if __name__ == "__main__":
    main()
