"""The bad-input matrix: one row per case (docs/reliability.md, "Bad input", lists the same rows).

Each failing row asserts the error class, that the one-line message names the file /
column / value and the fix, the script's exit status (2), and that submissions/ and the
existing run folders are byte-for-byte unchanged. Accepted rows train and submit.
"""

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from kit.cli import run_script, train_main
from kit.errors import CheckpointError, ConfigError, DataError, KitError, SubmissionError

OLD_RUN = "20260101-000000_mlp_eng"
FAST = ["--set", "model.name=gbdt", "--set", "model.params.gbdt.max_iter=20", "--fits", "1"]


def make_world(tmp_path: Path, comp: str) -> Path:
    """Demo data, plus a submissions folder and a run folder that must survive every row."""
    from kit.hooks import load_hook

    load_hook(ROOT / "competitions" / comp, "demo", "make_demo")(tmp_path / "data", seed=0)
    (tmp_path / "subs" / comp).mkdir(parents=True)
    (tmp_path / "subs" / comp / "earlier_run.csv").write_text("id,label\n1,0\n")
    old_run = tmp_path / "runs" / comp / OLD_RUN
    (old_run / "fold0").mkdir(parents=True)
    (old_run / "scores.json").write_text('{"mean": 0.83}')
    (old_run / "fold0" / "last.pt").write_bytes(b"earlier checkpoint")
    return tmp_path


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path, "titanic")


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for folder in (root / "subs", *root.glob(f"runs/*/{OLD_RUN}"))
            for p in sorted(folder.rglob("*")) if p.is_file()}


def argv(world: Path, *extra) -> list[str]:
    return ["--comp", "titanic", "--data", str(world / "data"), "--runs", str(world / "runs"),
            "--submissions", str(world / "subs"), *FAST, *extra]


def fails(world, capsys, args, error, *fragments):
    """Run train.py's main in-process: the error class, then the script's exit status."""
    before = snapshot(world)
    with pytest.raises(error) as info:
        train_main(args)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert run_script(train_main, args) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")
    assert snapshot(world) == before
    return message


def edit(path: Path, fn) -> None:
    frame = pd.read_csv(path)
    fn(frame).to_csv(path, index=False)


def drop(col):
    return lambda f: f.drop(columns=col)


# --- data files --------------------------------------------------------------------------

def test_missing_data_folder(world, capsys):
    args = argv(world)
    args[args.index("--data") + 1] = str(world / "nowhere")
    fails(world, capsys, args, DataError, "no train.csv in", "nowhere",
          "kaggle competitions download -c titanic -p", "--demo")


def test_zip_with_path_traversal_member(world, capsys):
    folder = world / "zipped"
    folder.mkdir()
    with zipfile.ZipFile(folder / "titanic.zip", "w") as zf:
        zf.writestr("train.csv", "PassengerId,Survived\n1,0\n")
        zf.writestr("../escaped.txt", "outside the data folder")
    args = argv(world)
    args[args.index("--data") + 1] = str(folder)
    fails(world, capsys, args, DataError, "titanic.zip", "../escaped.txt")
    assert not (world / "escaped.txt").exists()
    assert not (folder / "train.csv").exists()  # refused before anything was extracted


@pytest.mark.parametrize("file, column", [("train.csv", "PassengerId"), ("train.csv", "Survived"),
                                          ("test.csv", "PassengerId")])
def test_csv_missing_the_id_or_target_column(world, capsys, file, column):
    edit(world / "data" / file, drop(column))
    fails(world, capsys, argv(world), DataError, file, repr([column]), "config.toml")


def test_target_with_unexpected_values(world, capsys):
    edit(world / "data" / "train.csv", lambda f: f.assign(Survived=f["Survived"].replace(1, 2)))
    fails(world, capsys, argv(world), DataError, "train.csv", "'Survived'", "[0, 2]",
          "expected only ['0', '1']", "fix the target column")


# --- regression (House Prices) -----------------------------------------------------------

HP = "house-prices-advanced-regression-techniques"


@pytest.fixture
def hp_world(tmp_path):
    return make_world(tmp_path, HP)


def hp_argv(world: Path, *extra) -> list[str]:
    return ["--comp", HP, "--data", str(world / "data"), "--runs", str(world / "runs"),
            "--submissions", str(world / "subs"), "--set", "model.name=linear", "--fits", "1",
            *extra]


