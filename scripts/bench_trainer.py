"""Trainer overhead: the kit Trainer against a plain hand-written PyTorch loop, same work.

    python scripts/bench_trainer.py --summary-json bench_trainer.json [--device cuda]

Both train the same model (an MLP on 64 features, a small CNN on 1x28x28) from the same
initial weights on the same in-memory batches for the same number of optimizer steps,
and evaluate the validation batches once per epoch. The kit side runs everything it
runs in a real fold: warmup-cosine LR per step, early-stopping bookkeeping, progress
bar, history.csv, best and last checkpoints written atomically every epoch (plots are
drawn by the pipeline after the fold, not by the trainer, and are not timed here). Each
repeat runs plain then kit; `overhead` is the median over repeats of kit / plain - 1
(target <= 0.03), `overhead_best_of` the fastest kit over the fastest plain run - 1.

The plain loop uses AdamW as one writes it by hand, `AdamW(model.parameters())`. The kit
steps a fused AdamW (one launch per parameter group) over two groups (no weight decay on
biases), so part of any difference is the optimizer, not the loop. `overhead_same_optimizer`
isolates the loop: a third side, the same plain loop stepping the kit's optimizer
(Trainer.make_optimizer), against the kit.

On CUDA (or with --device-data) it also times MNIST-size data (42000 x 1x28x28 uint8)
fed by a DataLoader (pinned memory, 2 workers) against the kit's device-resident path
(DeviceBatches: whole tensor on the GPU, batches sliced there): `device_data_speedup`
(target >= 3 on a GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kit.config import Config, OptimConfig, TrainConfig  # noqa: E402
from kit.metrics.registry import get_metric  # noqa: E402
from kit.objective import Objective  # noqa: E402
from kit.runtime.threads import apply_thread_budget  # noqa: E402
from kit.training import trainer as trainer_module  # noqa: E402
from kit.training.trainer import Trainer  # noqa: E402


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


class Wrapped(nn.Module):
    """The kit passes batch keys as keyword arguments (x=...)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def batches(shape, n_batches: int, batch_size: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(n_batches):
        x = torch.randn(batch_size, *shape, generator=g)
        y = torch.randint(0, 10, (batch_size,), generator=g)
        out.append({"x": x, "y": y, "index": torch.arange(b * batch_size, (b + 1) * batch_size)})
    return out


def config(epochs: int, lr: float) -> Config:
    return Config(optim=OptimConfig(lr=lr, weight_decay=1e-4),
                  train=TrainConfig(epochs=epochs, patience=epochs + 1, warmup_epochs=0.5,
                                    amp="off"))


def plain(model, train, valid, epochs: int, lr: float, device, kit_optimizer: bool = False
          ) -> float:
    """The loop a competitor writes by hand: AdamW, cross-entropy, validation loss and
    accuracy every epoch (the kit's evaluation also keeps the probabilities for OOF).
    kit_optimizer: step the optimizer the kit builds instead of the default AdamW."""
    model.to(device)
    if kit_optimizer:
        opt = Trainer(config(epochs, lr), Path(tempfile.gettempdir()), device,
                      get_metric("accuracy"), Objective("classification", 10)).make_optimizer(model)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in train:
            x, y = batch["x"].to(device), batch["y"].to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        correct, val_loss = 0, 0.0
        with torch.no_grad():
            for batch in valid:
                logits, y = model(batch["x"].to(device)), batch["y"].to(device)
                val_loss += loss_fn(logits, y).item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
    sync(device)
    return time.perf_counter() - start


def kit(model, train, valid, epochs: int, lr: float, device, folder: Path) -> float:
    cfg = config(epochs, lr)
    labels = torch.cat([b["y"] for b in valid]).numpy()
    trainer = Trainer(cfg, folder, device, get_metric("accuracy"), Objective("classification", 10))
    sync(device)
    start = time.perf_counter()
    trainer.fit(Wrapped(model), train, valid, labels)
    sync(device)
    return time.perf_counter() - start


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def overhead(name: str, make, shape, steps: int, args, device) -> dict:
    train = batches(shape, steps, args.batch_size, 0)
    valid = batches(shape, max(1, steps // 10), args.batch_size, 1)
    per_epoch = steps // args.epochs
    train_epoch = train[:per_epoch]
    times = {"plain": [], "plain_kit_optimizer": [], "kit": []}
    for r in range(args.repeats + 1):  # the first round warms up allocators and caches
        torch.manual_seed(r)
        init = make().state_dict()
        for side in times:
            model = make()
            model.load_state_dict(init)
            with tempfile.TemporaryDirectory() as tmp:
                seconds = (kit(model, train_epoch, valid, args.epochs, 1e-3, device, Path(tmp))
                           if side == "kit" else
                           plain(model, train_epoch, valid, args.epochs, 1e-3, device,
                                 kit_optimizer=side == "plain_kit_optimizer"))
            if r:
                times[side].append(seconds)

    def paired(base: str) -> float:
        # Each round runs the sides back to back: the median of the paired ratios cancels
        # the slow drift of a shared machine's speed, which a ratio of medians does not.
        return statistics.median(k / b for b, k in zip(times[base], times["kit"])) - 1

    p, k = statistics.median(times["plain"]), statistics.median(times["kit"])
    steps = per_epoch * args.epochs
    result = {"plain_s": p, "kit_s": k, "steps": steps, "overhead": paired("plain"),
              "overhead_best_of": min(times["kit"]) / min(times["plain"]) - 1,
              "overhead_same_optimizer": paired("plain_kit_optimizer"),
              **{f"{side}_runs": runs for side, runs in times.items()}}
    print(f"{name}: plain {p:.3f}s  kit {k:.3f}s  ({steps} steps)  overhead "
          f"{result['overhead']:+.3f} (paired median; best-of {result['overhead_best_of']:+.3f}; "
          f"same optimizer {result['overhead_same_optimizer']:+.3f})", file=sys.stderr)
    return result


def device_data(args, device) -> dict:
    """One MNIST-size epoch (42000 x 1x28x28 uint8): a DataLoader over a TensorDataset
    (2 workers, pinned memory, non_blocking copies) vs the kit's DeviceBatches (the whole
    uint8 tensor on the device, batches sliced and normalized there). Same model, same
    step, same normalization."""
    from torch.utils.data import DataLoader, TensorDataset

    from kit.data.pixels import DeviceBatches

    n, bs = 42000, 256
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (n,))
    model = cnn().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True, num_workers=2,
                        pin_memory=device.type == "cuda", persistent_workers=True)
    resident = DeviceBatches(x.numpy(), y.numpy(), bs, shuffle=True, seed=0, device=device)
    timings = {}
    for name in ("dataloader", "device", "dataloader", "device"):  # second pass is measured
        sync(device)
        start = time.perf_counter()
        if name == "dataloader":
            for xb, yb in loader:
                xb = xb.to(device, non_blocking=True).float().div_(255).sub_(0.5).div_(0.5)
                step(xb, yb.to(device, non_blocking=True))
        else:
            for batch in resident:
                step(batch["x"], batch["y"])
        sync(device)
        timings[name] = time.perf_counter() - start
    speedup = timings["dataloader"] / timings["device"]
    print(f"MNIST epoch: DataLoader {timings['dataloader']:.2f}s  device-resident "
          f"{timings['device']:.2f}s  speedup {speedup:.2f}x", file=sys.stderr)
    return {"dataloader_s": timings["dataloader"], "device_s": timings["device"],
            "device_data_speedup": speedup}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps per model")
    p.add_argument("--cnn-steps", type=int, default=0,
                   help="optimizer steps for the CNN (default: --steps; 300 is enough on a CPU)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-threads", "--threads", type=int, default=0, dest="num_threads",
                   help="train.num_threads for the kit's thread budget (0: the kit chooses), "
                        "for both loops")
    p.add_argument("--device-data", action="store_true",
                   help="time the MNIST device-resident path on a CPU too (always on CUDA)")
    p.add_argument("--summary-json", type=Path)
    args = p.parse_args()
    if args.num_threads < 0:
        p.error(f"--num-threads {args.num_threads}: use 0 (the kit chooses) or a count >= 1")
    threads = apply_thread_budget(args.num_threads)  # as train applies it
    trainer_module.PROGRESS = True  # bars on, as a user sees them, even when piped
    device = torch.device(args.device)
    np.random.seed(0)
    result = {"device": str(device), "torch": torch.__version__,
              "threads": threads,
              "mlp": overhead("mlp", mlp, (64,), args.steps, args, device),
              "cnn": overhead("cnn", cnn, (1, 28, 28), args.cnn_steps or args.steps, args,
                              device)}
    if device.type == "cuda" or args.device_data:
        result["mnist_device_data"] = device_data(args, device)
    print(json.dumps(result))
    if args.summary_json:
        args.summary_json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
