"""PNG plots written into run folders: learning curves, confusion matrix or regression
residuals, feature importance, image sample grid.

    learning_curves(history_rows, "fold0/curves.png", metric="accuracy")
    boosting_curve(pd.read_csv("fold0/history.csv"), "fold0/curves.png")  # lgbm, xgb, catboost
    importance_bars(table, "importance.png", kind="total gain")
    confusion(labels, proba.argmax(1), classes, "fold0/confusion.png")
    residuals(truth, pred, "residuals.png")          # a regression's OOF scatter + histogram
    sample_grid(batch["x"], "fold0/sample_grid.png", labels=["cat", "dog", ...])  # names

matplotlib runs headless (Agg); every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kit.io import atomic_path


def pyplot():
    """matplotlib.pyplot, on the Agg backend unless one was chosen (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, *, title: str = "", description: str = "") -> Path:
    """Write the PNG; its Title / Description text chunks say what it shows (a test, or
    `PIL.Image.open(path).text`, reads them back without looking at pixels)."""
    metadata = {k: v for k, v in (("Title", title), ("Description", description)) if v}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=metadata)
    pyplot().close(fig)
    return Path(path)


def learning_curves(rows: Sequence[dict], path: str | Path, *, metric: str,
                    mode: str = "max", best_epoch: int | None = None,
                    title: str = "") -> Path | None:
    """curves.png: train/val loss and the LR (left), the validation metric (right), the best
    epoch marked on both; `best_epoch` is the trainer's (done.json), else the metric's best.
    The title defaults to the fold folder's name ("fold0: ...")."""
    if not rows:
        return None
    fig = curves_figure(rows, metric=metric, mode=mode, best_epoch=best_epoch,
                        title=title or Path(path).parent.name)
    return _save(fig, path, title=fig.get_suptitle())


