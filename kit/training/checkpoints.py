"""A fold's checkpoints: loading them safely (tensors and plain data, never pickled code),
finding a finished fold's best one, the RNG state last.pt keeps, the EMA copy of the
weights. The trainer (kit/training/trainer.py) writes them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kit.errors import CheckpointError
from kit.io import save_torch


def best_checkpoint(fold_dir: Path) -> Path:
    """A finished fold's best_*.pt: the one of done.json's best_epoch, or the only one."""
    found = sorted(Path(fold_dir).glob("best_*.pt"))
    done = Path(fold_dir) / "done.json"
    epoch = json.loads(done.read_text()).get("best_epoch") if done.is_file() else None
    if isinstance(epoch, int) and epoch >= 0:
        found = [p for p in found if p.name.startswith(f"best_e{epoch:03d}_")]
    if len(found) != 1:
        what = ", ".join(p.name for p in found) or "none"
        raise CheckpointError(f"{fold_dir}: expected one best_*.pt checkpoint of epoch "
                              f"{epoch}, found {what}; retrain the fold (train.py --resume "
                              "after removing its done.json) or copy the run folder whole")
    return found[0]


def best_name(fold_dir: Path, epoch: int, metric: str, score: float) -> Path:
    """Where an epoch's better weights go: best_e<epoch>_<metric><score>.pt."""
    return Path(fold_dir) / f"best_e{epoch:03d}_{metric}{score:.4f}.pt"


def drop_stale_best(fold_dir: Path, keep: Path) -> None:
    """Remove best_*.pt files other than `keep` (the one last.pt names): a kill at any
    moment leaves the checkpoint that a resume or predict will look for."""
    for path in Path(fold_dir).glob("best_*.pt"):
        if path.name != keep.name:
            path.unlink(missing_ok=True)


def save_last(fold_dir: Path, model: nn.Module, opt, parts: dict, *, epoch: int, step: int,
              best_path: Path | None, history: list, meta: dict, ema=None) -> None:
    """last.pt: everything a resume continues from (weights, optimizer, `parts`' states:
    the scaler, the plateau scheduler, early stopping; the step, the history, the RNG)."""
    save_torch(Path(fold_dir) / "last.pt", {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        **{name: part.state_dict() for name, part in parts.items()},
        "epoch": epoch, "step": step, "best_path": best_path.name if best_path else "",
        "history": history, "meta": meta, "rng": rng_state(),
        **({"ema": ema.module.state_dict()} if ema is not None else {})})


def load_last(path: Path, model_name: str, model: nn.Module, opt, *, ema=None,
              parts: dict | None = None) -> dict:
    """last.pt's weights loaded into `model`, its optimizer state into `opt`, its EMA
    weights into `ema` (train.ema_decay), each of `parts`' states into it and the RNG
    state restored; the state, for the step, history and best checkpoint."""
    state = load_checkpoint(path, model_name)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not fit model {model_name!r}: "
            f"{str(exc).splitlines()[0]}; resume with the config the run was started with"
        ) from None
    # the saved groups carry their `fused` flag; this run's choice wins (a checkpoint
    # from another device or kit version)
    fused = opt.param_groups[0].get("fused")
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = fused
    opt.load_state_dict(state["optimizer"])
    if ema is not None:
        if "ema" not in state:
            raise CheckpointError(f"{path} holds no EMA weights: the run started without "
                                  "train.ema_decay; resume with the config the run was "
                                  "started with")
        ema.module.load_state_dict(state["ema"])
    for name, part in (parts or {}).items():
        part.load_state_dict(state[name])
    set_rng_state(state["rng"])
    return state


def make_ema(model: nn.Module, decay: float):
    """timm's ModelEmaV3 of `model` with its decay warm-up (step s uses min(decay,
    1 - s^(-2/3)), so a short CPU run is not stuck near the initial weights), or None."""
    if not decay:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=True)


def load_checkpoint(path: Path, model_name: str | None = None) -> dict:
    """torch.load(weights_only=True): tensors and plain data only, never pickled code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # a truncated or foreign file: say which, never unpickle code
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from None
    saved = state.get("meta", {}).get("model")
    if model_name is not None and saved is not None and saved != model_name:
        raise CheckpointError(
            f"{path} holds a {saved!r} model, the config asks for {model_name!r}; "
            f"use --set model.name={saved} or start a new run")
    return state


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
            "numpy": np_state[1].tolist(), "numpy_pos": int(np_state[2]),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}


def set_rng_state(state: dict) -> None:
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32),
                         state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
