"""Several targets on images (issue 30, item 4): a labels CSV with several 0/1 columns trains
one CNN per fold with a sigmoid per label, shared by the columns' runs (kit/tasks/joint.py),
so scores, OOF, predict.py, resume, ensembles, the kernel's dataset and the submission work
as for tables. Real runs of small_cnn on 16 x 16 PNG files in tmp folders."""

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_script

from kit.config import Config, apply_overrides
from kit.data.images import TTAModel
from kit.errors import ConfigError
from kit.kaggle.kernel import build_run_dataset
from kit.metrics.registry import get_metric
from kit.run_folder import target_dirs

SLUG = "two-image-labels"
CONFIG = """
[competition]
task = "image"
metric = "auc"
kaggle = false

[data]
id = "id"
target = {targets}

[image]
size = [16, 16]
channels = 3
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
augment = {{ affine = 0.0, hflip = 0.0, brightness_contrast = 0.0 }}
tta = ["shift"]
tta_shift = 1

[model]
name = "small_cnn"
pretrained = false

[model.params.small_cnn]
width = 8

[optim]
lr = 3e-3

[train]
epochs = 2
batch_size = 32
num_workers = 0
warmup_epochs = 0

[cv]
n_splits = 3
"""
LAYOUT = '''
import numpy as np
import pandas as pd

from kit.data.images import ImageData, ImageSet


def load(data, data_dir, cache_dir):
    """train.csv: id and a 0/1 column per label; test.csv: id; images/<id>.png."""
    train, test = pd.read_csv(data_dir / data.train), pd.read_csv(data_dir / data.test)
    paths = lambda ids: np.array([str(data_dir / "images" / f"{i}.png") for i in ids])
    return ImageData(ImageSet(ids=train["id"].to_numpy(), labels=train.drop(columns="id"),
                              paths=paths(train["id"])),
                     ImageSet(ids=test["id"].to_numpy(), paths=paths(test["id"])), classes=[])
'''


def make_world(root: Path, *, targets=("cat", "dog"), sample_order=("dog", "cat"),
               rows: int = 300, test_rows: int = 60) -> Path:
    """A competition folder and its data: 16 x 16 noise images where label cat puts a bright
    square top left and dog one bottom right (each in about half the images, independently);
    a sample submission holding the targets in `sample_order`."""
    comp = root / "comps" / SLUG
    comp.mkdir(parents=True)
    (comp / "config.toml").write_text(CONFIG.format(targets=json.dumps(list(targets))))
    (comp / "layout.py").write_text(LAYOUT)
    rng = np.random.default_rng(0)
    n = rows + test_rows
    labels = (rng.random((n, 2)) < 0.5).astype(int)
    images = (rng.random((n, 16, 16, 3)) * 120).astype(np.uint8)
    images[labels[:, 0] == 1, 2:7, 2:7] = 230
    images[labels[:, 1] == 1, 9:14, 9:14] = 230
    data = root / "data"
    (data / "images").mkdir(parents=True)
    ids = np.arange(n) + 500
    for i, image in zip(ids, images):
        cv2.imwrite(str(data / "images" / f"{i}.png"), image)
    frame = pd.DataFrame({"id": ids, "cat": labels[:, 0], "dog": labels[:, 1]})
    frame.iloc[:rows].to_csv(data / "train.csv", index=False)
    frame.iloc[rows:][["id"]].to_csv(data / "test.csv", index=False)
    sample = frame.iloc[rows:][["id"]].assign(**{t: 0.5 for t in sample_order})
    sample.to_csv(data / "sample_submission.csv", index=False)
    frame.iloc[rows:].to_csv(root / "test_labels.csv", index=False)  # withheld: the test's truth
    return root


def script(root: Path, name: str, *args):
    """A script run in this process (conftest.run_script); (the process, its summary)."""
    return run_script(name, *args, summary=root / f"{name}-summary.json",
                      env={"KIT_COMPETITIONS_ROOT": str(root / "comps")})


