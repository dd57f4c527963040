"""Tables larger than memory: peak memory of `train.py` at N and 10 N rows, the loader's
share of the network's step time, and the CSV-to-parquet conversion against pyarrow's bare
CSV read.

    python scripts/bench_out_of_core.py --summary-json runs/bench_out_of_core.json
    python scripts/bench_out_of_core.py --rows 200000 --workdir /tmp/ooc   # a quick run

The data: kit.data.synthetic's recipe (40 columns, 10 categorical, a binary target), made
in chunks (table_chunks) as a folder of parquet files, train at --rows and at --rows / 10,
a tenth as many test rows, and the large train table once more as one CSV. Each size
trains as a competition folder set up by scripts/new_competition.py, out of core
(data.out_of_core = "on": the same path at both sizes), each command in a fresh
subprocess:

    train.py --set model.name=mlp --set train.epochs=1 --set cv.n_splits=2
    train.py --set model.name=xgb --set model.params.xgb.rounds=100 --set cv.n_splits=2

Peak memory is that of the whole process tree: the larger of the train.py process's VmHWM
at exit (resident pages, memory-mapped file pages included) and the sum of the tree's
VmRSS sampled every 0.2 s (DataLoader workers, if any). Targets: mlp <= 3 GB and xgb <= 4 GB
at the large size; large / small <= 1.2 for mlp, <= 1.5 for xgb (XGBoost keeps labels,
gradients and its quantized matrix in memory by design). `mlp_data_wait_fraction` is the
mean over the large mlp run's epochs of history.csv's data_wait (time spent waiting for
the loader's next batch over the epoch's step time, measured in the Trainer); target <= 0.10.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import runpy
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SLUG = "bench-out-of-core"
CHUNK_ROWS = 500_000
KINDS = {"mlp": ["model.name=mlp", "train.epochs=1"],
         "xgb": ["model.name=xgb", "model.params.xgb.rounds=100"],
         # not in the default --kinds: xgb forced onto XGBoost's external memory
         "xgb_external": ["model.name=xgb", "model.params.xgb.rounds=100",
                          "data.out_of_core_xgb_mb=1"]}


def log(msg: str) -> None:
    print(f"[bench_out_of_core] {msg}", flush=True)


def size_name(rows: int) -> str:
    return f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows / 1e3:g}k"


def write_data(folder: Path, rows: int, seed: int, csv: bool) -> None:
    """train/ and test/ folders of parquet parts, sample_submission.csv, and train.csv."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from kit.data.synthetic import table_chunks

    if (folder / "done").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    for part in ("train", "test"):
        (folder / part).mkdir(parents=True)
    n_test = rows // 10
    writer = None
    chunks = table_chunks(rows + n_test, CHUNK_ROWS, seed)
    with tqdm(total=rows + n_test, unit=" rows", unit_scale=True, desc=f"data {size_name(rows)}",
              leave=False) as bar:
        for i, chunk in enumerate(chunks):
            train = chunk[chunk["id"] < rows]
            test = chunk[chunk["id"] >= rows].drop(columns="target")
            for part, frame in (("train", train), ("test", test)):
                if len(frame):
                    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                                   folder / part / f"part-{i:04d}.parquet")
            if csv and len(train):
                table = pa.Table.from_pandas(train, preserve_index=False)
                writer = writer or pacsv.CSVWriter(folder / "train.csv", table.schema)
                writer.write_table(table)
            if len(test):
                test[["id"]].assign(target=0.5).to_csv(
                    folder / "sample_submission.csv", mode="a", index=False,
                    header=not (folder / "sample_submission.csv").exists())
            bar.update(len(chunk))
    if writer is not None:
        writer.close()
    (folder / "done").write_text("")


def set_up_competition(comps: Path, rows: int, seed: int) -> None:
    from kit.data.synthetic import new_competition

    new_competition(SLUG, comps, rows, seed)


