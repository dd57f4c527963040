"""A competition created from templates/ trains with only its config edited; dry runs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_in_process, run_train

from kit.submission import validate_file


def script(name, *args, env=None):
    """scripts/<name> in this process (conftest.run_in_process)."""
    return run_in_process(name, *args, env=env)


def make_tabular_dataset(folder: Path, seed: int = 0) -> None:
    """A churn-like table: numeric + categorical columns with signal, string labels."""
    rng = np.random.default_rng(seed)

    def table(n, start):
        tenure = rng.integers(0, 72, n).astype(float)
        tenure[rng.random(n) < 0.1] = np.nan
        plan = rng.choice(["basic", "plus", "pro"], n)
        spend = rng.gamma(2, 30, n)
        return pd.DataFrame({"customer": np.arange(start, start + n), "tenure": tenure,
                             "spend": spend.round(2), "plan": plan,
                             "region": rng.choice(["n", "s", "e", "w"], n)})

    train, test = table(600, 1), table(200, 10_001)
    logit = -0.04 * train["tenure"].fillna(30) + 0.02 * train["spend"] + \
        train["plan"].map({"basic": 1.0, "plus": 0.0, "pro": -1.0})
    train["churn"] = np.where(rng.random(600) < 1 / (1 + np.exp(-logit)), "yes", "no")
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"customer": test["customer"], "churn": "no"}).to_csv(
        folder / "sample_submission.csv", index=False)


@pytest.fixture
def comps(tmp_path):
    """A competitions root holding only what the test creates."""
    root = tmp_path / "competitions"
    root.mkdir()
    return {"KIT_COMPETITIONS_ROOT": str(root)}


@pytest.mark.parametrize("model", ["gbdt", "mlp"])
def test_template_competition_trains_with_only_its_config_edited(tmp_path, comps, model):
    proc = script("new_competition.py", "churn-demo", "--task", "tabular", env=comps)
    assert proc.returncode == 0, proc.stderr
    config = Path(comps["KIT_COMPETITIONS_ROOT"]) / "churn-demo" / "config.toml"
    text = config.read_text()
    for old, new in [('id = "id"', 'id = "customer"'), ('target = "target"', 'target = "churn"'),
                     ('numeric = "auto"', 'numeric = ["tenure", "spend"]'),
                     ('categorical = "auto"', 'categorical = ["plan", "region"]')]:
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    data = tmp_path / "data"
    make_tabular_dataset(data)
    # run_train passes --comp titanic first; the later --comp wins in argparse
    proc, summary = run_train(tmp_path, data, "--comp", "churn-demo",
                              "--set", f"model.name={model}", "--set", "train.epochs=5",
                              env=comps, fresh=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert summary["cv"]["mean"] > 0.6
    frame = validate_file(summary["submission"], data / "sample_submission.csv")
    assert set(frame["churn"]) <= {"yes", "no"}


def make_regression_dataset(folder: Path, seed: int = 0) -> None:
    """A price-like table: log(price) linear in two numerics and a category, plus noise."""
    rng = np.random.default_rng(seed)

    def table(n, start):
        return pd.DataFrame({"Id": np.arange(start, start + n),
                             "area": rng.gamma(4, 400, n).round(), "rooms": rng.integers(1, 9, n),
                             "town": rng.choice(["a", "b", "c"], n)})

    train, test = table(500, 1), table(150, 1001)
    log_price = (11 + 0.0003 * train["area"] + 0.05 * train["rooms"]
                 + train["town"].map({"a": 0.3, "b": 0.0, "c": -0.3}) + rng.normal(0, 0.1, 500))
    train["Price"] = np.expm1(log_price).round()
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"Id": test["Id"], "Price": 180000.0}).to_csv(folder / "sample_submission.csv",
                                                               index=False)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_regression_template_trains_with_auto_features(tmp_path, comps, model):
    proc = script("new_competition.py", "prices-demo", "--problem", "regression", env=comps)
    assert proc.returncode == 0, proc.stderr
    config = Path(comps["KIT_COMPETITIONS_ROOT"]) / "prices-demo" / "config.toml"
    text = config.read_text()
    assert 'problem = "regression"' in text and 'metric = "rmse"' in text
    for old, new in [('id = "id"', 'id = "Id"'), ('target = "target"', 'target = "Price"'),
                     ('metric = "rmse"', 'metric = "rmsle"'),
                     ('target_transform = "none"', 'target_transform = "log1p"')]:
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    data = tmp_path / "data"
    make_regression_dataset(data)
    proc, summary = run_train(tmp_path, data, "--comp", "prices-demo", "--set",
                              f"model.name={model}", "--set", "train.epochs=30", env=comps,
                              fresh=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'features.numeric = "auto": 2 columns [\'area\', \'rooms\']' in proc.stdout
    # the noise is 0.1 in log space; predicting the mean price scores ~0.3
    assert summary["cv"]["metric"] == "rmsle" and summary["cv"]["mean"] < 0.16
    frame = validate_file(summary["submission"], data / "sample_submission.csv", metric="rmsle")
    assert frame["Price"].dtype == np.float64 and (frame["Price"] > 0).all()
    run = Path(summary["run_dir"])
    oof = pd.read_parquet(run / "oof.parquet")
    assert list(oof.columns) == ["id", "fold", "target", "pred"]
    assert oof["target"].max() > 1000  # the original scale, not log1p
    assert list(pd.read_parquet(run / "test_pred.parquet").columns) == ["id", "pred"]
    assert (run / "residuals.png").exists() and not (run / "confusion.png").exists()


def test_new_competition_refuses_to_overwrite_and_bad_task(comps):
    assert script("new_competition.py", "abc", env=comps).returncode == 0
    again = script("new_competition.py", "abc", env=comps)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    bad = script("new_competition.py", "xyz", "--task", "audio", env=comps)
    assert bad.returncode == 2 and "valid tasks are tabular, image" in bad.stderr
    bad = script("new_competition.py", "xyz", "--problem", "ranking", env=comps)
    assert bad.returncode == 2 and "valid problems are classification, regression" in bad.stderr


def test_titanic_dry_run_writes_a_marked_valid_submission(tmp_path):
    proc, summary = run_train(tmp_path, tmp_path / "data", "--demo", "--dry-run",
                              "--set", "model.name=mlp", fresh=False)  # the trainer's files too
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = Path(summary["run_dir"])
    assert run.name.endswith("_dryrun") and Path(summary["submission"]).stem.endswith("_dryrun")
    assert [p.name for p in run.glob("fold*") if p.is_dir()] == ["fold0"]  # one fold
    assert len(pd.read_csv(run / "fold0" / "history.csv")) == 2  # two epochs
    assert list((run / "fold0").glob("best_e*.pt")) and (run / "fold0" / "curves.png").exists()
    validate_file(summary["submission"], tmp_path / "data" / "gender_submission.csv")


DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make_image_dataset(folder: Path, n_train: int = 240, n_test: int = 40) -> None:
    """scikit-learn's 8x8 digits as 32x32 RGB PNGs in the template's layout, labelled with
    words: train.csv (id, label), train/<id>.png, test/<id>.png, sample_submission.csv."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images * (255 / 16)).astype(np.uint8)
    for part in ("train", "test"):
        (folder / part).mkdir(parents=True)
    for i in range(n_train + n_test):
        image = cv2.resize(pixels[i], (32, 32), interpolation=cv2.INTER_CUBIC)
        part = "train" if i < n_train else "test"
        cv2.imwrite(str(folder / part / f"img{i}.png"), np.dstack([image] * 3))
    names = np.array(DIGIT_NAMES)[digits.target[:n_train]]
    pd.DataFrame({"id": [f"img{i}" for i in range(n_train)], "label": names}).to_csv(
        folder / "train.csv", index=False)
    pd.DataFrame({"id": [f"img{i}" for i in range(n_train, n_train + n_test)],
                  "label": "zero"}).to_csv(folder / "sample_submission.csv", index=False)


