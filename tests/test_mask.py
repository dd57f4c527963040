"""The face-mask layout parser, its 18-class encoding, bad-label fixes and person-grouped folds."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from kit.config import CVConfig, DataConfig, load_config
from kit.errors import ConfigError, DataError
from kit.hooks import load_hook
from kit.splits.folds import make_folds

COMP = ROOT / "competitions" / "mask"
layout = load_hook(COMP, "layout", "load").__globals__  # the module's functions
make_demo = load_hook(COMP, "demo", "make_demo")
DATA = DataConfig(train="train/train.csv", test="eval/info.csv", id="ImageID", target="ans")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mask")
    make_demo(root, seed=0, n_people=10, n_eval_people=2)
    return root


def load(root, **params):
    return layout["load"](DATA, root, root / ".cache", **params)


def test_every_image_gets_the_label_of_its_folder(tree):
    data = load(tree)
    assert len(data.train) == 70 and len(data.test) == 14 and data.classes == list(range(18))
    people = pd.read_csv(tree / "train" / "train.csv", dtype={"id": str}).set_index("path")
    for image_id, label, person, path in zip(data.train.ids, data.train.labels, data.train.groups,
                                             data.train.paths):
        stem = image_id.split("/")[1]
        mask = 0 if stem.startswith("mask") else (1 if stem == "incorrect_mask" else 2)
        row = people.loc[person]
        gender = {"male": 0, "female": 1}[row.gender]
        age = 0 if row.age < 30 else (1 if row.age < 60 else 2)
        assert label == mask * 6 + gender * 3 + age
        assert path.endswith(f"{person}/{stem}.jpg") and person == path.split("/")[-2]
    assert (tree / "eval" / "images" / data.test.ids[0]).exists()
    assert data.test.paths[0].endswith(data.test.ids[0])


def test_encode_decode_and_age_bounds():
    enc, dec, age_bin = layout["encode"], layout["decode"], layout["age_bin"]
    labels = enc([0, 1, 2, 2], [1, 0, 1, 0], [2, 1, 0, 2])
    np.testing.assert_array_equal(labels, [5, 7, 15, 14])
    for got, want in zip(dec(labels), ([0, 1, 2, 2], [1, 0, 1, 0], [2, 1, 0, 2])):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(age_bin([18, 29, 30, 59, 60, 80]), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(age_bin([57, 58], bounds=(30, 58)), [1, 2])


def test_unexpected_file_and_missing_image_are_warned_and_skipped(tmp_path):
    make_demo(tmp_path, seed=1, n_people=3, n_eval_people=1)
    folders = sorted((tmp_path / "train" / "images").iterdir())
    (folders[0] / "mask3.jpg").unlink()
    (folders[1] / "mask6.jpg").write_bytes((folders[1] / "mask1.jpg").read_bytes())
    (folders[1] / "._mask1.jpg").write_bytes(b"macOS metadata")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load(tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert "2 unexpected files skipped" in text and "mask6.jpg" in text
    assert "1 images missing" in text and f"{folders[0].name}/mask3" in text
    assert len(data.train) == 3 * 7 - 1
    assert not any("mask6" in p or "._" in p for p in data.train.paths)


def test_missing_person_folder_and_bad_gender(tmp_path):
    make_demo(tmp_path, seed=2, n_people=3, n_eval_people=1)
    people = pd.read_csv(tmp_path / "train" / "train.csv", dtype={"id": str})
    people.loc[3] = ["000099", "male", "Asian", 40, "000099_male_Asian_40"]  # no folder
    people.to_csv(tmp_path / "train" / "train.csv", index=False)
    with pytest.warns(UserWarning, match="1 person folders missing"):
        assert len(load(tmp_path).train) == 21
    people.loc[0, "gender"] = "Male?"
    people.to_csv(tmp_path / "train" / "train.csv", index=False)
    message = r"train.csv: person 000001 has gender 'Male\?'; valid: male, female"
    with pytest.warns(UserWarning), pytest.raises(DataError, match=message):
        load(tmp_path)


def test_bad_labels_are_fixed_before_training(tree):
    before = load(tree)
    pid, folder = "000003", next(p for p in set(before.train.groups) if p.startswith("000003"))
    with pytest.warns(UserWarning, match=r"1 of 3 person ids are not in train.csv \(e.g. 777777\)"):
        after = load(tree, bad_labels={pid: {"swap": ["incorrect_mask", "normal"],
                                             "flip_gender": True},
                                       "000004": {"drop": True}, "777777": {"age": 20}})
    old = dict(zip(before.train.ids, before.train.labels))
    new = dict(zip(after.train.ids, after.train.labels))
    dec = layout["decode"]
    m0, g0, a0 = dec(old[f"{folder}/incorrect_mask"])
    m1, g1, a1 = dec(new[f"{folder}/incorrect_mask"])
    assert (m0, m1) == (1, 2) and g1 == 1 - g0 and a1 == a0
    assert dec(new[f"{folder}/normal"])[0] == 1
    assert not any(p.startswith("000004") for p in after.train.groups)
    assert len(after.train) == len(before.train) - 7
    with pytest.raises(ConfigError, match=r"bad_labels\['000003'\]: unknown keys \['flip'\]; valid: swap"):
        load(tree, bad_labels={pid: {"flip": True}})
    with pytest.raises(ConfigError, match="swap = \\['mask', 'normal'\\]: give two image names"):
        load(tree, bad_labels={pid: {"swap": ["mask", "normal"]}})


def test_age_bounds_from_config_are_checked(tree):
    with pytest.raises(ConfigError, match=r"age_bounds = \[60, 30\]: give two increasing ages"):
        load(tree, age_bounds=[60, 30])
    labels = load(tree, age_bounds=[10, 18]).train.labels
    assert set(labels % 3) == {2}  # the demo people are all 18 or older


def test_group_folds_never_split_a_person(tmp_path):
    make_demo(tmp_path, seed=0, n_people=48, n_eval_people=1)  # the dry run's demo size
    data = load(tmp_path)
    cfg = load_config(COMP / "config.toml").cv
    folds = make_folds(data.train.labels, CVConfig(n_splits=5, seed=cfg.seed,
                                                   strategy=cfg.strategy, group=cfg.group),
                       data.train.groups)
    for k in range(5):
        train_people = set(data.train.groups[folds != k])
        valid_people = set(data.train.groups[folds == k])
        assert valid_people and not train_people & valid_people
    assert cfg.strategy == "stratified_group" and cfg.group == "person"
