#!/usr/bin/env python
"""Images/s of the kit's image-file loader vs torchvision ImageFolder + PIL + transforms.

Both read the same generated JPEG set (portrait photos, 512 x 384 like the mask
competition's) and apply the same augmentation to a 256 x 192 input: resize, horizontal
flip (p 0.5), affine (p 0.5: rotate 8 deg, scale 8 %, shift 5 %), brightness/contrast
(p 0.3), normalize, to a float tensor, batched by a DataLoader with 0 and 2 workers. One
pass each, after one warm-up batch. The kit decodes JPEGs at reduced scale in the DCT
domain when the target is at most half the size (OpenCV IMREAD_REDUCED_*); `kit_full`
is the kit with that turned off, to show where the speed comes from.

    python scripts/bench_images.py --summary-json bench.json [--n 512] [--workers 0 2]

The last line printed is the JSON summary.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

SIZE = (256, 192)  # h, w given to the model
PHOTO = (512, 384)  # h, w of the generated JPEGs
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
AUGMENT = {"hflip": 0.5, "affine": 0.5, "rotate": 8.0, "scale": 0.08, "translate": 0.05,
           "brightness_contrast": 0.3}


def make_jpegs(root: Path, n: int, seed: int = 0) -> list[Path]:
    """n photo-like JPEGs (smooth gradients, shapes, sensor noise) in ImageFolder layout."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = PHOTO
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(n):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(0, 1, 3)
        base = (a * xx / w + b * yy / h) * 160 + c * 60
        img = np.stack([base, base[::-1], base[:, ::-1]], axis=2)
        img += rng.normal(0, 8, img.shape)
        cv2.ellipse(img, (w // 2, h // 2), (100, 140), 0, 0, 360,
                    tuple(float(v) for v in rng.uniform(60, 220, 3)), -1)
        path = folder / f"{i:05d}.jpg"
        cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def kit_dataset(paths, reduce_decode: bool):
    import numpy as np

    from kit.data.images import ImageFileDataset, build_transforms, reduce_factor

    labels = np.array([int(p.parent.name[-1]) for p in paths])
    tf = build_transforms(SIZE, train=True, mean=MEAN, std=STD, augment=AUGMENT, seed=0)
    reduce = reduce_factor(paths[0], SIZE) if reduce_decode else 1
    return ImageFileDataset(paths, labels, tf, channels=3, reduce=reduce)


def torchvision_dataset(root: Path):
    from torchvision import datasets
    from torchvision import transforms as T

    tf = T.Compose([
        T.Resize(SIZE),
        T.RandomHorizontalFlip(AUGMENT["hflip"]),
        T.RandomApply([T.RandomAffine(AUGMENT["rotate"], translate=(AUGMENT["translate"],) * 2,
                                      scale=(1 - AUGMENT["scale"], 1 + AUGMENT["scale"]))],
                      p=AUGMENT["affine"]),
        T.RandomApply([T.ColorJitter(brightness=0.2, contrast=0.2)],
                      p=AUGMENT["brightness_contrast"]),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])
    return datasets.ImageFolder(str(root), transform=tf)


def images_per_s(dataset, workers: int, batch_size: int) -> float:
    import torch

    from kit.runtime.seed import worker_init_fn

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=workers, worker_init_fn=worker_init_fn,
                                         persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # warm-up: worker start, first decode
    seen, start = 0, time.perf_counter()
    for batch in it:
        x = batch["x"] if isinstance(batch, dict) else batch[0]
        seen += len(x)
    return seen / (time.perf_counter() - start)


def main(argv=None) -> dict:
    import os

    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512, help="number of generated JPEGs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--summary-json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # loaders are measured, not matmuls; keep runs comparable
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "jpegs"
        paths = make_jpegs(root, args.n)
        loaders = {"kit": lambda: kit_dataset(paths, True),
                   "kit_full": lambda: kit_dataset(paths, False),
                   "torchvision": lambda: torchvision_dataset(root)}
        for workers in args.workers:
            for name, make in loaders.items():
                rate = images_per_s(make(), workers, args.batch_size)
                results[f"{name}_w{workers}"] = round(rate, 1)
                print(f"{name:12s} workers={workers}: {rate:8.1f} images/s", flush=True)
    ratios = {f"w{w}": round(results[f"kit_w{w}"] / results[f"torchvision_w{w}"], 2)
              for w in args.workers}
    summary = {"images_per_s": results, "ratio_kit_vs_torchvision": ratios,
               "n_images": args.n, "photo_hw": PHOTO, "input_hw": SIZE,
               "batch_size": args.batch_size, "cpus": os.cpu_count(),
               "load_avg_1min": round(os.getloadavg()[0], 2)}
    if args.summary_json:
        from kit.io import write_json

        write_json(args.summary_json, summary)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    from kit.cli import run_script

    sys.exit(run_script(main))