def test_continuous_target_under_a_classification_config(world, capsys):
    edit(world / "data" / "train.csv", lambda f: f.assign(Survived=f["Fare"]))
    fails(world, capsys, argv(world), DataError, "train.csv", "'Survived'", "distinct numeric",
          "looks continuous", 'competition.problem = "regression"')


def test_non_numeric_target_under_a_regression_config(hp_world, capsys):
    edit(hp_world / "data" / "train.csv", lambda f: f.assign(
        SalePrice=f["SalePrice"].astype(object).where(f.index != 3, "pricey")))
    fails(hp_world, capsys, hp_argv(hp_world), DataError, "train.csv", "'SalePrice'",
          "not numeric", "rows [3]", "'pricey'", 'competition.problem = "classification"')


def test_negative_targets_with_rmsle(hp_world, capsys):
    edit(hp_world / "data" / "train.csv", lambda f: f.assign(
        SalePrice=f["SalePrice"].where(f.index != 7, -100)))
    fails(hp_world, capsys, hp_argv(hp_world), DataError, "train.csv", "'SalePrice'",
          "negative in rows [7]", "rmsle", 'competition.metric = "rmse"')


def test_log1p_on_targets_at_or_below_minus_one(hp_world, capsys):
    edit(hp_world / "data" / "train.csv", lambda f: f.assign(
        SalePrice=f["SalePrice"].where(f.index != 2, -1)))
    fails(hp_world, capsys, hp_argv(hp_world, "--set", "competition.metric=rmse"), DataError,
          'data.target_transform = "log1p"', "above -1", "[-1.0]", '"none"')


@pytest.mark.parametrize("comp, metric, fragments", [
    ("titanic", "rmse", ("'rmse' scores a regression", "accuracy", "auc",
                         'competition.problem = "regression"')),
    (HP, "accuracy", ("'accuracy' scores a classification", "rmsle", "mae",
                      'competition.problem = "classification"'))])
def test_a_metric_of_the_other_problem_kind(tmp_path, capsys, comp, metric, fragments):
    world = make_world(tmp_path, comp)
    args = argv(world) if comp == "titanic" else hp_argv(world)
    fails(world, capsys, [*args, "--set", f"competition.metric={metric}"], ConfigError,
          "competition.metric", *fragments)
    assert [p.name for p in (world / "runs" / comp).iterdir()] == [OLD_RUN]  # no new folder


def test_duplicate_ids_in_test(world, capsys):
    edit(world / "data" / "test.csv", lambda f: f.assign(
        PassengerId=f["PassengerId"].where(f.index != 5, f["PassengerId"][4])))
    fails(world, capsys, argv(world), DataError, "test.csv", "duplicate ids", "896")


@pytest.mark.parametrize("content, fragment", [(b"", "is empty (0 bytes)"),
                                               (b"PassengerId,Pclass\n", "header but no rows")])
def test_empty_test_file(world, capsys, content, fragment):
    (world / "data" / "test.csv").write_bytes(content)
    fails(world, capsys, argv(world), DataError, "test.csv", fragment)


def test_truncated_csv_last_line_cut(world, capsys):
    path = world / "data" / "train.csv"
    text = path.read_bytes()
    path.write_bytes(text[: text.rstrip(b"\n").rfind(b",") - 3])  # cut mid-line, no newline
    fails(world, capsys, argv(world), DataError, "train.csv", "last line has",
          "download it again")


def test_unknown_config_key(world, capsys):
    message = fails(world, capsys, argv(world, "--set", "train.epohcs=3"), ConfigError,
                    "epohcs", "train")
    assert "epochs" in message  # the valid keys are listed


def test_wrong_value_type_in_set(world, capsys):
    fails(world, capsys, argv(world, "--set", "train.epochs=many"), ConfigError,
          "train.epochs", "'many'", "int")


def test_submission_columns_that_do_not_match_the_sample_fail_before_training(world, capsys):
    fails(world, capsys, argv(world, "--set", "submission.id=Passenger"), DataError,
          "gender_submission.csv", "'PassengerId' where submission.id = 'Passenger'")
    trained = [f.parent.name for f in (world / "runs" / "titanic").glob("*/fold0")]
    assert trained == [OLD_RUN]  # the failed run stopped before its first fold