def train(root: Path, *extra, ok: bool = True):
    proc, summary = script(root, "train.py", "--comp", SLUG, "--data", root / "data",
                           "--runs", root / "runs", "--submissions", root / "subs", *extra)
    if ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, summary


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One run begun with --fits 1 and resumed to 3 folds; a second run of another seed."""
    root = make_world(tmp_path_factory.mktemp("image-labels"))
    _, partial = train(root, "--fits", "1")
    resumed, run = train(root, "--resume", partial["run_dir"], "--fits", "3")
    _, other = train(root, "--set", "train.seed=7")
    return root, partial, resumed, run, other


def test_one_cnn_per_fold_serves_every_label_and_a_resume_trains_only_what_it_lacks(world):
    root, partial, resumed, summary, _ = world
    run = Path(summary["run_dir"])
    assert run == Path(partial["run_dir"])
    assert "one network with 2 outputs" in resumed.stdout
    assert "fold 0: one network" not in resumed.stdout  # fold 0 trained before the resume
    assert resumed.stdout.count("takes its output of the network") == 2  # dog's folds 1, 2
    folders = target_dirs(run, ["cat", "dog"])
    for k in range(3):
        network = run / "network" / f"fold{k}"
        assert len(list(network.glob("best_*.pt"))) == 1
        state = torch.load(next(network.glob("best_*.pt")), map_location="cpu",
                           weights_only=True)
        assert state["meta"]["n_outputs"] == 2  # a sigmoid per label
        with np.load(network / "joint.npz") as saved:
            valid, test = saved["valid"], saved["test"]
        assert valid.shape[1] == 2 and test.shape == (60, 2)
        for j, column in enumerate(("cat", "dog")):
            fold = folders[column] / f"fold{k}"
            assert not list(fold.glob("*.pt")), "no network of the column's own"
            oof = pd.read_parquet(fold / "oof.parquet")
            assert np.allclose(oof["p_1"].to_numpy(), valid[:, j])
    assert (folders["cat"] / "fold0" / "sample_grid.png").is_file()
    pd.testing.assert_frame_equal(*(pd.read_csv(f / "folds.csv") for f in folders.values()))


def test_scores_are_the_mean_column_auc_and_the_submission_follows_the_sample(world):
    root, _, resumed, summary, _ = world
    run = Path(summary["run_dir"])
    scores = json.loads((run / "scores.json").read_text())
    parts = {c: json.loads((f / "scores.json").read_text())
             for c, f in target_dirs(run, ["cat", "dog"]).items()}
    assert scores["oof"] == pytest.approx(np.mean([p["oof"] for p in parts.values()]))
    assert min(p["oof"] for p in parts.values()) > 0.8  # both squares learned in 2 epochs
    assert "CV auc (mean over 2 targets)" in resumed.stdout
    submission = pd.read_csv(summary["submission"])
    assert list(submission.columns) == ["id", "dog", "cat"]  # the sample's order
    truth = pd.read_csv(root / "test_labels.csv")
    assert submission["id"].tolist() == truth["id"].tolist()
    auc = get_metric("auc", "classification")
    for column in ("cat", "dog"):  # the withheld test labels, scored as the columns' AUC
        proba = np.column_stack([1 - submission[column], submission[column]])
        assert auc(truth[column].to_numpy(), proba) > 0.8


def test_predict_gives_the_runs_submission_and_the_kernel_dataset_holds_the_network(
        world, tmp_path):
    root, _, _, summary, _ = world
    run = Path(summary["run_dir"])
    proc, out = script(root, "predict.py", "--run", run, "--data", root / "data",
                       "--out", root / "predicted")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out["max_abs_diff_vs_run"] == 0
    assert Path(out["submission"]).read_bytes() == (run / "submission.csv").read_bytes()
    built = build_run_dataset(SLUG, run, "someone", tmp_path)
    copied = {p.relative_to(built["dataset_dir"]).as_posix()
              for p in tmp_path.rglob("*") if p.is_file()}
    assert {f"network/fold{k}/joint.npz" for k in range(3)} <= copied
    assert any(p.startswith("network/fold2/best_") for p in copied)


def test_an_ensemble_of_two_runs_blends_each_label(world):
    root, _, _, summary, other = world
    proc, out = script(root, "ensemble.py", "--comp", SLUG, summary["run_dir"],
                       other["run_dir"], "--method", "hill", "--data", root / "data",
                       "--runs", root / "runs", "--submissions", root / "subs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "== target 'cat' ==" in proc.stdout and "== target 'dog' ==" in proc.stdout
    assert set(out["targets"]) == {"cat", "dog"}
    assert list(pd.read_csv(out["submission"]).columns) == ["id", "dog", "cat"]


def test_several_numbers_share_a_network_and_multi_output_false_trains_one_per_column(
        tmp_path):
    root = make_world(tmp_path, rows=150, test_rows=20)
    _, values = train(root, "--set", "competition.problem=regression",
                      "--set", "competition.metric=rmse", "--fits", "1")
    network = Path(values["run_dir"]) / "network" / "fold0"
    state = json.loads((network / "target.json").read_text())
    assert len(state["mean"]) == 2  # each column standardized on its own
    proc, out = script(root, "predict.py", "--run", values["run_dir"], "--data", root / "data",
                       "--out", root / "predicted")
    assert proc.returncode == 0 and out["max_abs_diff_vs_run"] == 0, proc.stderr[-2000:]
    proc, own = train(root, "--set", "model.multi_output=false", "--fits", "1")
    assert "a model per column (model.multi_output = false)" in proc.stdout
    run = Path(own["run_dir"])
    assert not (run / "network").exists()
    for folder in target_dirs(run, ["cat", "dog"]).values():
        best = next((folder / "fold0").glob("best_*.pt"))
        meta = torch.load(best, map_location="cpu", weights_only=True)["meta"]
        assert meta["n_outputs"] == 1  # a binary head of its own


def test_tta_averages_each_labels_sigmoid():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x[:, :2, 0, 0] + torch.tensor([[2.0, -1.0]])  # view 2 adds 1

    views = [lambda x: x, lambda x: x + 1.0]
    x = torch.zeros(1, 2, 1, 1)
    out = TTAModel(Fixed(), views, "labels")(x)
    expected = (torch.sigmoid(torch.tensor([2.0, -1.0])) +
                torch.sigmoid(torch.tensor([3.0, 0.0]))) / 2
    assert torch.allclose(torch.sigmoid(out), expected[None], atol=1e-6)  # not a softmax
    values = TTAModel(Fixed(), views, "values")(x)
    assert torch.allclose(values, torch.tensor([[2.5, -0.5]]))


# --- bad input ------------------------------------------------------------------------------


def test_an_image_split_on_other_columns_is_the_kits_own():
    """cv.stratify_on on an image task: only as a column's run of several targets holds it."""
    image = ["competition.task=image", 'cv.stratify_on=["cat", "dog"]']
    assert apply_overrides(Config(), [*image, "data.target=cat"]).cv.stratify_on == ("cat", "dog")
    with pytest.raises(ConfigError, match=r"cv.stratify_on = \['cat', 'dog'\]: a tabular"):
        apply_overrides(Config(), [*image, "data.target=bird"])


@pytest.mark.parametrize("change, extra, message", [
    ({"targets": ("cat", "bird"), "sample_order": ("bird", "cat")}, (),
     "have no column(s) ['bird'] (data.target)"),  # the sample has it, train.csv not
    ({"sample_order": ("dog", "other")}, (), "sample submission's columns ['dog', 'other'] "
                                             "are not the targets ['cat', 'dog']"),
    ({}, ("--set", "image.mixup=0.2"), "MixUp and CutMix mix one class per image"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, change, extra, message):
    root = make_world(tmp_path, rows=60, test_rows=10, **change)
    proc, _ = train(root, *extra, ok=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not list((root / "runs").glob(f"{SLUG}/2*"))  # no run folder left behind
    assert not (root / "subs").exists()
