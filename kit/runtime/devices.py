"""Device choice, mixed precision and host-to-device copies."""

from __future__ import annotations

import torch

from kit.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """cuda -> mps -> cpu for "auto"; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": bool(getattr(torch.backends, "mps", None))
                 and torch.backends.mps.is_available()}
    if name not in available:
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, mps")
    if not available[name]:
        raise ConfigError(f"device {name!r} is not available on this machine; use --device auto "
                          "or --device cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for train.amp, or None for full precision.

    auto: bf16 where the GPU supports it (no loss scaling needed), else fp16 with a
    GradScaler; off on CPU and MPS, where autocast rarely speeds small models up.
    """
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "auto":
            return None
        raise ConfigError(f"train.amp = {amp!r} needs a CUDA device, this run is on "
                          f"{device.type}; use train.amp = 'auto' or 'off'")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.amp = 'bf16' is not supported by this GPU; use 'fp16' or 'auto'")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def to_device(batch: dict, device: torch.device, *, channels_last: bool = False) -> dict:
    """Copy a batch to `device`.

    On CUDA, CPU tensors are pinned first so the copy is asynchronous (`non_blocking`)
    and overlaps compute: pre-batched loaders (`batch_size=None`) are never pinned by the
    DataLoader itself. Tensors already on the device (device-resident data) pass through.
    """
    cuda = device.type == "cuda"
    out = {}
    for key, value in batch.items():
        if value.device != device:
            if cuda and value.device.type == "cpu" and not value.is_pinned():
                value = value.pin_memory()
            value = value.to(device, non_blocking=cuda)
        if channels_last and value.ndim == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def fused_adamw_ok(model: torch.nn.Module) -> bool:
    """Whether fused AdamW can step this model: floating-point parameters on CPU or CUDA.
    One launch per parameter group instead of a Python loop over tensors
    (scripts/bench_trainer.py measures what it saves); the same update to float rounding,
    the same state_dict layout, GradScaler-aware."""
    params = list(model.parameters())
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                                for p in params)
