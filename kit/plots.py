"""PNG plots written into run folders: learning curves, confusion matrix, image sample grid.

    learning_curves(history_rows, "fold0/curves.png", metric="accuracy")
    confusion(labels, proba.argmax(1), classes, "fold0/confusion.png")
    sample_grid(batch["x"], "fold0/sample_grid.png", labels=batch["y"].tolist())

matplotlib runs headless (Agg); every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kit.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return Path(path)


def learning_curves(rows: Sequence[dict], path: str | Path, *, metric: str,
                    mode: str = "max") -> Path | None:
    """Train/val loss (left), the validation metric (middle), the LR per epoch (right)."""
    if not rows:
        return None
    plt = _pyplot()
    epoch = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epoch, [r["train_loss"] for r in rows], "o-", label="train loss", ms=3)
    ax_loss.plot(epoch, [r["val_loss"] for r in rows], "o-", label="val loss", ms=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.legend(loc="upper left")
    ax_lr = ax_loss.twinx()  # the LR on its own axis: it is orders of magnitude smaller
    ax_lr.plot(epoch, [r["lr"] for r in rows], ":", color="gray", label="lr")
    ax_lr.set_ylabel("lr", color="gray")
    ax_metric.plot(epoch, [r["val_metric"] for r in rows], "o-", color="C2", ms=3)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title(f"validation {metric}")
    values = np.array([r["val_metric"] for r in rows], dtype=float)
    best = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values)) \
        if np.isfinite(values).any() else 0
    ax_metric.axvline(epoch[best], color="C2", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: Sequence, path: str | Path,
              *, title: str = "") -> Path:
    """Row-normalized confusion matrix with the counts written in the cells (<= 30 classes)."""
    plt = _pyplot()
    k = len(classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = min(1.2 + 0.45 * k, 14)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=90 if k > 10 else 0)
    ax.set_yticks(ticks, [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title or f"OOF confusion (accuracy {np.trace(counts) / counts.sum():.4f})")
    return _save(fig, path)


def sample_grid(x, path: str | Path, *, labels: Sequence | None = None, nrow: int = 8,
                limit: int = 64) -> Path:
    """The first images of a batch as one grid: uint8 pixels, or floats in [0, 1] (the
    image task de-normalizes its sample batch before it gets here)."""
    import torch
    from torchvision.utils import make_grid

    x = torch.as_tensor(x[:limit]).detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    grid = make_grid(x.clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(nrow * 1.1, (len(x) // nrow + 1) * 1.1))
    ax.imshow(grid.permute(1, 2, 0).numpy().squeeze(), cmap="gray" if grid.shape[0] == 1 else None)
    ax.axis("off")
    if labels is not None:
        ax.set_title(" ".join(str(v) for v in list(labels)[:nrow]) + " …", fontsize=8)
    return _save(fig, path)
