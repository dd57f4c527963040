"""Build a Kaggle kernel folder (one self-contained script + kernel-metadata.json); push it.

    python scripts/kernel.py --comp titanic --user me --gpu --push
    python scripts/kernel.py --comp titanic --mode predict --run runs/titanic/<run> --push
    python scripts/kernel.py --comp titanic --demo     # build only, no Kaggle account needed

--demo (and a --run trained on demo data) only builds: nothing is pushed to Kaggle. Without
--user or $KAGGLE_USERNAME a --demo build names its kernel with the placeholder user
"kit-demo".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.cli import refuse_renamed_flags, run_script  # noqa: E402
from kit.errors import ConfigError  # noqa: E402
from kit.io import write_json  # noqa: E402

DEMO_USER = "kit-demo"  # a --demo build's kernel id owner when no user name is set


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
    parser.add_argument("--fits", type=int, metavar="K",
                        help="train only the first K fold fits (passed to train.py)")
    parser.add_argument("--folds", type=int, help=argparse.SUPPRESS)  # renamed --fits
    parser.add_argument("--title", help="kernel title (default: 'kit <comp> <mode>')")
    parser.add_argument("--out", help="kernel folder (default: build/kernels/<comp>)")
    parser.add_argument("--dataset-out", help="parent of the run dataset folder "
                        "(default: build/datasets)")
    parser.add_argument("--push", action="store_true", help="upload with the kaggle CLI")
    parser.add_argument("--demo", action="store_true",
                        help="build only (never pushes); the user name may be left out")
    parser.add_argument("--new-version", action="store_true",
                        help="the run dataset exists: push a new version of it")
    parser.add_argument("--summary-json", help="write what was built and run to this JSON file")
    return parser.parse_args(argv)


def check_demo(args: argparse.Namespace) -> bool:
    """Whether this is a demo build (--demo, or a --run trained on demo data); those are
    never pushed: a kernel of a demo-trained model would submit a model that never saw the
    competition's data."""
    from kit.submission import demo_trained

    demo_run = bool(args.run) and demo_trained(args.run)
    if args.push and (args.demo or demo_run):
        why = "--demo builds only" if args.demo else f"--run {args.run} is demo-trained"
        raise ConfigError(f"--push: {why}, nothing is pushed to Kaggle; drop --push to build "
                          "the folder, or train without --demo and push that run")
    return args.demo or demo_run


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    from kit.kaggle.client import push_dataset, push_kernel
    from kit.kaggle.kernel import build_kernel

    refuse_renamed_flags(args)
    demo = check_demo(args)
    user = args.user or (DEMO_USER if args.demo and not os.environ.get("KAGGLE_USERNAME")
                         else None)
    summary = build_kernel(
        args.comp, mode=args.mode, user=user, gpu=args.gpu, run=args.run,
        weights_dataset=args.weights_dataset, overrides=args.overrides, folds=args.fits,
        out=args.out,
        dataset_out=args.dataset_out, title=args.title,
    )
    summary["demo"] = demo
    print(f"built {summary['kernel_dir']} ({summary['kernel_id']})")
    if demo:
        print("demo build: not pushed; on Kaggle the kernel reads the real competition data")
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
