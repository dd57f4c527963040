"""Pixel-CSV parsing (digit-recognizer layout), channel matching, device-resident batches."""

import numpy as np
import pandas as pd
import pytest
import torch

from kit.data.pixels import DeviceBatches, RandomAffine, match_channels, read_pixel_csv
from kit.errors import DataError

SHAPE = (1, 28, 28)


def write_pixels(path, n=12, *, label=True, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, 784))
    frame = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(784)])
    labels = rng.integers(0, 10, n)
    if label:
        frame.insert(0, "label", labels)
    frame.to_csv(path, index=False)
    return pixels, labels


def test_train_csv_parses_to_uint8_images_and_class_indices(tmp_path):
    pixels, labels = write_pixels(tmp_path / "train.csv")
    x, y = read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE, classes=range(10))
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 9
    np.testing.assert_array_equal(y, labels)
    # row-major: pixel k of a row lands at (k // 28, k % 28), as Kaggle documents
    np.testing.assert_array_equal(x[3, 0, 2, 5], pixels[3, 2 * 28 + 5])
    np.testing.assert_array_equal(x.reshape(12, -1), pixels)


def test_labels_are_positions_in_the_configured_classes(tmp_path):
    _, labels = write_pixels(tmp_path / "train.csv")
    classes = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]  # reversed: index = 9 - label
    _, y = read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE, classes=classes)
    np.testing.assert_array_equal(y, 9 - labels)


def test_test_csv_has_no_labels(tmp_path):
    write_pixels(tmp_path / "test.csv", n=5, label=False)
    x, y = read_pixel_csv(tmp_path / "test.csv", label=None, shape=SHAPE)
    assert x.shape == (5, 1, 28, 28) and y is None


def test_cache_is_reused_and_invalidated_when_the_file_changes(tmp_path):
    write_pixels(tmp_path / "train.csv", seed=0)
    cache = tmp_path / "cache"
    x1, _ = read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 2
    x2, _ = read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE, cache_dir=cache)
    np.testing.assert_array_equal(x1, x2)
    write_pixels(tmp_path / "train.csv", n=7, seed=1)  # new content, new cache key
    x3, _ = read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE, cache_dir=cache)
    assert len(x3) == 7


def test_wrong_pixel_count_in_the_header_names_the_file(tmp_path):
    frame = pd.DataFrame(np.zeros((3, 785), int), columns=["label"] + [f"p{i}" for i in range(784)])
    frame.drop(columns=["p783"]).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train.csv: 783 pixel columns, expected 784"):
        read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE)


def test_a_short_row_is_an_error_naming_the_line(tmp_path):
    write_pixels(tmp_path / "train.csv", n=4)
    lines = (tmp_path / "train.csv").read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:500])  # data row 2 lost its last pixels
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train.csv: line 4 has 500 fields"):
        read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE)


@pytest.mark.parametrize("row, column, value, message", [
    (2, "label", 11, r"row 2 \(line 4\) has label 11, not one of the classes"),
    (1, "pixel10", 300, r"row 1 \(line 3\) pixel 10 = 300"),
])
def test_a_bad_value_names_its_row_line_and_value(tmp_path, row, column, value, message):
    write_pixels(tmp_path / "train.csv", n=4)
    frame = pd.read_csv(tmp_path / "train.csv")
    frame.loc[row, column] = value
    frame.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match=message):
        read_pixel_csv(tmp_path / "train.csv", label="label", shape=SHAPE, classes=range(10))


def test_missing_label_column_and_missing_file(tmp_path):
    write_pixels(tmp_path / "test.csv", n=3, label=False)
    with pytest.raises(DataError, match="no label column 'label'"):
        read_pixel_csv(tmp_path / "test.csv", label="label", shape=SHAPE)
    with pytest.raises(DataError, match="missing or empty"):
        read_pixel_csv(tmp_path / "nope.csv", label="label", shape=SHAPE)


def test_match_channels_gray_rgb_both_ways():
    gray = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    rgb = match_channels(gray, 3)
    assert rgb.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(rgb[:, 2], gray[:, 0])
    back = match_channels(rgb, 1)  # luma of equal channels is the value itself
    np.testing.assert_array_equal(back, gray)
    red = np.zeros((1, 3, 2, 2), np.uint8)
    red[:, 0] = 200
    assert match_channels(red, 1)[0, 0, 0, 0] == round(0.299 * 200)
    with pytest.raises(DataError, match="2 channels"):
        match_channels(np.zeros((1, 2, 2, 2), np.uint8), 3)


def test_device_batches_cover_every_row_once_normalized_and_reproducible():
    x = np.random.default_rng(0).integers(0, 256, (50, 1, 8, 8), dtype=np.uint8)
    y = np.arange(50) % 10
    rows = np.arange(100, 150)  # global row ids come back as `index`
    batches = DeviceBatches(x, y, 16, shuffle=True, seed=3, device="cpu", mean=(0.5,),
                            std=(0.25,), index=rows)
    batches.set_epoch(0)
    first = list(batches)
    index = torch.cat([b["index"] for b in first]).numpy()
    assert sorted(index) == rows.tolist() and len(first) == 4
    b = first[0]
    pos = b["index"].numpy() - 100
    expected = (torch.as_tensor(x[pos]).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(b["x"], expected)
    np.testing.assert_array_equal(b["y"].numpy(), y[pos])
    batches.set_epoch(0)
    again = torch.cat([b["index"] for b in batches])
    np.testing.assert_array_equal(again.numpy(), index)  # same epoch, same order (resume)
    batches.set_epoch(1)
    assert not np.array_equal(torch.cat([b["index"] for b in batches]).numpy(), index)


def test_random_affine_keeps_shape_and_identity_when_off():
    x = torch.rand(6, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    out = RandomAffine(degrees=10, scale=0.1, translate=0.1)(x, gen)
    assert out.shape == x.shape and not torch.allclose(out, x)
    same = RandomAffine(p=0.0)(x, gen)  # p=0: identity transform for every image
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