def test_unknown_model_name(world, capsys):
    fails(world, capsys, argv(world, "--set", "model.name=xgboost"), ConfigError,
          "'xgboost'", "gbdt", "mlp")


def test_an_unknown_parameter_for_a_boosting_library(world, capsys):
    fails(world, capsys, argv(world, "--set", "model.name=lgbm",
                              "--set", "model.params.lgbm.num_leafs=7"),
          ConfigError, "model.params.lgbm.num_leafs", "LightGBM has no parameter",
          "close matches", "num_leaves")


def test_early_stopping_rounds_below_one(world, capsys):
    fails(world, capsys, argv(world, "--set", "model.name=xgb",
                              "--set", "model.params.xgb.early_stopping_rounds=0"),
          ConfigError, "model.params.xgb.early_stopping_rounds = 0", "whole number >= 1")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_on_a_machine_without_a_gpu(world, capsys):
    fails(world, capsys, argv(world, "--set", "model.name=xgb", "--device", "cuda"),
          ConfigError, "device 'cuda' is not available", "--device cpu")


def test_a_categorical_column_missing_from_test(world, capsys):
    edit(world / "data" / "test.csv", drop("Cabin"))
    fails(world, capsys, argv(world, "--set", "model.name=lgbm",
                              "--set", "features.categorical=Pclass,Sex,Cabin"),
          DataError, "test data has no feature column(s) ['Cabin']", "features.categorical")


@pytest.mark.parametrize("decay", ["1.0", "-0.5"])
def test_ema_decay_outside_zero_one(world, capsys, decay):
    fails(world, capsys, argv(world, "--set", "model.name=mlp", "--set",
                              f"train.ema_decay={decay}"),
          ConfigError, f"train.ema_decay = {float(decay)}", "e.g. 0.999")


def test_checkpoint_from_a_different_model_on_resume(world, capsys):
    run = world / "runs" / "titanic" / "interrupted"
    args = argv(world, "--set", "model.name=mlp", "--set", "train.epochs=2")
    args[args.index("--runs") + 1] = str(world / "first")
    summary = train_main(args)
    first = Path(summary["run_dir"])
    first.rename(run)
    (run / "fold0" / "done.json").unlink()  # fold 0 looks unfinished: resume loads last.pt
    config = run / "config.toml"
    config.write_text(config.read_text().replace("hidden = [64, 32]", "hidden = [16]"))
    fails(world, capsys, ["--resume", str(run)], CheckpointError, "last.pt", "does not fit",
          "resume with the config the run was started with")


# --- accepted rows: the run trains and submits -------------------------------------------

def accepted(world, capsys, args=None) -> pd.DataFrame:
    before = snapshot(world)
    summary = train_main(args or argv(world))
    after = snapshot(world)
    new = set(after) - set(before)
    assert {k: after[k] for k in before} == before and len(new) == 1, new
    return pd.read_csv(summary["submission"])


def test_extra_unexpected_columns_are_accepted(world, capsys):
    for file in ("train.csv", "test.csv"):
        edit(world / "data" / file, lambda f: f.assign(Unexpected=np.arange(len(f))))
    assert len(accepted(world, capsys)) == 418


def test_nan_and_inf_in_numeric_features(world, capsys):
    def poison(f):
        f["Fare"] = f["Fare"].astype(float)
        f.loc[0:9, "Fare"] = [np.nan, np.inf, -np.inf] * 3 + [np.nan]
        f.loc[10:19, "Age"] = np.nan
        return f

    edit(world / "data" / "train.csv", poison)
    edit(world / "data" / "test.csv", poison)
    for model in ("gbdt", "mlp"):
        sub = accepted(world, capsys, argv(world, "--set", f"model.name={model}",
                                           "--set", "train.epochs=2"))
        assert sub["Survived"].isin([0, 1]).all()


@pytest.mark.parametrize("model", ["gbdt", "lgbm", "catboost"])
def test_categorical_value_never_seen_in_training(world, capsys, model):
    edit(world / "data" / "test.csv", lambda f: f.assign(Embarked="Atlantis", Sex="unknown"))
    sub = accepted(world, capsys, argv(world, "--set", f"model.name={model}"))
    assert len(sub) == 418 and sub["Survived"].isin([0, 1]).all()