def test_image_template_applies_its_cpu_profile_and_names_the_sample_classes(tmp_path, comps):
    """A template-made image competition runs on a CPU with nothing uncommented: the [cpu]
    profile (small_cnn at 96 px) applies by itself, early stopping follows the loss for
    accuracy (train.monitor = "auto"), and sample_grid.png is titled with class names."""
    from PIL import Image

    assert script("new_competition.py", "digit-words", "--task", "image",
                  env=comps).returncode == 0
    data = tmp_path / "data"
    make_image_dataset(data)
    proc, summary = run_train(tmp_path, data, "--comp", "digit-words", "--fits", "1",
                              "--set", "train.epochs=2", "--set", "train.num_workers=0",
                              env=comps, fresh=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "device profile [cpu]" in proc.stdout and "small_cnn" in proc.stdout
    run = Path(summary["run_dir"])
    resolved = (run / "config.toml").read_text()
    assert "size = [96, 96]" in resolved and 'monitor = "auto"' in resolved
    best = next((run / "fold0").glob("best_e*.pt")).name
    history = pd.read_csv(run / "fold0" / "history.csv")
    assert best.startswith(f"best_e{history['valid_loss'].idxmin():03d}_")  # the loss's best
    titles = Image.open(run / "fold0" / "sample_grid.png").text["Description"].split("\n")
    assert len(titles) == 32 and set(titles) <= set(DIGIT_NAMES)  # batch 32; names, not "0 1"
    validate_file(summary["submission"], data / "sample_submission.csv")
