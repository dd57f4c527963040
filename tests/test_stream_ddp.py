"""A real 2-process DDP run (torchrun, gloo, CPU) training on a TabularStream.

Both ranks must read disjoint rows that together cover the data, take the same number of
steps every epoch (or the gradient all-reduce would wait forever), and end with identical
weights. A hang fails the test after a timeout instead of blocking the suite.

Marked slow (three processes importing torch: ~25 s on 2 busy cores); run it with
`pytest -m slow tests/test_stream_ddp.py`. The default run keeps the in-process equivalent,
tests/test_stream.py::test_every_row_once_per_epoch_across_workers_and_ranks.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
SIZES = [40, 25, 18]  # rows per partition: uneven, so one rank needs padding batches

WORKER = textwrap.dedent('''
    import sys

    import numpy as np
    import torch
    import torch.distributed as dist

    from kit.data.stream import TabularStream, stream_loader
    from kit.io import write_json


    def transform(frame):
        return {"id": frame["id"].to_numpy(np.int64), "x": frame[["a", "b"]].to_numpy(np.float32),
                "y": frame["y"].to_numpy(np.float32)}


    def main(data, out):
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        torch.manual_seed(rank)  # different on purpose: DDP must broadcast rank 0's weights
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 1))
        start = [p.detach().flatten().tolist() for p in model.parameters()]
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        stream = TabularStream(data, columns=["id", "a", "b", "y"], transform=transform,
                               batch_size=8, shuffle=True, seed=0)  # rank, world from dist
        loader = stream_loader(stream, num_workers=int(sys.argv[3]))
        epochs = []
        for epoch in range(2):
            stream.set_epoch(epoch)
            ids, steps = [], 0
            for batch in loader:
                pred = model(batch["x"]).squeeze(1)
                loss = torch.nn.functional.mse_loss(pred, batch["y"])
                opt.zero_grad()
                loss.backward()  # all-reduce: both ranks must get here equally often
                opt.step()
                ids += batch["id"].tolist()
                steps += 1
            epochs.append({"ids": ids, "steps": steps, "len": len(loader)})
        dist.barrier()
        write_json(f"{out}/rank{rank}.json", {
            "epochs": epochs, "start": start, "world_size": dist.get_world_size(),
            "weights": [p.detach().flatten().tolist() for p in model.parameters()]})
        dist.destroy_process_group()


    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2])
''')


def make_data(folder: Path) -> set:
    rng, start = np.random.default_rng(0), 0
    for day, n in enumerate(SIZES):
        ids = np.arange(start, start + n)
        a, b = rng.standard_normal(n), rng.standard_normal(n)
        part = folder / f"day={day}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({"id": ids, "a": a, "b": b, "y": 2 * a - b + 0.5,
                                 "unused": rng.standard_normal(n)}),
                       part / "part-0.parquet", row_group_size=10)
        start += n
    return set(range(start))


def torchrun(tmp_path: Path, workers: int, timeout: int = 240) -> list[dict]:
    script, data, out = tmp_path / "ddp_train.py", tmp_path / "data", tmp_path / "out"
    script.write_text(WORKER)
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(data), str(out), str(workers)]
    # own session, so a hung run is killed with all its ranks
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"torchrun still running after {timeout} s: a rank hung") from None
    assert proc.returncode == 0, log[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_two_ranks_train_on_disjoint_rows_and_agree(tmp_path):
    ids = make_data(tmp_path / "data")
    ranks = torchrun(tmp_path, workers=0)
    assert [r["world_size"] for r in ranks] == [2, 2]
    padding = []
    for epoch in range(2):
        runs = [r["epochs"][epoch] for r in ranks]
        assert runs[0]["steps"] == runs[1]["steps"] == runs[0]["len"] == runs[1]["len"]
        seen = [Counter(run["ids"]) for run in runs]
        assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == ids
        # ddp_even="pad": the short rank repeats its own rows, at most one batch here
        padding.append(sum(c.total() for c in seen) - len(ids))
    assert max(padding) > 0 and max(padding) <= 8  # the uneven split really needed it
    assert ranks[0]["epochs"][0]["ids"] != ranks[0]["epochs"][1]["ids"]  # set_epoch reshuffled
    assert ranks[0]["start"] == ranks[1]["start"]  # DDP broadcast rank 0's initial weights
    assert ranks[0]["weights"] == ranks[1]["weights"]  # and every step stayed in sync
    assert ranks[0]["weights"] != ranks[0]["start"]  # it trained