def test_non_utf8_bytes_in_a_text_column(world, capsys):
    path = world / "data" / "train.csv"
    path.write_bytes(path.read_bytes().replace(b"Mr.", b"Mr." + b"\xff\xfe", 3))
    assert len(accepted(world, capsys)) == 418


# --- images --------------------------------------------------------------------------------

def image_argv(world: Path, comp: str, *extra) -> list[str]:
    return ["--comp", comp, "--data", str(world / "data"), "--runs", str(world / "runs"),
            "--submissions", str(world / "subs"), "--dry-run", *extra]


def spoil_photos(world: Path, n: int) -> list[Path]:
    """The first n train photos: every other one overwritten with text, the rest emptied."""
    photos = sorted((world / "data" / "train" / "images").rglob("*.*"))[:n]
    for i, photo in enumerate(photos):
        photo.write_bytes(b"" if i % 2 else b"this is not a JPEG")
    return photos


def test_corrupt_and_zero_byte_images_past_the_limit(tmp_path, capsys):
    world = make_world(tmp_path, "mask")  # 48 people x 7 photos
    bad = spoil_photos(world, 5)  # 1.5 % > max_bad_fraction 0.01
    fails(world, capsys, image_argv(world, "mask"), DataError, "5 of 336 train images",
          str(bad[0]), "max_bad_fraction = 0.01", "re-download or repair")


def test_a_few_corrupt_and_zero_byte_images_are_skipped_with_a_warning(tmp_path, capsys):
    world = make_world(tmp_path, "mask")
    spoil_photos(world, 2)  # 0.6 %: under the limit
    with pytest.warns(UserWarning, match=r"2 of 336 train images are empty or not images"):
        sub = accepted(world, capsys, image_argv(world, "mask"))
    assert sub["ans"].between(0, 17).all()


def test_pixel_row_of_the_wrong_length(tmp_path, capsys):
    world = make_world(tmp_path, "digit-recognizer")
    path = world / "data" / "train.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # data row 3 lost its last pixel
    path.write_text("\n".join(lines) + "\n")
    fails(world, capsys, image_argv(world, "digit-recognizer"), DataError, "train.csv",
          "line 4 has 784 fields")


@pytest.mark.parametrize("setting, fragments", [
    ("data.params.size=[64, 48]", ["data.params.size moved to image.size",
                                   "size = [64, 48] under [image]"]),
    ("train.tta=true", ["train.tta is gone", "image.tta = [\"hflip\"]", "image.tta = []"]),
])
def test_an_old_image_key_names_the_new_one(tmp_path, capsys, setting, fragments):
    world = make_world(tmp_path, "mask")
    fails(world, capsys, image_argv(world, "mask", "--set", setting), ConfigError, *fragments)


def test_pretrained_weights_requested_offline_with_no_file(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    world = make_world(tmp_path, "mask")
    (world / "data" / "DEMO_README.txt").unlink()  # real data: demo runs train from scratch
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # empty caches: nothing to find
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = image_argv(world, "mask", "--set", "model.name=timm:resnet18", "--set",
                      "model.pretrained=true", "--set", "model.weights=", "--set", "model.params={}")
    fails(world, capsys, args, ConfigError, "'timm:resnet18'",
          "python scripts/fetch_weights.py timm:resnet18", "set model.weights",
          "model.pretrained = false")


# --- submissions --------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, fragment", [
    (lambda f: f.assign(PassengerId=f["PassengerId"] + 1), "ids in 'PassengerId' differ"),
    (lambda f: f[["Survived", "PassengerId"]], "names and order must match"),
    (lambda f: f.iloc[:-1], "417 rows, the sample has 418"),
])
def test_submission_with_wrong_ids_column_order_or_row_count(world, mutate, fragment):
    from kit.submission import validate_file

    sample = world / "data" / "gender_submission.csv"
    bad = world / "bad.csv"
    mutate(pd.read_csv(sample)).to_csv(bad, index=False)
    with pytest.raises(SubmissionError, match=fragment) as info:
        validate_file(bad, sample)
    assert str(bad) in str(info.value)


