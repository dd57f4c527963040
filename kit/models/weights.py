"""Offline pretrained weights: a local .pth / .safetensors file, or the local torch / HF cache.

Kaggle kernels usually run without internet, so the network is never touched here: the
model is built with random weights and the backbone is loaded from a file (an attached
Kaggle dataset made by `python scripts/fetch_weights.py NAME`). Tensors whose shape differs
from the model's (the old 1000-class classifier) are dropped and the head is replaced
(Xavier); a 3-channel stem conv is summed/averaged to 1 channel like timm does.

    save_weights(model, "weights/resnet18.safetensors")      # scripts/fetch_weights.py
    load_pretrained(model, "timm:resnet18", "/kaggle/input/w/resnet18.safetensors", 18)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from kit.errors import ConfigError
from kit.io import atomic_path
from kit.models.heads import find_head, replace_head

# Prefixes that wrappers add to state-dict keys: DataParallel/DDP, torch.compile.
_KEY_PREFIXES = ("module.", "_orig_mod.")
# A file matching less than this fraction of the model's tensors is for another architecture.
MIN_MATCH = 0.5


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """A model's state dict as .safetensors (no code, loads anywhere) or .pth, atomically."""
    path = Path(path)
    # clone: safetensors refuses tensors that share memory (tied weights, views)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp))
        elif path.suffix in (".pth", ".pt", ".bin"):
            torch.save(state, tmp)
        else:
            raise ConfigError(f"{path}: unknown weights format {path.suffix!r}; use .safetensors "
                              "or .pth")
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors or .pth/.pt/.bin file (kit checkpoints: the `model` entry)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.weights = {str(path)!r}: no such file; attach the weights "
                          "dataset and give its path (on Kaggle: /kaggle/input/<dataset>/<file>)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, or an OSError on a truncated file
            raise ConfigError(f"model.weights = {str(path)!r} is not a readable safetensors "
                              f"file ({exc}); copy it again or save it with "
                              "scripts/fetch_weights.py") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors have many types; name the file
            raise ConfigError(f"model.weights = {str(path)!r} is not a readable torch file "
                              f"({type(exc).__name__}: {exc}); use .pth or .safetensors") from None
        for key in ("state_dict", "model", "model_state", "module"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _KEY_PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def cached_weights(name: str) -> Path | None:
    """A weights file already in the local torch hub / Hugging Face cache, or None."""
    source, _, arch = name.partition(":")
    if source == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(arch)
        if cfg is None:
            return None
        if cfg.hf_hub_id:
            from huggingface_hub import try_to_load_from_cache

            for filename in ("model.safetensors", "pytorch_model.bin"):
                hit = try_to_load_from_cache(cfg.hf_hub_id, filename)
                if isinstance(hit, str):
                    return Path(hit)
        url = cfg.url
    elif source == "torchvision":
        import torchvision

        try:
            url = torchvision.models.get_model_weights(arch).DEFAULT.url
        except (ValueError, KeyError, AttributeError):
            return None
    else:
        return None
    hit = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url or "")
    return hit if url and hit.is_file() else None


def missing_weights_error(name: str) -> ConfigError:
    arch = name.partition(":")[2] or name
    return ConfigError(
        f"model.pretrained = true for {name!r} but no weights file: model.weights is empty and "
        f"no cached copy exists under {torch.hub.get_dir()} or the Hugging Face cache. "
        f"On a machine with internet run `python scripts/fetch_weights.py {name}`, attach "
        f"weights/{arch}.safetensors (on Kaggle as a dataset) and set model.weights to its "
        "path; or set model.pretrained = false to train from scratch"
    )


def load_pretrained(model: nn.Module, name: str, weights: str, num_classes: int) -> dict:
    """Load the backbone from `weights` (or the local cache); replace the head if its shape
    differs. Returns {"file", "loaded", "dropped", "missing"} for the run log."""
    path = Path(weights) if weights else cached_weights(name)
    if path is None:
        raise missing_weights_error(name)
    state = read_state_dict(path)
    own = model.state_dict()
    keep, dropped = {}, []
    for key, value in state.items():
        if key not in own:
            continue
        target = own[key]
        if value.shape == target.shape:
            keep[key] = value
        elif value.ndim == 4 and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
            keep[key] = _adapt_input_conv(target.shape[1], value)  # stem conv, other in_chans
        else:
            dropped.append(key)
    if len(keep) < MIN_MATCH * len(own):
        sample = ", ".join(sorted(set(own) - set(keep))[:5])
        raise ConfigError(f"model.weights {str(path)!r} does not fit model {name!r}: only "
                          f"{len(keep)} of {len(own)} tensors match (unmatched: {sample}, ...); "
                          "the file was saved from another architecture")
    missing = sorted(set(own) - set(keep))
    model.load_state_dict(keep, strict=False)
    head_name, _ = find_head(model)
    if dropped or any(k.startswith(head_name + ".") for k in missing):
        replace_head(model, num_classes)
    other = [k for k in missing if not k.startswith(head_name + ".")]
    if other:
        warnings.warn(f"{path}: {len(other)} tensors of {name} not in the file kept their random "
                      f"init (first: {', '.join(other[:3])})", stacklevel=2)
    return {"file": str(path), "loaded": len(keep), "dropped": dropped, "missing": missing}


def _adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    from timm.models import adapt_input_conv  # sums RGB for 1 channel, tiles for more

    return adapt_input_conv(in_chans, weight.float()).to(weight.dtype)
