#!/usr/bin/env python
"""Save pretrained weights to a file, for machines (Kaggle kernels) without internet.

Run on a machine with internet; attach the file (on Kaggle as a dataset) and point
`model.weights` at it. The file holds tensors only (.safetensors: no pickled code).

    python scripts/fetch_weights.py timm:resnet18                 # -> weights/resnet18.safetensors
    python scripts/fetch_weights.py torchvision:resnet18 --out w/r18.pth
    python scripts/fetch_weights.py timm:efficientnet_b0 --summary-json fetched.json
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script  # noqa: E402
from kit.errors import ConfigError  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Download pretrained weights once, save them to a file")
    p.add_argument("name", help="timm:<arch> or torchvision:<arch>, as in model.name")
    p.add_argument("--out", type=Path, help="file to write (.safetensors or .pth; default: "
                   "weights/<arch>.safetensors)")
    p.add_argument("--summary-json", type=Path, help="write what was saved here")
    return p


def download(name: str):
    """The model with its published pretrained weights (this is the one call that needs
    the network; the kit never makes it during training)."""
    source, _, arch = name.partition(":")
    if source == "timm":
        import timm

        if not timm.is_model(arch):
            raise ConfigError(f"unknown timm model {arch!r}; list them with "
                              "`python -c \"import timm; print(timm.list_models(pretrained=True))\"`")
        return timm.create_model(arch, pretrained=True)
    if source == "torchvision":
        import torchvision

        if arch not in torchvision.models.list_models(module=torchvision.models):
            raise ConfigError(f"unknown torchvision model {arch!r}; valid: "
                              f"{', '.join(torchvision.models.list_models(module=torchvision.models))}")
        return torchvision.models.get_model(arch, weights="DEFAULT")
    raise ConfigError(f"{name!r}: give timm:<arch> or torchvision:<arch> (built-in kit models "
                      "have no pretrained weights)")


def main(argv=None) -> dict:
    args = parser().parse_args(argv)  # --help before torch loads
    from kit.io import write_json
    from kit.models.weights import save_weights

    arch = args.name.partition(":")[2] or args.name
    out = args.out or Path("weights") / f"{arch}.safetensors"
    model = download(args.name)
    save_weights(model, out)
    n = sum(p.numel() for p in model.parameters())
    print(f"saved {args.name} ({n / 1e6:.1f}M parameters) to {out}; set model.weights = "
          f"\"{out}\" (on Kaggle: /kaggle/input/<dataset>/{out.name}) and model.pretrained = true")
    summary = {"name": args.name, "file": str(out), "parameters": n}
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