def test_every_error_is_a_kit_error():
    for cls in (ConfigError, DataError, CheckpointError, SubmissionError):
        assert issubclass(cls, KitError)


# --- fold-safe features and repeated CV (a noise competition, tests/test_fold_contract.py) ---

REORDERING_HOOK = '''
def fold_features(fit, frame):
    return frame[["x"]].rename(columns={"x": "x_again"}).iloc[::-1]  # rows reversed
'''
DROPPING_HOOK = '''
def fold_features(fit, frame):
    return frame[["x"]].rename(columns={"x": "x_again"}).iloc[1:]  # one row short
'''


@pytest.fixture
def noise_world(tmp_path, monkeypatch):
    from test_fold_contract import noise_data

    noise_data(tmp_path / "data")
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path / "comps"))
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "earlier_run.csv").write_text("id,label\n1,0\n")
    return tmp_path


def noise_args(world: Path, comp: str, *extra) -> list[str]:
    return ["--comp", comp, "--data", str(world / "data"), "--runs", str(world / "runs"),
            "--submissions", str(world / "subs"), "--fits", "1", *extra]


@pytest.mark.parametrize("name, hook", [("reorders", REORDERING_HOOK), ("drops", DROPPING_HOOK)])
def test_a_fold_hook_that_changes_the_rows_it_was_given(noise_world, capsys, name, hook):
    from test_fold_contract import competition

    comp = competition(noise_world / "comps", f"hook-{name}", numeric=["x"], features=hook)
    fails(noise_world, capsys, noise_args(noise_world, comp), DataError,
          "features.py fold_features()", "changed their order", "index=frame.index")


def test_a_target_encoded_column_missing_from_test(noise_world, capsys):
    from test_fold_contract import competition

    edit(noise_world / "data" / "test.csv", drop("lvl3"))
    comp = competition(noise_world / "comps", "te-missing", numeric=["x"], encode=["lvl3"])
    fails(noise_world, capsys, noise_args(noise_world, comp), DataError,
          "features.target_encode", "['lvl3']", "test data")


def test_cv_repeats_below_one(noise_world, capsys):
    from test_fold_contract import competition

    comp = competition(noise_world / "comps", "no-repeats", numeric=["x"])
    fails(noise_world, capsys, noise_args(noise_world, comp, "--set", "cv.repeats=0"),
          ConfigError, "cv.repeats = 0", "give 1")


# --- feature lists (issue 27: what both files can give) -----------------------------------

def test_a_target_that_test_csv_also_holds(world, capsys):
    fails(world, capsys, argv(world, "--set", "data.target=Pclass"), DataError,
          "test.csv", "data.target = 'Pclass'", "train-only columns (the likely targets): "
          "['Survived']")


def test_an_excluded_name_that_is_not_a_column(world, capsys):
    fails(world, capsys, argv(world, "--set", "features.exclude=Cabn"), ConfigError,
          "features.exclude", "'Cabn'", "'Cabin'")


# --- a download is complete or absent (issue 27) ------------------------------------------

def test_a_cut_short_train_csv_beside_a_damaged_zip(world, capsys):
    """An interrupted unzip left train.csv cut at a line boundary beside its zip: the run
    extracts again (no marker names the zip) and refuses the damaged member, never trains."""
    data = world / "data"
    full = (data / "train.csv").read_bytes()
    lines = full.splitlines(keepends=True)
    (data / "train.csv").write_bytes(b"".join(lines[:300]))
    with zipfile.ZipFile(data / "titanic.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("train.csv", full)
    raw = bytearray((data / "titanic.zip").read_bytes())
    raw[raw.index(lines[-1])] ^= 0xFF  # one flipped byte: the member's CRC fails
    (data / "titanic.zip").write_bytes(bytes(raw))
    fails(world, capsys, argv(world), DataError, "titanic.zip", "member 'train.csv' is damaged",
          "delete the archive and download again")
    assert not list(data.glob(".*kit-part*"))


def test_submitting_a_demo_trained_file(world):
    """submit.py refuses a file made from demo-trained runs unless --force (issue 27)."""
    import subprocess
    import sys

    demo = world / "subs" / "titanic" / "20260101-000000_gbdt_raw_demo.csv"
    demo.write_text((world / "data" / "gender_submission.csv").read_text())
    before = snapshot(world)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "submit.py"), "--comp",
                           "titanic", "--file", str(demo), "-m", "x", "--dry-run"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert all(f in done.stderr for f in (str(demo), "demo-trained", "--force")), done.stderr
    assert snapshot(world) == before


