"""Demo digit-recognizer files from scikit-learn's bundled handwritten digits (load_digits:
1,797 real 8x8 scans, 0..16), upscaled to MNIST's 28x28 layout (a 20x20 digit centred in
a 4-pixel border, 0..255), written in Kaggle's CSV format. Real handwriting, but not MNIST:
the scores say the pipeline works, nothing about the leaderboard."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from kit.io import write_csv, write_text


def _to_mnist(images: np.ndarray) -> np.ndarray:
    out = np.zeros((len(images), 28, 28), np.uint8)
    for i, img in enumerate(images):
        big = cv2.resize((img * (255 / 16)).astype(np.float32), (20, 20),
                         interpolation=cv2.INTER_CUBIC)
        out[i, 4:24, 4:24] = np.clip(big, 0, 255).round().astype(np.uint8)
    return out


def make_demo(data_dir: Path, seed: int = 0, n_test: int = 400) -> None:
    """Write the demo files into `data_dir`, each through a temporary name (kit.io): an
    interrupted demo never leaves a half file that a later run (or --data DIR) trusts."""
    from sklearn.datasets import load_digits

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    pixels = _to_mnist(digits.images[order]).reshape(len(order), -1)
    labels = digits.target[order]
    columns = [f"pixel{i}" for i in range(784)]
    train = pd.DataFrame(pixels[n_test:], columns=columns)
    train.insert(0, "label", labels[n_test:])
    write_csv(data_dir / "train.csv", train)
    write_csv(data_dir / "test.csv", pd.DataFrame(pixels[:n_test], columns=columns))
    write_csv(data_dir / "sample_submission.csv",
              pd.DataFrame({"ImageId": np.arange(1, n_test + 1), "Label": 0}))
    write_text(
        data_dir / "DEMO_README.txt",
        "SYNTHETIC DEMO DATA written by `--demo`: scikit-learn's 8x8 handwritten digits\n"
        "upscaled to 28x28 in the digit-recognizer CSV layout. Not the Kaggle data.\n"
        "Get the real files with: kaggle competitions download -c digit-recognizer "
        "-p data/digit-recognizer\n")
