"""Build a Kaggle kernel folder (one self-contained script + kernel-metadata.json); push it.

    python scripts/kernel.py --comp titanic --user me --gpu --push
    python scripts/kernel.py --comp titanic --mode predict --run runs/titanic/<run> --push
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.cli import run_script
from kit.io import write_json
from kit.kaggle import push_dataset, push_kernel
from kit.kernel import build_kernel


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comp", required=True, help="competition slug (folder in competitions/)")
    parser.add_argument("--mode", default="train", choices=["train", "predict"],
                        help="train: cross-validate in the kernel; predict: use a trained --run")
    parser.add_argument("--run", help="run folder to pack as a dataset (--mode predict)")
    parser.add_argument("--user", help="Kaggle user name (default: $KAGGLE_USERNAME)")
    parser.add_argument("--gpu", action="store_true", help="ask for a GPU (enable_gpu)")
    parser.add_argument("--weights-dataset", help="OWNER/SLUG dataset with pretrained weights")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override passed to the entry script")
    parser.add_argument("--folds", type=int, help="train only the first K folds (passed to train.py)")
    parser.add_argument("--title", help="kernel title (default: 'kit <comp> <mode>')")
    parser.add_argument("--out", help="kernel folder (default: build/kernels/<comp>)")
    parser.add_argument("--dataset-out", help="parent of the run dataset folder "
                        "(default: build/datasets)")
    parser.add_argument("--push", action="store_true", help="upload with the kaggle CLI")
    parser.add_argument("--new-version", action="store_true",
                        help="the run dataset exists: push a new version of it")
    parser.add_argument("--summary-json", help="write what was built and run to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    summary = build_kernel(
        args.comp, mode=args.mode, user=args.user, gpu=args.gpu, run=args.run,
        weights_dataset=args.weights_dataset, overrides=args.overrides, folds=args.folds,
        out=args.out,
        dataset_out=args.dataset_out, title=args.title,
    )
    print(f"built {summary['kernel_dir']} ({summary['kernel_id']})")
    if args.mode == "predict":
        print(f"built {summary['dataset_dir']} ({summary['dataset_id']})")
    if args.weights_dataset and not any(o.startswith("model.weights=") for o in args.overrides):
        print(f"note: {args.weights_dataset} is attached; point the model at its file with "
              f"--set model.weights=/kaggle/input/{args.weights_dataset.split('/')[1]}/<file>")
    if args.push:
        if args.mode == "predict":
            summary["dataset_push"] = push_dataset(
                summary["dataset_dir"], new_version=args.new_version,
                message=f"run {Path(args.run).name}")
            print("note: Kaggle processes a new dataset for a few minutes; if the kernel push "
                  "reports it as an invalid source, push the kernel again later")
        summary["kernel_push"] = push_kernel(summary["kernel_dir"])
    if args.summary_json:
        write_json(args.summary_json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(main))