# --- tuning (issue 27: a study is its own) ------------------------------------------------

@pytest.mark.parametrize("extra, fragments", [
    (["--storage", "postgresql://kit:s3cret@127.0.0.1:1/db"],
     ("--storage postgresql://kit:***@127.0.0.1:1/db", "reachable")),
    (["--jobs", "0"], ("--jobs 0", "give 1 or more")),
])
def test_tune_refusals(world, capsys, extra, fragments):
    """tune.py: a storage URL's password is never echoed; --jobs below 1 is refused."""
    from scripts_tune import main

    before = snapshot(world)
    args = ["--comp", "titanic", "--model", "gbdt", "--trials", "1", "--data",
            str(world / "data"), "--runs", str(world / "runs"), *extra]
    assert run_script(main, args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "s3cret" not in err and all(f in err for f in fragments), err
    assert snapshot(world) == before and not (world / "runs" / "titanic" / "tune").exists()


# --- metrics a competition brings, ranked submissions (issue 30, items 1-2) ---------------

PS = "playground-series-s5e6"  # MAP@3: the sample's placeholder shows three guesses


def ps_argv(world: Path, *extra) -> list[str]:
    return ["--comp", PS, "--data", str(world / "data"), "--runs", str(world / "runs"),
            "--submissions", str(world / "subs"), "--set", "model.params.lgbm.rounds=5",
            "--fits", "1", *extra]


def test_a_metric_file_without_a_direction(tmp_path, capsys, monkeypatch):
    import shutil

    world = make_world(tmp_path, PS)
    comp = shutil.copytree(ROOT / "competitions" / PS, tmp_path / "comps" / PS)
    (comp / "metric.py").write_text('NAME = "top3"\nSCORES = "ranked"\nK = 3\n'
                                    "def score(labels, pred):\n    return 0.0\n")
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path / "comps"))
    fails(world, capsys, ps_argv(world, "--set", "competition.metric=top3"), ConfigError,
          str(comp / "metric.py"), "defines no MODE", 'MODE = "max" (higher is better)',
          'MODE = "min"')
    assert [p.name for p in (world / "runs" / PS).iterdir()] == [OLD_RUN]  # no new folder


@pytest.mark.parametrize("metric, error, fragments", [
    ("map@2", SubmissionError, ("sample_submission.csv", "placeholders hold 3 space-separated",
                                "'map@2' writes 2", "map@3")),
    ("map@8", ConfigError, ("'map@8' writes 8 guesses a row", "7 classes", "map@7")),
    ("map@0", ConfigError, ("'map@0'", "k >= 1")),
])
def test_map_at_k_with_a_k_the_sample_or_classes_cannot_hold(tmp_path, capsys, metric, error,
                                                             fragments):
    world = make_world(tmp_path, PS)
    fails(world, capsys, ps_argv(world, "--set", f"competition.metric={metric}"), error,
          *fragments)


# --- run folders and --resume (tests/test_run_folder.py has the end-to-end cases) ----------

@pytest.fixture
def finished_run(world) -> Path:
    args = argv(world)
    args[args.index("--runs") + 1] = str(world / "first")
    return Path(train_main(args)["run_dir"])


def test_resume_with_a_flag_that_changes_the_run(world, capsys, finished_run):
    fails(world, capsys, ["--resume", str(finished_run), "--seed", "9"], ConfigError,
          f"--resume {finished_run} with --seed", "start a new run")


def test_a_run_folder_whose_slug_is_a_path(world, capsys, finished_run):
    config = finished_run / "config.toml"
    config.write_text(config.read_text().replace('slug = "titanic"', 'slug = "../titanic"'))
    fails(world, capsys, ["--resume", str(finished_run)], ConfigError,
          "competition.slug = '../titanic' is not a competition name", "never a path")


# --- time-ordered CV (issue 30 item 5; tests/test_time_cv.py has the end-to-end cases) -----

TIME = ["--set", "cv.strategy=time", "--set", "cv.time=date"]