def tree_rss_mb(pid: int) -> float:
    """The summed VmRSS of `pid` and its descendants now (0 when it has gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total / 1024


def run_train(data: Path, workdir: Path, kind: str, name: str) -> dict:
    """train.py in a fresh process; its peak memory, wall time and summary."""
    out = workdir / "results" / f"{kind}_{name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sets = ["data.out_of_core=on", "data.train=train", "data.test=test", "cv.n_splits=2",
            *KINDS[kind]]
    cmd = [sys.executable, __file__, "--hwm-child", str(out / "hwm.json"), "--",
           str(ROOT / "scripts" / "train.py"), "--comp", SLUG, "--data", str(data),
           "--runs", str(workdir / "runs"), "--submissions", str(workdir / "subs"),
           "--summary-json", str(out / "summary.json"),
           *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "KIT_COMPETITIONS_ROOT": str(workdir / "comps")}
    env.pop("OMP_NUM_THREADS", None)  # the kit sets its own thread budget
    log(f"{kind} on {name} rows: train.py " + " ".join(cmd[5:]))
    started = time.monotonic()
    with open(out / "log.txt", "w") as logfile:
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        peak = [0.0]

        def sample():
            while proc.poll() is None:
                peak[0] = max(peak[0], tree_rss_mb(proc.pid))
                time.sleep(0.2)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        code = proc.wait()
        watcher.join()
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"train.py failed ({code}); see {out / 'log.txt'}")
    hwm = json.loads((out / "hwm.json").read_text())["vm_hwm_mb"]
    summary = json.loads((out / "summary.json").read_text())
    result = {"peak_rss_mb": round(max(hwm, peak[0]), 1), "vm_hwm_mb": hwm,
              "tree_rss_sampled_mb": round(peak[0], 1), "wall_s": round(wall, 1),
              "cv": summary["cv"]["mean"], "run_dir": summary["run_dir"]}
    log(f"{kind} {name}: peak {result['peak_rss_mb']:.0f} MB, {wall:.0f} s, "
        f"CV auc {result['cv']:.4f}")
    return result


def data_wait(run_dir: str) -> float:
    import pandas as pd

    rows = [pd.read_csv(h) for h in sorted(Path(run_dir).glob("fold*/history.csv"))]
    return round(float(pd.concat(rows)["data_wait"].mean()), 4)


def csv_figures(csv: Path, workdir: Path) -> dict:
    """The kit's CSV -> parquet cache (kit/data/sources.py) against pyarrow's bare streaming
    read of the same file, both under the kit's thread budget."""
    import pyarrow.csv as pacsv

    from kit.data.sources import BLOCK_BYTES, csv_to_parquet
    from kit.runtime.threads import apply_thread_budget

    apply_thread_budget(0)
    started = time.monotonic()
    reader = pacsv.open_csv(csv, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES))
    rows = sum(batch.num_rows for batch in reader)
    limit = time.monotonic() - started
    cache = workdir / "csv-cache"
    shutil.rmtree(cache, ignore_errors=True)
    started = time.monotonic()
    csv_to_parquet(csv, cache)
    convert = time.monotonic() - started
    shutil.rmtree(cache, ignore_errors=True)
    log(f"CSV {csv.stat().st_size / 2**30:.2f} GiB, {rows:,} rows: kit conversion "
        f"{convert:.1f} s, pyarrow's bare read {limit:.1f} s ({convert / limit:.2f}x)")
    return {"csv_convert_s": round(convert, 1), "csv_read_limit_s": round(limit, 1),
            "csv_gib": round(csv.stat().st_size / 2**30, 2), "csv_rows": rows}


def hwm_child(dest: Path, argv: list[str]) -> None:
    """Run train.py in this process and write its VmHWM at exit (any exit)."""
    def record():
        status = Path("/proc/self/status").read_text()
        hwm = int(status.split("VmHWM:")[1].split()[0]) / 1024
        dest.write_text(json.dumps({"vm_hwm_mb": round(hwm, 1)}))

    atexit.register(record)
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000_000, help="the large training table")
    p.add_argument("--workdir", type=Path, default=ROOT / "data" / SLUG,
                   help="data, runs and results (several GB at the default size)")
    p.add_argument("--kinds", default="mlp,xgb", help=f"of {', '.join(KINDS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-runs", action="store_true", help="keep the run folders")
    p.add_argument("--skip-csv", action="store_true", help="no CSV conversion figures")
    p.add_argument("--summary-json", type=Path)
    p.add_argument("--hwm-child", type=Path, help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.hwm_child:
        return hwm_child(args.hwm_child, rest[1:] if rest[:1] == ["--"] else rest)
    kinds = [k for k in args.kinds.split(",") if k]
    sizes = {size_name(args.rows // 10): args.rows // 10, size_name(args.rows): args.rows}
    work = args.workdir
    set_up_competition(work / "comps", args.rows, args.seed)
    results: dict = {"rows": sizes, "runs": {}}
    for name, rows in sizes.items():
        data = work / f"data-{name}"
        log(f"writing {rows:,} training rows (+{rows // 10:,} test) to {data}")
        write_data(data, rows, args.seed, csv=rows == args.rows and not args.skip_csv)
        for kind in kinds:
            result = run_train(data, work, kind, name)
            if kind == "mlp":
                result["data_wait"] = data_wait(result["run_dir"])
            if not args.keep_runs:
                shutil.rmtree(result["run_dir"], ignore_errors=True)
            results["runs"].setdefault(kind, {})[name] = result
    small, large = sizes
    peak = {k: {n: r["peak_rss_mb"] for n, r in runs.items()} for k, runs in results["runs"].items()}
    summary = {"peak_rss_mb": peak,
               "peak_ratio": {k: round(v[large] / v[small], 3) for k, v in peak.items()},
               "mlp_data_wait_fraction": results["runs"].get("mlp", {}).get(large, {}).get("data_wait"),
               **({} if args.skip_csv else csv_figures(work / f"data-{large}" / "train.csv", work)),
               "cores": os.cpu_count(), **results}
    print(json.dumps(summary))
    if args.summary_json:
        from kit.io import write_json

        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    main()