def curves_figure(rows: Sequence[dict], *, metric: str, mode: str = "max",
                  best_epoch: int | None = None, title: str = ""):
    """The Figure behind curves.png; its legend sits below the panels, covering no line."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    epoch = [r["epoch"] for r in rows]
    values = np.array([r["valid_metric"] for r in rows], dtype=float)
    best = best_epoch if best_epoch in epoch else epoch[_best_index(values, mode)]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    ax_loss.plot(epoch, [r["train_loss"] for r in rows], "o-", label="train loss", ms=3)
    ax_loss.plot(epoch, [r["valid_loss"] for r in rows], "o-", label="valid loss", ms=3)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_lr = ax_loss.twinx()  # the LR on its own axis: it is orders of magnitude smaller
    ax_lr.plot(epoch, [r["lr"] for r in rows], ":", color="gray", label="learning rate")
    ax_lr.set_ylabel("learning rate", color="gray")
    ax_metric.plot(epoch, values, "o-", color="C2", ms=3, label=f"valid {metric}")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    for ax in (ax_loss, ax_metric):
        ax.axvline(best, color="C3", alpha=0.4, label=f"best epoch {best}" if ax is ax_loss else None)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, never 0.2
    handles = [*ax_loss.get_lines(), *ax_lr.get_lines(), *ax_metric.get_lines()[:1]]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    row = rows[epoch.index(best)]
    fig.suptitle(f"{title}: best epoch {best}, valid loss {row['valid_loss']:.4f}, "
                 f"valid {metric} {row['valid_metric']:.4f}".lstrip(": "))
    return fig


def _best_index(values: np.ndarray, mode: str) -> int:
    if not np.isfinite(values).any():
        return 0
    return int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))


def boosting_curve(history, path: str | Path, *, best: int | None = None) -> Path | None:
    """A boosting library's validation loss per round (history.csv: round, valid_<loss>),
    with the best round marked."""
    if history is None or not len(history):
        return None
    plt = pyplot()
    loss = [c for c in history.columns if c != "round"][0]
    values = history[loss].to_numpy(float)
    best = best or int(np.nanargmin(values)) + 1
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(history["round"], values, color="C1")
    ax.axvline(best, color="C2", alpha=0.5, label=f"best round {best}")
    ax.set_xlabel("round")
    ax.set_ylabel(loss)
    ax.set_title(f"validation {loss} per boosting round")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def importance_bars(table, path: str | Path, *, kind: str, top: int = 30) -> Path:
    """The `top` features by mean importance over folds, with their std as error bars."""
    plt = pyplot()
    table = table.head(top).iloc[::-1]  # the largest on top
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.28 * len(table)))
    ax.barh(table["feature"].astype(str), table["mean"], xerr=table["std"], color="C0",
            error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.set_xlabel(f"{kind} (mean ± std over folds)")
    fig.tight_layout()
    return _save(fig, path)


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: Sequence, path: str | Path,
              *, title: str = "") -> Path:
    """Row-normalized confusion matrix with the counts written in the cells (<= 30 classes)."""
    plt = pyplot()
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


def residuals(truth: np.ndarray, pred: np.ndarray, path: str | Path, *, title: str = "",
              log: bool | None = None) -> Path:
    """A regression's OOF picture: predictions against truth with the y = x line (left) and
    the residual histogram (right). Log axes by default when every value is positive and
    they span two orders of magnitude (prices, counts)."""
    plt = pyplot()
    truth, pred = np.asarray(truth, float), np.asarray(pred, float)
    if log is None:
        both = np.concatenate([truth, pred])
        log = bool((both > 0).all() and both.max() > 100 * both.min())
    fig, (ax_xy, ax_res) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax_xy.scatter(truth, pred, s=6, alpha=0.5)
    low, high = np.nanmin([truth.min(), pred.min()]), np.nanmax([truth.max(), pred.max()])
    ax_xy.plot([low, high], [low, high], color="C3", lw=1, label="y = x")
    if log:
        ax_xy.set_xscale("log")
        ax_xy.set_yscale("log")
    ax_xy.set_xlabel("truth")
    ax_xy.set_ylabel("OOF prediction")
    ax_xy.legend(loc="upper left")
    res = np.log1p(pred) - np.log1p(truth) if log else pred - truth
    ax_res.hist(res[np.isfinite(res)], bins=40, color="C0")
    ax_res.axvline(0, color="C3", lw=1)
    ax_res.set_xlabel("log1p(pred) - log1p(truth)" if log else "pred - truth")
    ax_res.set_ylabel("rows")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def sample_grid(x, path: str | Path, *, labels: Sequence | None = None, ncol: int = 8,
                limit: int = 64) -> Path:
    """The first images of a batch, each titled with its label (pass class names, not
    indices): uint8 pixels, or floats in [0, 1] (the image task de-normalizes its sample
    batch before it gets here). The PNG's Description holds the titles, one a line."""
    fig = sample_grid_figure(x, labels=labels, ncol=ncol, limit=limit)
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    return _save(fig, path, title=fig.get_suptitle(), description="\n".join(titles))


def sample_grid_figure(x, *, labels: Sequence | None = None, ncol: int = 8, limit: int = 64):
    """One small axes per image (so a title per image), ncol images a row."""
    import torch

    x = torch.as_tensor(x[:limit]).detach().cpu()
    x = (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()).clamp(0, 1)
    images = x.permute(0, 2, 3, 1).numpy()  # N, H, W, C for imshow
    nrow = -(-len(images) // ncol)
    plt = pyplot()
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 1.1, nrow * 1.25 + 0.3),
                             squeeze=False, layout="constrained")
    names = [_label_text(v) for v in labels][:len(images)] if labels is not None else []
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            gray = images[i].shape[2] == 1
            ax.imshow(images[i].squeeze(2) if gray else images[i], cmap="gray" if gray else None,
                      vmin=0, vmax=1)
            ax.set_title(names[i] if i < len(names) else "", fontsize=7)
    fig.suptitle(f"first training batch as the model sees it (augmented), {len(images)} images")
    return fig


def _label_text(value) -> str:
    """A class name as it is; a regression target short (4 significant digits)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