def dated(world: Path, bad_row: int | None = None) -> None:
    def add_dates(frame):
        dates = pd.date_range("2024-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
        frame["date"] = dates.to_numpy(dtype=object)
        if bad_row is not None:
            frame.loc[bad_row, "date"] = "soon"
        return frame

    edit(world / "data" / "train.csv", add_dates)


@pytest.mark.parametrize("bad_row, extra, error, fragments", [
    (7, [], DataError, ("train.csv: cv.time = 'date'", "value 'soon' (row 7) parses neither",
                        "numbers or dates")),
    (None, ["--set", "cv.gap=500"], DataError, ("cv.gap = 500 leaves fit 0 with no training "
                                                "rows", "below 100")),
    (None, ["--set", "cv.time=day"], DataError, ("train.csv: cv.time = 'day' is not a column",
                                                 "set cv.time")),
    (None, ["--set", "cv.repeats=3"], ConfigError, ("cv.repeats = 3 under cv.strategy",
                                                    "cv.repeats = 1")),
    (None, ["--set", "cv.strategy=hash"], ConfigError, ("cv.time = 'date' applies to "
                                                        "cv.strategy = \"time\" only",
                                                        "drop cv.time")),
])
def test_time_split_settings_that_cannot_work(noise_world, capsys, bad_row, extra, error,
                                              fragments):
    from test_fold_contract import competition

    dated(noise_world, bad_row)
    comp = competition(noise_world / "comps", "dated", numeric=["x"])
    fails(noise_world, capsys, noise_args(noise_world, comp, *TIME, *extra), error, *fragments)


# --- text columns (features.text) ---------------------------------------------------------

@pytest.mark.parametrize("setting, error, fragments", [
    ('features.text=["SibSp"]', DataError, ("train.csv: features.text lists ['SibSp'], which "
                                            "hold numbers", "move them to features.numeric")),
    ('features.text=["Sex"]', ConfigError, ("features.text lists ['Sex'], which features.numeric "
                                            "/ categorical list too", "remove them from one")),
    ('features.text=["Nickname"]', DataError, ("no feature column(s) ['Nickname']",
                                               "features.text")),
])
def test_text_columns_that_cannot_be_read_as_text(world, capsys, setting, error, fragments):
    fails(world, capsys, argv(world, "--set", setting), error, *fragments)


# --- several targets, empty feature lists -------------------------------------------------

@pytest.mark.parametrize("settings, error, fragments", [
    (['data.target=["Survived", "Nope"]'], SubmissionError,
     ("gender_submission.csv: the sample submission's columns ['Survived'] are not the targets "
      "['Survived', 'Nope']", "make data.target list the sample's columns")),
    (["features.numeric=[]", "features.categorical=[]", "features.text=[]",
      "features.fold_hook=false"], ConfigError,
     ("no feature columns", "numeric = \"auto\"")),
])
def test_targets_the_sample_cannot_hold_and_no_features(world, capsys, settings, error,
                                                        fragments):
    args = [a for s in settings for a in ("--set", s)]
    fails(world, capsys, argv(world, *args), error, *fragments)


# --- row weights (data.weight) -------------------------------------------------------------

def weights(values):
    return lambda frame: frame.assign(w=np.resize(np.asarray(values, dtype=object), len(frame)))


@pytest.mark.parametrize("values, fragments", [
    ([1.0, 2.0, -1.0], ("train.csv: data.weight column 'w' holds -1.0 in row 2",
                        "not a finite number >= 0", "unset data.weight")),
    ([1.0, None, 2.0], ("train.csv: data.weight column 'w' holds nan in row 1",
                        "fix it or unset data.weight")),
    ([1.0, "heavy", 2.0], ("holds 'heavy' in row 1",)),
    ([0.0], ("every data.weight ('w') is 0: no row would count",)),
])
def test_weights_that_are_negative_missing_or_all_zero(world, capsys, values, fragments):
    edit(world / "data" / "train.csv", weights(values))
    fails(world, capsys, argv(world, "--set", "data.weight=w"), DataError, *fragments)


def test_a_weight_column_train_lacks(world, capsys):
    fails(world, capsys, argv(world, "--set", "data.weight=w"), DataError,
          "train.csv: no column data.weight = 'w'", "fix data.weight in config.toml")
