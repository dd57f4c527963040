"""Image-file loading: decode, gray/RGB, varying sizes, corrupt files, per-worker augmentation, TTA."""


import cv2
import numpy as np
import pytest
import torch

from kit.data.images import (
    ImageFileDataset,
    TTAModel,
    build_transforms,
    check_images,
    decode_all,
    read_image,
    reduce_factor,
    tta_predict,
    tta_transforms,
)
from kit.errors import ConfigError, DataError

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def write(path, h, w, channels=3, seed=0, ext=".jpg"):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)
    path = path.with_suffix(ext)
    cv2.imwrite(str(path), img)
    return path


@pytest.fixture
def files(tmp_path):
    """Mixed sizes and formats: RGB JPEG, gray PNG, RGBA PNG, a large JPEG."""
    return [write(tmp_path / "rgb", 40, 30), write(tmp_path / "gray", 25, 50, 1, ext=".png"),
            write(tmp_path / "rgba", 33, 33, 4, ext=".png"), write(tmp_path / "big", 200, 160)]


def test_read_image_gives_rgb_or_gray_from_any_source(files):
    for path in files:
        rgb, gray = read_image(path, 3), read_image(path, 1)
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
        assert gray.shape == rgb.shape[:2] + (1,)
    bgr = cv2.imread(str(files[0]))
    np.testing.assert_array_equal(read_image(files[0], 3), bgr[:, :, ::-1])  # RGB order


def test_varying_sizes_and_channels_come_out_at_one_size(files):
    for channels in (1, 3):
        tf = build_transforms((24, 20), train=True, mean=MEAN[:channels], std=STD[:channels],
                              seed=0)
        ds = ImageFileDataset(files, [0, 1, 2, 3], tf, channels=channels)
        batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
        assert batch["x"].shape == (4, channels, 24, 20) and batch["x"].dtype == torch.float32
        assert batch["y"].tolist() == [0, 1, 2, 3] and batch["index"].tolist() == [0, 1, 2, 3]


def test_normalization_matches_mean_and_std(tmp_path):
    path = tmp_path / "flat.png"
    cv2.imwrite(str(path), np.full((8, 8, 3), 191, np.uint8))
    x = ImageFileDataset([path], [0], build_transforms((8, 8), train=False, mean=MEAN, std=STD))[0]["x"]
    torch.testing.assert_close(x, torch.full((3, 8, 8), (191 / 255 - 0.5) / 0.25))


def test_reduced_jpeg_decode_keeps_at_least_the_target_size(files):
    assert reduce_factor(files[3], (50, 40)) == 4  # 200 x 160 -> 50 x 40 in the DCT domain
    assert reduce_factor(files[3], (60, 40)) == 2
    assert reduce_factor(files[1], (5, 5)) == 1  # PNG: no DCT shortcut
    assert read_image(files[3], 3, reduce=4).shape == (50, 40, 3)


def test_corrupt_images_are_skipped_with_a_count_then_an_error(tmp_path, files):
    empty, text = tmp_path / "empty.jpg", tmp_path / "notes.jpg"
    empty.write_bytes(b"")
    text.write_bytes(b"this is not an image at all")
    paths = [*files] * 25 + [empty, text]  # 2 bad of 102
    with pytest.warns(UserWarning, match=r"2 of 102 train images are empty or not images \(2.0%"):
        ok = check_images(paths, max_bad_fraction=0.05)
    assert ok.sum() == 100 and not ok[-1] and not ok[-2]
    with pytest.raises(DataError, match=r"2 of 102 .*more than image.max_bad_fraction = 0.01"):
        check_images(paths, max_bad_fraction=0.01)
    with pytest.raises(DataError, match="cannot decode image .*notes.jpg"):
        read_image(text)


