"""The trainer under real runs: resume after SIGKILL, SIGTERM, --max-time, DDP, wandb, plots."""

import errno
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, run_train, train_cmd

from kit.submission import validate_file

# Long enough that a run can be interrupted in the middle of a fold, short on 2 cores.
MLP = ["--set", "model.name=mlp"]  # titanic's default is gbdt; these runs test the trainer
SLOW_MLP = [*MLP, "--set", "train.epochs=12", "--set", "train.patience=12", "--fits", "2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from kit.hooks import load_hook

    data = tmp_path_factory.mktemp("titanic") / "data"
    load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")(data, seed=0)
    return data


def only_run(tmp_path) -> Path:
    runs = [p for p in (tmp_path / "runs" / "titanic").iterdir()
            if (p / "config.toml").exists()]  # beside splits/, the stored folds
    assert len(runs) == 1, runs
    return runs[0]


def start(tmp_path, data, *extra):
    return subprocess.Popen(train_cmd(tmp_path, data, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(pattern: Path, proc, timeout=120):
    """Until a file matches `pattern` (a path, or a glob in its last parts), while `proc` runs."""
    root = Path(pattern.anchor)
    deadline = time.monotonic() + timeout
    while not any(root.glob(str(pattern.relative_to(root)))):
        assert proc.poll() is None, f"run ended before {pattern} appeared: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"{pattern} never appeared"
        time.sleep(0.02)


def started_run(tmp_path, proc) -> Path:
    """The run's folder once its config.toml is written (the folder appears first)."""
    wait_for(tmp_path / "runs" / "titanic" / "*" / "config.toml", proc)
    return only_run(tmp_path)


def test_sigkill_mid_fold_then_resume_equals_uninterrupted(tmp_path, demo):
    straight = tmp_path / "straight"
    proc, summary = run_train(straight, demo, *SLOW_MLP)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = pd.read_parquet(Path(summary["run_dir"]) / "oof.parquet")

    cut = tmp_path / "cut"
    proc = start(cut, demo, *SLOW_MLP)
    run = started_run(cut, proc)
    wait_for(run / "fold1" / "last.pt", proc)  # fold 0 finished, fold 1 in progress
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run / "submission.csv").exists()
    assert (run / "fold0" / "done.json").exists() and not (run / "fold1" / "done.json").exists()
    fold0_before = (run / "fold0" / "oof.parquet").read_bytes()

    proc, summary = run_train(cut, demo, "--resume", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed after epoch" in proc.stdout
    assert (run / "fold0" / "oof.parquet").read_bytes() == fold0_before  # finished fold kept
    resumed = pd.read_parquet(run / "oof.parquet")
    assert resumed["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(resumed[["p_0", "p_1"]], expected[["p_0", "p_1"]], atol=1e-6)
    validate_file(run / "submission.csv", demo / "gender_submission.csv")


def test_sigterm_stops_cleanly_and_keeps_last_checkpoint(tmp_path, demo):
    proc = start(tmp_path, demo, *SLOW_MLP)
    run = started_run(tmp_path, proc)
    wait_for(run / "fold0" / "last.pt", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    state = torch.load(run / "fold0" / "last.pt", weights_only=True)
    assert state["epoch"] >= 0 and "optimizer" in state and "rng" in state
    assert not list(run.rglob(".*.tmp*")), "a temporary file was left behind"
    assert not (tmp_path / "subs").exists()


def test_max_time_stops_cleanly_and_still_submits(tmp_path, demo):
    proc, summary = run_train(tmp_path, demo, *MLP, "--set", "train.epochs=400",
                              "--set", "train.patience=400", "--max-time", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = pd.read_json(Path(summary["run_dir"]) / "scores.json", typ="series")
    assert scores["n_folds_trained"] < 5
    assert "time budget" in proc.stdout
    validate_file(summary["submission"], demo / "gender_submission.csv")


def test_full_disk_during_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    from kit.io import save_torch

    path = tmp_path / "last.pt"
    save_torch(path, {"epoch": 1, "w": torch.ones(3)})

    def disk_full(obj, f, *a, **kw):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError) as info:
        save_torch(path, {"epoch": 2, "w": torch.zeros(3)})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("device_data", ["false", "true"])  # stream shards / TensorBatches shards
def test_torchrun_two_ranks_gloo(tmp_path, demo, device_data):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           *train_cmd(tmp_path, demo, *MLP, "--fits", "2", "--set", "train.epochs=2",
                      "--set", f"train.device_data={device_data}")[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 ranks (DDP)" in proc.stdout
    assert proc.stdout.count("CV accuracy") == 1  # rank 0 alone prints and writes
    run = only_run(tmp_path)
    oof = pd.read_parquet(run / "oof.parquet")
    folds = pd.read_csv(run / "folds.csv")
    trained = folds[folds["fold"] < 2]
    # every row of the trained folds once: the gather dropped the padding's repeats
    assert sorted(oof["id"]) == sorted(trained["id"])
    assert len(list((tmp_path / "subs" / "titanic").iterdir())) == 1


def wandb_records(path: Path) -> list:
    """Records of a .wandb file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, out, part = path.read_bytes(), 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too short for a header: skip it
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        part = chunk if kind in (1, 2) else part + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(part)
            out.append(record)
    return out


def test_wandb_offline_runs_have_their_own_step_axes(tmp_path, demo):
    proc, summary = run_train(tmp_path, demo, *MLP, "--wandb", "--fits", "2",
                              "--set", "train.epochs=3",
                              env={"HOME": str(tmp_path), "WANDB_API_KEY": "",
                                   "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "logging offline" in proc.stdout
    files = sorted(Path(summary["run_dir"]).glob("wandb/offline-run-*/*.wandb"))
    assert len(files) == 3  # fold 0, fold 1, the CV summary
    by_job = {}
    for f in files:
        records = wandb_records(f)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        by_job.setdefault(run.job_type, []).append(records)
        assert run.run_group == Path(summary["run_dir"]).name
    assert len(by_job["fold"]) == 2 and len(by_job["cv"]) == 1
    records = by_job["fold"][0]
    metrics = {(m.metric.glob_name or m.metric.name): m.metric.step_metric for m in records
               if m.WhichOneof("record_type") == "metric"}
    assert metrics["train/*"] == "train/step" and metrics["valid/*"] == "epoch"
    history = [{i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
               for r in records
               if r.WhichOneof("record_type") == "history"]
    train = [h for h in history if "train/loss" in h]
    val = [h for h in history if "valid/metric" in h]
    assert train and all("train/step" in h for h in train)
    assert [int(h["epoch"]) for h in val] == [0, 1, 2]


def test_plots_are_written_as_pngs(tmp_path, demo):
    proc, summary = run_train(tmp_path, demo, *MLP, "--fits", "1", "--set", "train.epochs=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = Path(summary["run_dir"])
    for png in [run / "fold0" / "curves.png", run / "fold0" / "confusion.png",
                run / "confusion.png"]:
        head = png.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, png


@pytest.mark.parametrize("extra, message", [
    (["--device", "tpu"], "train.device = 'tpu' is not one of auto, cpu, cuda, mps"),
    (["--set", "train.amp=bf16", "--device", "cpu"], "needs a CUDA device"),
])
def test_bad_device_settings(tmp_path, demo, extra, message):
    proc, _ = run_train(tmp_path, demo, *MLP, "--fits", "1", *extra)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "subs").exists()


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path, demo):
    proc, _ = run_train(tmp_path, demo, "--resume", str(tmp_path))
    assert proc.returncode == 2
    assert "not a run folder" in proc.stderr and "runs/<comp>/" in proc.stderr


def test_checkpoint_of_another_model_is_refused(tmp_path):
    from kit.errors import CheckpointError
    from kit.io import save_torch
    from kit.training.checkpoints import load_checkpoint

    path = save_torch(tmp_path / "best.pt", {"model": {}, "meta": {"model": "resnet18"}})
    with pytest.raises(CheckpointError, match="holds a 'resnet18' model.*model.name=resnet18"):
        load_checkpoint(path, "mlp")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


def toy_batches(n: int) -> list[dict]:
    """n batches of 8 rows: 4 features, 3 classes."""
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(8, 4, generator=g), "y": torch.randint(0, 3, (8,), generator=g),
             "index": torch.arange(b * 8, b * 8 + 8)} for b in range(n)]


def labels_of(batches) -> np.ndarray:
    return torch.cat([b["y"] for b in batches]).numpy()


def toy_trainer(folder, trainer_class=None, **train):
    from kit.config import Config, TrainConfig
    from kit.metrics.registry import get_metric
    from kit.objective import Objective
    from kit.training.trainer import Trainer

    cfg = Config(train=TrainConfig(amp="off", patience=5, **train))
    return (trainer_class or Trainer)(cfg, folder, torch.device("cpu"), get_metric("accuracy"),
                                      Objective("classification", 3))


@pytest.mark.parametrize("cap, steps", [(0, 4), (2, 2)])  # 10 batches, accum 3
def test_gradient_accumulation_steps_once_per_group_and_on_the_last_batch(tmp_path, cap, steps):
    batches = toy_batches(10)
    trainer = toy_trainer(tmp_path, epochs=2, accum_steps=3, max_steps_per_epoch=cap)
    trainer.fit(Net(), batches, batches[:2], labels_of(batches[:2]))
    # ceil(10 / 3) = 4 steps, the last on a group of one; with a cap of 2 steps, exactly 2
    assert pd.read_csv(tmp_path / "history.csv")["step"].tolist() == [steps, 2 * steps]


def test_resume_steps_the_optimizer_this_run_chooses(tmp_path):
    """A last.pt written by a default (unfused) AdamW, as earlier kit versions saved it,
    resumes with this run's fused optimizer, not the checkpoint's flag."""
    from kit.training.trainer import Trainer

    batches = toy_batches(4)
    labels = labels_of(batches)

    class Spy(Trainer):
        def make_optimizer(self, model):
            self.opt = super().make_optimizer(model)
            return self.opt

    toy_trainer(tmp_path, Spy, epochs=1).fit(Net(), batches, batches, labels)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = None
    torch.save(state, tmp_path / "last.pt")
    resumed = toy_trainer(tmp_path, Spy, epochs=2)
    resumed.fit(Net(), batches, batches, labels, resume=True)
    assert [group["fused"] for group in resumed.opt.param_groups] == [True, True]
    assert len(pd.read_csv(tmp_path / "history.csv")) == 2


def test_the_share_of_the_epoch_spent_waiting_for_batches_is_recorded(tmp_path):
    """history.csv's data_wait: near 1 when the loader is the bottleneck, low when the
    batches are ready (timm's data time against the epoch's time)."""
    from kit.config import Config, TrainConfig
    from kit.metrics.registry import get_metric
    from kit.objective import Objective
    from kit.training.trainer import Trainer

    rng = np.random.default_rng(0)
    batches = [{"x_num": torch.as_tensor(rng.normal(size=(16, 4)), dtype=torch.float32),
                "x_cat": torch.zeros(16, 0, dtype=torch.long),
                "y": torch.as_tensor(rng.integers(0, 2, 16)), "index": torch.arange(16)}
               for _ in range(4)]

    class Slow:
        def __len__(self):
            return len(batches)

        def __iter__(self):
            for b in batches:
                time.sleep(0.05)
                yield b

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, x_num, x_cat):
            return self.fc(x_num)

    cfg = Config(train=TrainConfig(amp="off", epochs=1, warmup_epochs=0))
    shares = {}
    for name, loader in (("slow", Slow()), ("ready", batches)):
        trainer = Trainer(cfg, tmp_path / name, torch.device("cpu"), get_metric("accuracy"),
                          Objective("classification", 2))
        trainer.fit(Net(), loader, batches, np.concatenate([b["y"] for b in batches]))
        shares[name] = pd.read_csv(tmp_path / name / "history.csv")["data_wait"].iloc[0]
    assert shares["slow"] > 0.7 and shares["ready"] < shares["slow"] / 2, shares


def test_the_previous_best_checkpoint_stays_until_last_pt_names_the_new_one(tmp_path):
    """A kill between saving a new best and writing last.pt leaves the best that last.pt
    names. Before: _save_best deleted the previous best first, so such a kill left last.pt
    naming a file that was gone."""
    from kit.training.trainer import Trainer

    batches = toy_batches(4)
    labels = labels_of(batches)
    seen = []

    class Watch(Trainer):
        def _monitor_mode(self):
            return "max"

        def _monitored(self, row):  # every epoch a new best
            return float(row["epoch"])

        def _save_best(self, model, epoch, score, previous, **kw):
            path = super()._save_best(model, epoch, score, previous, **kw)
            seen.append(previous is None or previous.exists())  # before last.pt moves on
            return path

    result = toy_trainer(tmp_path, Watch, epochs=4).fit(Net(), batches, batches, labels)
    assert len(seen) == 4 and all(seen)
    assert [p.name for p in tmp_path.glob("best_*.pt")] == [result.best_path.name]


def test_predict_takes_the_best_checkpoint_of_the_recorded_epoch(tmp_path):
    """A stale best_*.pt beside the fold's own (a copy, an old kill) is never chosen by its
    name's sort order; two candidates without a record are an error."""
    import json

    from kit.errors import CheckpointError
    from kit.training.checkpoints import best_checkpoint

    for name in ("best_e003_accuracy0.8000.pt", "best_e011_accuracy0.7000.pt"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(CheckpointError, match="expected one best_.*found best_e003"):
        best_checkpoint(tmp_path)
    (tmp_path / "done.json").write_text(json.dumps({"best_epoch": 3}))
    assert best_checkpoint(tmp_path).name == "best_e003_accuracy0.8000.pt"