def test_undecodable_file_in_a_dataset_is_skipped_or_blanked(tmp_path, files):
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(files[0].read_bytes()[:20])  # JPEG header, no image data
    tf = build_transforms((16, 16), train=False, mean=MEAN, std=STD)
    skip = ImageFileDataset([truncated, files[0]], [5, 7], tf, on_error="skip")
    with pytest.warns(UserWarning, match="cut.jpg.*skipped"):
        item = skip[0]
    assert item["y"] == 7 and item["index"] == 1  # served the next readable image
    blank = ImageFileDataset([truncated], None, tf, on_error="blank")
    with pytest.warns(UserWarning, match="blank"):
        x = blank[0]["x"]
    torch.testing.assert_close(x, torch.full((3, 16, 16), -2.0))  # black, normalized
    with pytest.raises(DataError, match="cut.jpg"):
        ImageFileDataset([truncated], [0], tf)[0]
    missing = tmp_path / "gone.jpg"  # deleted after listing: blank / skip, like a corrupt one
    with pytest.warns(UserWarning, match="blank"):
        assert ImageFileDataset([missing], None, tf, on_error="blank")[0]["x"].shape == (3, 16, 16)
    with pytest.raises(DataError, match="gone.jpg.*restore the file"):
        ImageFileDataset([missing], [0], tf)[0]


def test_decode_all_resizes_to_uint8_and_caches(tmp_path, files):
    out = decode_all(files, (12, 10), channels=3, cache_dir=tmp_path / "c")
    assert out.shape == (4, 3, 12, 10) and out.dtype == np.uint8
    assert len(list((tmp_path / "c").glob("decoded-*.npy"))) == 1
    np.testing.assert_array_equal(decode_all(files, (12, 10), cache_dir=tmp_path / "c"), out)
    write(files[0], 40, 30, seed=1)  # the same path, another picture: decoded again
    again = decode_all(files, (12, 10), channels=3, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("decoded-*.npy"))) == 2
    assert not np.array_equal(again[0], out[0]) and np.array_equal(again[1:], out[1:])


def test_unknown_augment_key_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown keys \['rotation'\]; valid: hflip, affine"):
        build_transforms((8, 8), train=True, mean=MEAN, std=STD, augment={"rotation": 5})
    with pytest.raises(ConfigError, match="'Blurr' is not an albumentations transform"):
        build_transforms((8, 8), train=True, mean=MEAN, std=STD,
                         augment={"extra": [{"name": "Blurr"}]})


def test_workers_draw_different_augmentations(tmp_path):
    """The same image in every row: with per-worker reseeding, the two workers' first
    rows differ; without it they would be identical copies of one RNG."""
    path = write(tmp_path / "one", 32, 32, seed=3)
    tf = build_transforms((32, 32), train=True, mean=MEAN, std=STD, seed=0,
                          augment={"hflip": 0.0, "affine": 1.0, "rotate": 30.0,
                                   "brightness_contrast": 0.0})
    ds = ImageFileDataset([path] * 4, [0] * 4, tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    xs = [b["x"] for b in loader]  # rows 0, 2 from worker 0; rows 1, 3 from worker 1
    assert not torch.allclose(xs[0], xs[1])
    assert not torch.allclose(xs[0], xs[2])  # and successive draws within a worker differ


class Linear(torch.nn.Module):
    """Logits that depend on pixel positions, so every TTA view gives different output."""

    def __init__(self, outputs):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * 8 * 8, outputs)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_tta_views_and_averaging():
    x = torch.randn(5, 3, 8, 8)
    views = tta_transforms(["hflip", "shift"], shift=1)
    assert len(views) == 6
    torch.testing.assert_close(views[0](x), x)
    torch.testing.assert_close(views[1](x), x.flip(3))
    right = views[2](x)  # content moves 1 px right; the left column repeats the edge
    torch.testing.assert_close(right[..., 1:], x[..., :-1])
    torch.testing.assert_close(right[..., 0], x[..., 0])
    model = Linear(4)
    p = tta_predict(model, x, views)
    expected = torch.stack([model(v(x)).softmax(1) for v in views]).mean(0)
    assert p.shape == (5, 4)
    torch.testing.assert_close(p, expected)
    # the wrapped model returns log(mean p): the trainer's softmax gives the mean back
    torch.testing.assert_close(TTAModel(model, views)(x).softmax(1), expected)
    assert not torch.allclose(expected, model(x).softmax(1))


def test_tta_for_a_one_logit_binary_head():
    x = torch.randn(3, 3, 8, 8)
    model = Linear(1)
    views = tta_transforms(["hflip"])
    mean_p = torch.stack([model(v(x)).sigmoid() for v in views]).mean(0)
    torch.testing.assert_close(TTAModel(model, views)(x).sigmoid(), mean_p)


def test_unknown_tta_view_is_an_error():
    with pytest.raises(ConfigError, match="unknown view 'vflip'; valid: hflip, shift"):
        tta_transforms(["vflip"])
