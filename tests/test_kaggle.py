"""kit.kaggle.client / kit.kaggle.kernel and scripts/{download,submit,kernel}.py against a fake `kaggle`.

tests/fake_kaggle/kaggle stands first on PATH: it logs its argv and answers like kaggle 2.x
(FAKE_KAGGLE_MODE). HOME points at a temporary folder so no real credentials are read.
Kernel scripts run with KIT_KAGGLE_ROOT at a temporary /kaggle tree holding the Titanic
demo data, and with tests/fake_kaggle/offline/sitecustomize.py on PYTHONPATH: every IP
connection fails (and is logged), as in a kernel with the internet off.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from kit.data.archive import safe_extract
from kit.errors import ConfigError, DataError, KaggleError, SubmissionError
from kit.hooks import load_hook
from kit.kaggle import kernel as kernel_mod
from kit.kaggle.client import MARKER, download, push_dataset, push_kernel, scrub, submit
from kit.kaggle.kernel import build_kernel, slugify, validate_kernel_metadata
from kit.paths import ROOT
from kit.submission import validate_file

FAKE = Path(__file__).parent / "fake_kaggle"
OFFLINE = FAKE / "offline"  # sitecustomize.py: no IP connections
TOKEN = "kit-test-token-XYZ"
FILE_TOKEN = "KGAT_0123456789abcdef"
LEGACY_KEY = "legacykey0123456789"
CONFIG = """[competition]
task = "tabular"
metric = "accuracy"
kaggle = {kaggle}

[data]
sample_submission = "gender_submission.csv"
id = "PassengerId"
target = "Survived"
"""
STUB_TRAIN = """import argparse, json
from pathlib import Path
from kit.paths import submissions_root
p = argparse.ArgumentParser()
p.add_argument("--comp"); p.add_argument("--summary-json"); p.add_argument("--set", action="append")
p.add_argument("--data"); p.add_argument("--fits")
a = p.parse_args()
sample = Path(a.data) / "gender_submission.csv"
dest = submissions_root() / a.comp / "stub.csv"
dest.parent.mkdir(parents=True, exist_ok=True)
dest.write_text(sample.read_text())
json.dump({"submission": str(dest), "set": a.set, "fits": a.fits, "data": a.data},
          open(a.summary_json, "w"))
json.dump({"set": a.set, "fits": a.fits, "data": a.data},
          open(dest.parent / "args.json", "w"))
"""
STUB_PREDICT = """import argparse, json, pathlib
from kit.paths import kaggle_root
p = argparse.ArgumentParser(); p.add_argument("--run"); p.add_argument("--summary-json")
p.add_argument("--data")
a = p.parse_args()
run = pathlib.Path(a.run)
assert (run / "fold0" / "preprocessors.json").is_file(), sorted(run.rglob("*"))
dest = kaggle_root() / "working" / "pred.csv"
dest.write_text((pathlib.Path(a.data) / "gender_submission.csv").read_text())
json.dump({"files": {"submission_csv": str(dest)}}, open(a.summary_json, "w"))
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real credentials, a fake CLI first on PATH, a competitions root of our own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_KEY", "KAGGLE_USERNAME", "KAGGLE_CONFIG_DIR",
                 "XDG_CONFIG_HOME", "WANDB_API_KEY", "KIT_DATA_ROOT", "KIT_KAGGLE_ROOT",
                 "KIT_RUNS_ROOT", "KIT_SUBMISSIONS_ROOT", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KAGGLE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "ok")
    comps = tmp_path / "competitions"
    for slug, on_kaggle in (("titanic", "true"), ("facemask", "false")):
        (comps / slug).mkdir(parents=True)
        (comps / slug / "config.toml").write_text(CONFIG.format(kaggle=on_kaggle))
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(comps))
    return tmp_path


@pytest.fixture
def stubs(tmp_path, monkeypatch):
    """Entry scripts that stand in for scripts/train.py and scripts/predict.py."""
    folder = tmp_path / "stub_scripts"
    folder.mkdir()
    (folder / "train.py").write_text(STUB_TRAIN)
    (folder / "predict.py").write_text(STUB_PREDICT)
    monkeypatch.setattr(kernel_mod, "SCRIPTS", folder)
    return folder


def calls(tmp_path) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


# --- download ----------------------------------------------------------------------------


def test_download_extracts_then_is_idempotent_and_force_downloads_again(tmp_path):
    dest = tmp_path / "data" / "titanic"
    first = download("titanic", data=dest)
    assert first["status"] == "downloaded"
    assert sorted(first["files"]) == ["gender_submission.csv", "test.csv", "train.csv"]
    assert len(pd.read_csv(dest / "train.csv")) == 200
    assert not (dest / "titanic.zip").exists() and (dest / MARKER).exists()
    assert calls(tmp_path) == [["competitions", "download", "-c", "titanic", "-p", str(dest)]]

    again = download("titanic", data=dest)
    assert again["status"] == "present" and "--force" in again["message"]
    assert len(calls(tmp_path)) == 1

    forced = download("titanic", data=dest, force=True)
    assert forced["status"] == "downloaded"
    assert calls(tmp_path)[-1][-1] == "--force" and len(calls(tmp_path)) == 2


def test_download_reuses_a_zip_left_by_an_interrupted_extraction(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    with zipfile.ZipFile(dest / "titanic.zip", "w") as zf:
        zf.writestr("train.csv", "a\n1\n")
    assert download("titanic", data=dest)["files"] == ["train.csv"]
    assert calls(tmp_path) == []


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("401", ["KAGGLE_API_TOKEN", "~/.kaggle/access_token", "kaggle.json", "settings/api"]),
        ("403", ["https://www.kaggle.com/competitions/titanic/rules", "403"]),
        ("403raw", ["https://www.kaggle.com/competitions/titanic/rules", "browser"]),
        ("404", ["404", "'titanic'", "kaggle competitions list"]),
        ("network", ["cannot reach kaggle.com", "HTTPS_PROXY"]),
    ],
)
def test_download_errors_say_the_fix(tmp_path, monkeypatch, mode, expected):
    monkeypatch.setenv("FAKE_KAGGLE_MODE", mode)
    dest = tmp_path / "d"
    with pytest.raises(KaggleError) as err:
        download("titanic", data=dest)
    for text in expected:
        assert text in str(err.value)
    assert not (dest / MARKER).exists()


REAL_CLI = Path(sys.executable).parent / "kaggle"


@pytest.mark.skipif(not REAL_CLI.exists(), reason="the real kaggle CLI is not installed")
def test_the_real_cli_without_credentials_gets_the_token_help(tmp_path, monkeypatch):
    # kaggle 2.x checks credentials before any network call: this needs no network.
    monkeypatch.setenv("PATH", str(REAL_CLI.parent))
    with pytest.raises(KaggleError, match="KAGGLE_API_TOKEN") as err:
        download("titanic", data=tmp_path / "d")
    assert "~/.kaggle/access_token" in str(err.value)


def test_download_script_reports_errors_and_writes_a_summary(tmp_path):
    env = {**os.environ}
    summary = tmp_path / "summary.json"
    done = run_script("download.py", "--comp", "titanic", "--data", str(tmp_path / "d"),
                      "--summary-json", str(summary), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(summary.read_text())["command"].startswith("kaggle competitions download")
    env["FAKE_KAGGLE_MODE"] = "403"
    failed = run_script("download.py", "--comp", "titanic", "--data", str(tmp_path / "e"), env=env)
    assert failed.returncode == 2
    last = failed.stderr.strip().splitlines()[-1]  # the CLI's own output is echoed before it
    assert last.startswith("error: ") and "/competitions/titanic/rules" in last


def test_competitions_not_on_kaggle_are_refused(tmp_path, stubs):
    with pytest.raises(KaggleError, match="kaggle = false"):
        download("facemask", data=tmp_path / "d")
    with pytest.raises(KaggleError, match="kaggle = false"):
        submit("facemask", tmp_path / "s.csv", "m", data=tmp_path / "d")
    with pytest.raises(KaggleError, match="kaggle = false"):
        build_kernel("facemask", user="me", out=tmp_path / "k")
    assert calls(tmp_path) == []


# --- zip-slip ----------------------------------------------------------------------------


def _hostile_zip(path: Path, kind: str, outside: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.csv", "a\n1\n")  # a good member first: nothing may be written
        if kind == "traversal":
            zf.writestr("../evil.txt", "pwned")
        elif kind == "absolute":
            zf.writestr(str(outside), "pwned")
        else:
            info = zipfile.ZipInfo("link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, str(outside))
    return path


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink"])
def test_hostile_archives_are_refused_and_nothing_is_written(tmp_path, monkeypatch, kind):
    outside = tmp_path / "abs_evil.txt"
    monkeypatch.setenv("FAKE_KAGGLE_ZIP", str(_hostile_zip(tmp_path / "h.zip", kind, outside)))
    dest = tmp_path / "data" / "titanic"
    with pytest.raises(DataError, match="refusing member"):
        download("titanic", data=dest)
    assert not (tmp_path / "data" / "evil.txt").exists() and not outside.exists()
    assert sorted(p.name for p in dest.iterdir()) == ["titanic.zip"]  # kept for inspection


def test_safe_extract_keeps_nested_folders(tmp_path):
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/train/a.png", b"x")
        zf.writestr("train.csv", "a\n")
    written = safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "train" / "a.png").read_bytes() == b"x"
    assert len(written) == 2
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")


# --- submit ------------------------------------------------------------------------------


@pytest.fixture
def titanic_data(tmp_path):
    dest = tmp_path / "data" / "titanic"
    download("titanic", data=dest)
    (tmp_path / "calls.jsonl").unlink()
    return dest


def test_submit_validates_before_calling_the_cli(tmp_path, titanic_data):
    bad = tmp_path / "bad.csv"
    pd.read_csv(titanic_data / "gender_submission.csv").rename(
        columns={"Survived": "survived"}).to_csv(bad, index=False)
    with pytest.raises(SubmissionError, match="columns"):
        submit("titanic", bad, "first try", data=titanic_data)
    assert calls(tmp_path) == []

    good = titanic_data / "gender_submission.csv"
    summary = submit("titanic", good, "gender baseline", data=titanic_data)
    assert summary["submitted"] is True
    assert calls(tmp_path) == [
        ["competitions", "submit", "-c", "titanic", "-f", str(good), "-m", "gender baseline"]]


def test_submit_dry_run_prints_the_command_only(tmp_path, titanic_data):
    good = titanic_data / "gender_submission.csv"
    done = run_script("submit.py", "--comp", "titanic", "--file", str(good), "-m", "two words",
                      "--data", str(titanic_data), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "kaggle competitions submit -c titanic" in done.stdout and "'two words'" in done.stdout
    assert calls(tmp_path) == []
    failed = run_script("submit.py", "--comp", "titanic", "--file", str(tmp_path / "none.csv"),
                        "-m", "x", "--data", str(titanic_data))
    assert failed.returncode == 2 and "error: submission file not found" in failed.stderr


def test_submit_soft_404_and_empty_message_are_errors(tmp_path, monkeypatch, titanic_data):
    good = titanic_data / "gender_submission.csv"
    with pytest.raises(KaggleError, match="empty"):
        submit("titanic", good, "  ", data=titanic_data)
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "404")  # exit status 0, message on stdout
    with pytest.raises(KaggleError, match="404"):
        submit("titanic", good, "m", data=titanic_data)


# --- kernel metadata ---------------------------------------------------------------------


def test_kernel_folder_and_metadata(tmp_path, stubs):
    build = build_kernel("titanic", user="me", gpu=True, weights_dataset="me/timm-weights",
                         overrides=["train.epochs=2"], out=tmp_path / "k")
    folder = Path(build["kernel_dir"])
    assert sorted(p.name for p in folder.iterdir()) == ["kernel-metadata.json", "kernel.py"]
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta["id"] == "me/kit-titanic-train" and meta["title"] == "kit titanic train"
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["is_private"] is True and meta["competition_sources"] == ["titanic"]
    assert meta["dataset_sources"] == ["me/timm-weights"]
    assert meta["language"] == "python" and meta["kernel_type"] == "script"
    compile((folder / "kernel.py").read_text(), "kernel.py", "exec")
    assert "scripts/train.py" in build["files"] and "competitions/titanic/config.toml" in build[
        "files"] and "kit/kaggle/client.py" in build["files"]
    again = build_kernel("titanic", user="me", gpu=True, weights_dataset="me/timm-weights",
                         overrides=["train.epochs=2"], out=tmp_path / "k")
    assert (folder / "kernel.py").read_text() == Path(again["script"]).read_text()  # reproducible


def _good_meta(folder: Path) -> dict:
    (folder / "kernel.py").write_text("print(1)\n")
    return {"id": "me/kit-titanic-train", "title": "kit titanic train", "code_file": "kernel.py",
            "language": "python", "kernel_type": "script", "is_private": True,
            "enable_gpu": False, "enable_internet": False, "competition_sources": ["titanic"],
            "dataset_sources": []}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"id": "kit-titanic-train"}, "id"),
        ({"id": "me/kit-titanic-train/3"}, "id"),
        ({"title": "kit", "id": "me/kit"}, "at least 5"),
        ({"title": "kit titanic training"}, "gives slug"),
        ({"language": "r"}, "language"),
        ({"kernel_type": "notebook"}, "kernel_type"),
        ({"is_private": "yes"}, "is_private"),
        ({"enable_gpu": None}, "enable_gpu"),
        ({"enable_internet": None}, "enable_internet"),
        ({"competition_sources": []}, "competition_sources"),
        ({"dataset_sources": ["datasets/me/weights"]}, "OWNER/SLUG"),
        ({"dataset_sources": ["weights"]}, "OWNER/SLUG"),
        ({"code_file": "missing.py"}, "code_file"),
    ],
)
def test_every_metadata_rule_has_a_failing_case(tmp_path, change, message):
    meta = _good_meta(tmp_path)
    validate_kernel_metadata(meta, tmp_path)  # the good one passes
    meta = {k: v for k, v in {**meta, **change}.items() if v is not None}
    with pytest.raises(KaggleError, match=message):
        validate_kernel_metadata(meta, tmp_path)


def test_slugify_matches_the_kaggle_client():
    slugify_client = pytest.importorskip("slugify").slugify  # what kernels_push compares with
    for title in ["kit titanic train", "Kit: Digit-Recognizer (predict)", "Don't  stop__me",
                  "kit 20240101-120000_mlp_raw"]:
        assert slugify(title) == slugify_client(title)


CLIENT_CHECK = """
import sys
from kaggle.api.kaggle_api_extended import KaggleApi  # prints its auth help: no credentials
class Stop(Exception):
    pass
def stop(*args, **kwargs):
    raise Stop
api = KaggleApi()
api.config_values["username"] = "me"
api.build_kaggle_client = api.dataset_status = stop  # the first network calls
for push, folder in ((api.kernels_push, sys.argv[1]), (api.dataset_create_new, sys.argv[2])):
    try:
        push(folder)
    except Stop:
        print("VALID", folder)
"""


@pytest.mark.skipif(not (Path(sys.executable).parent / "kaggle").exists(),
                    reason="the kaggle package is not installed")
def test_the_kaggle_client_accepts_the_built_folders(tmp_path, stubs):
    run = _fake_run(tmp_path / "runs" / "20240101-120000_mlp_raw")
    build = build_kernel("titanic", user="me", mode="predict", run=run, out=tmp_path / "k",
                         dataset_out=tmp_path / "ds")
    # The client's own checks (kernels_push, dataset_create_new), stopped before the network.
    done = subprocess.run([sys.executable, "-c", CLIENT_CHECK, build["kernel_dir"],
                           build["dataset_dir"]], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert f"VALID {build['kernel_dir']}" in done.stdout
    assert f"VALID {build['dataset_dir']}" in done.stdout
    assert "does not resolve to the specified id" not in done.stdout  # the title/slug warning


def test_kernel_needs_a_user_and_valid_inputs(tmp_path, monkeypatch, stubs):
    with pytest.raises(KaggleError, match="KAGGLE_USERNAME"):
        build_kernel("titanic", out=tmp_path / "k")
    monkeypatch.setenv("KAGGLE_USERNAME", "envuser")
    assert build_kernel("titanic", out=tmp_path / "k")["kernel_id"] == "envuser/kit-titanic-train"
    with pytest.raises(KaggleError, match="OWNER/SLUG"):
        build_kernel("titanic", weights_dataset="weights", out=tmp_path / "k")
    with pytest.raises(ConfigError, match="unknown key"):
        build_kernel("titanic", overrides=["train.epoch=2"], out=tmp_path / "k")
    with pytest.raises(KaggleError, match="--run"):
        build_kernel("titanic", mode="predict", out=tmp_path / "k")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(KaggleError, match="refusing to clear"):
        build_kernel("titanic", out=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").exists()


# --- credentials -------------------------------------------------------------------------


def _payload_files(script: str) -> dict[str, bytes]:
    encoded = script.split('PAYLOAD = """', 1)[1].split('"""', 1)[0]
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(encoded)), mode="r:xz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


SECRETS = (TOKEN, FILE_TOKEN, LEGACY_KEY)


def test_the_kernel_packs_the_modules_kaggles_image_lacks(tmp_path):
    """tabm and rtdl_num_embeddings (the tabm kind) ride beside kit/, byte for byte the
    installed ones, where the kernel puts kit/ on sys.path."""
    import rtdl_num_embeddings
    import tabm

    build = build_kernel("titanic", user="me", out=tmp_path / "k",
                         overrides=["model.name=tabm"])
    packed = _payload_files(Path(build["script"]).read_text())
    for module in (tabm, rtdl_num_embeddings):
        assert packed[f"{module.__name__}.py"] == Path(module.__file__).read_bytes()


@pytest.fixture
def planted_home(monkeypatch):
    """Fake credentials in the environment and in ~/.kaggle (HOME is a temporary folder)."""
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    monkeypatch.setenv("KAGGLE_KEY", LEGACY_KEY)
    kaggle_dir = Path(os.environ["HOME"]) / ".kaggle"
    kaggle_dir.mkdir()
    (kaggle_dir / "access_token").write_text(FILE_TOKEN + "\n")
    (kaggle_dir / "kaggle.json").write_text(json.dumps({"username": "me", "key": LEGACY_KEY}))
    return kaggle_dir


def leaks(folders: list[Path], texts: tuple[str, ...] = ()) -> list[str]:
    """Files under `folders` (and given texts, e.g. logs) holding a planted credential."""
    found = [str(p) for folder in folders for p in folder.rglob("*") if p.is_file()
             and any(s.encode() in p.read_bytes() for s in SECRETS)]
    return found + [f"text {i}" for i, t in enumerate(texts) if any(s in t for s in SECRETS)]


@pytest.fixture
def planted(tmp_path, planted_home):
    """Credentials where the kit could pick them up: env, ~/.kaggle, the competition folder."""
    comp = tmp_path / "competitions" / "titanic"
    (comp / "local.toml").write_text(f'token = "{TOKEN}"\n')
    (comp / "kaggle.json").write_text(json.dumps({"key": LEGACY_KEY}))
    (comp / ".kaggle").mkdir()
    (comp / ".kaggle" / "access_token").write_text(FILE_TOKEN)
    (comp / ".env").write_text(f"KAGGLE_API_TOKEN={TOKEN}\n")
    return comp


def test_credentials_never_reach_the_kernel_folder(tmp_path, stubs, planted):
    build = build_kernel("titanic", user="me", out=tmp_path / "k")
    files = _payload_files(Path(build["script"]).read_text())
    assert not any(name.startswith("competitions/titanic/.") or name.endswith(
        ("local.toml", "kaggle.json")) for name in files)
    assert leaks([Path(build["kernel_dir"])]) == []
    assert [name for name, data in files.items() if any(s.encode() in data for s in SECRETS)] == []
    # the scan itself finds a planted value (or it could never fail)
    (Path(build["kernel_dir"]) / "note.txt").write_text(f"x {FILE_TOKEN} y")
    assert leaks([Path(build["kernel_dir"])]) == [str(Path(build["kernel_dir"]) / "note.txt")]


def test_a_token_in_a_packed_file_stops_the_build(tmp_path, stubs, planted):
    (planted / "notes.md").write_text(f"my token is {FILE_TOKEN}\n")
    with pytest.raises(KaggleError, match="notes.md"):
        build_kernel("titanic", user="me", out=tmp_path / "k")
    assert not (tmp_path / "k" / "kernel.py").exists()


def test_cli_output_is_scrubbed(tmp_path, monkeypatch, capfd, planted):
    assert scrub(f"a {TOKEN} b {LEGACY_KEY}") == "a *** b ***"
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "leak")
    with pytest.raises(KaggleError) as err:
        download("titanic", data=tmp_path / "d")
    assert TOKEN not in str(err.value) and "***" in str(err.value)
    assert TOKEN not in capfd.readouterr().err


# --- push and inference kernels ----------------------------------------------------------


def _fake_run(folder: Path) -> Path:
    files = {"config.toml": "[competition]\n", "run.json": "{}", "scores.json": "{}",
             "oof.parquet": "x", "test_pred.parquet": "x", "submission.csv": "x",
             "folds.csv": "x", "fold0/best_e3_acc0.81.pt": "w", "fold0/last.pt": "w",
             "fold0/history.csv": "x", "fold0/curves.png": "x", "fold0/done.json": "{}",
             "fold0/preprocessors.json": "{}", "fold0/oof.parquet": "x", "wandb/run.log": "x",
             "cache/train.parquet": "x", "predict/submission.csv": "x"}
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_predict_kernel_packs_the_run_as_a_dataset_and_pushes_both(tmp_path, stubs):
    run = _fake_run(tmp_path / "runs" / "titanic" / "20240101-120000_mlp_raw")
    done = run_script("kernel.py", "--comp", "titanic", "--mode", "predict", "--run", str(run),
                      "--user", "me", "--out", str(tmp_path / "k"), "--dataset-out",
                      str(tmp_path / "ds"), "--push", "--summary-json", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    dataset = Path(summary["dataset_dir"])
    assert summary["dataset_id"] == "me/titanic-20240101-120000-mlp-raw"
    assert sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file()) == [
        "config.toml", "dataset-metadata.json", "fold0/best_e3_acc0.81.pt", "fold0/done.json",
        "fold0/preprocessors.json", "folds.csv", "run.json", "scores.json"]  # folds.csv: fold
    # features are fitted again on each fold's training rows
    meta = json.loads((dataset / "dataset-metadata.json").read_text())
    assert meta["licenses"] == [{"name": "CC0-1.0"}] and meta["id"] == summary["dataset_id"]
    kmeta = summary["metadata"]
    assert kmeta["id"] == "me/kit-titanic-predict" and summary["dataset_id"] in kmeta[
        "dataset_sources"]
    assert calls(tmp_path) == [["datasets", "create", "-p", str(dataset), "-r", "zip"],
                               ["kernels", "push", "-p", str(tmp_path / "k")]]


def test_push_commands_and_push_errors(tmp_path, monkeypatch):
    assert push_dataset(tmp_path, new_version=True, message="run 2")["command"] == (
        f"kaggle datasets version -p {tmp_path} -m 'run 2' -r zip")
    assert "successfully pushed" in push_kernel(tmp_path)["output"]
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "pusherror")  # exit status 0, error on stdout
    with pytest.raises(KaggleError, match="Notebook not found"):
        push_kernel(tmp_path)
    monkeypatch.setenv("FAKE_KAGGLE_MODE", "exists")
    with pytest.raises(KaggleError, match="--new-version"):
        push_dataset(tmp_path)


# --- the kernel script runs ----------------------------------------------------------------


def kaggle_tree(tmp_path: Path, slug: str = "titanic") -> Path:
    """A fake /kaggle: input/<slug> holding the competition's demo files, an empty working/."""
    root = tmp_path / "kaggle"
    make_demo = load_hook(ROOT / "competitions" / slug, "demo", "make_demo")
    make_demo(root / "input" / slug)
    (root / "working").mkdir(parents=True)
    return root


def kernel_env(tmp_path: Path, root: Path) -> dict:
    """The environment of a kernel: fake /kaggle root, internet off, no kit or kaggle settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIT_", "KAGGLE_", "FAKE_"))}
    env.update(KIT_KAGGLE_ROOT=str(root), PYTHONPATH=str(OFFLINE), WANDB_MODE="disabled",
               KIT_TEST_NET_LOG=str(tmp_path / "network.log"), HOME=str(tmp_path / "home"),
               OMP_NUM_THREADS="1")
    return env


def run_kernel(script: str, env: dict, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script], capture_output=True, text=True, env=env,
                          cwd=root / "working", timeout=300, check=False)


def test_the_kernel_environment_has_no_network(tmp_path):
    env = kernel_env(tmp_path, tmp_path / "kaggle")
    probe = ("import socket, urllib.request\n"
             "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
             "except OSError as e:\n    print('refused', e)\n"
             "try:\n    urllib.request.urlopen('https://www.kaggle.com', timeout=1)\n"
             "except OSError as e:\n    print('refused', e)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.stdout.count("refused") == 2 and "internet off" in done.stdout, done.stderr
    assert "www.kaggle.com" in (tmp_path / "network.log").read_text()


def test_kernel_script_runs_its_entry_and_places_the_submission(tmp_path, stubs):
    root = kaggle_tree(tmp_path)
    build = build_kernel("titanic", user="me", overrides=["train.epochs=2"], folds=2,
                         out=tmp_path / "k")
    done = run_kernel(build["script"], kernel_env(tmp_path, root), root)
    assert done.returncode == 0, done.stderr
    final = root / "working" / "submission.csv"
    assert final.read_text() == (root / "input" / "titanic" / "gender_submission.csv").read_text()
    args = json.loads((root / "working" / "titanic" / "args.json").read_text())
    assert args == {"set": ["train.epochs=2"], "fits": "2",
                    "data": str(root / "input" / "titanic")}


def test_predict_kernel_script_uses_the_attached_run(tmp_path, stubs):
    root = kaggle_tree(tmp_path)
    run = _fake_run(tmp_path / "runs" / "20240101-120000_mlp_raw")
    build = build_kernel("titanic", user="me", mode="predict", run=run, out=tmp_path / "k",
                         dataset_out=tmp_path / "ds")
    attached = root / "input" / "datasets" / "me" / build["dataset_slug"]  # a deeper mount
    attached.mkdir(parents=True)
    dataset = Path(build["dataset_dir"])
    (attached / "config.toml").write_text((dataset / "config.toml").read_text())
    with zipfile.ZipFile(attached / "fold0.zip", "w") as zf:  # as `-r zip` uploads fold0/
        for path in (dataset / "fold0").iterdir():
            zf.write(path, path.name)
    done = run_kernel(build["script"], kernel_env(tmp_path, root), root)
    assert done.returncode == 0, done.stderr
    assert (root / "working" / "submission.csv").is_file()


def test_end_to_end_kernel_trains_offline_and_writes_a_valid_submission(
        tmp_path, monkeypatch, planted_home):
    """The real kit, competitions/titanic and scripts/train.py, packed and run as Kaggle
    would, with LightGBM: the kernel imports the image's lightgbm, it installs nothing."""
    monkeypatch.delenv("KIT_COMPETITIONS_ROOT")  # the real competitions/titanic
    root = kaggle_tree(tmp_path)
    build = build_kernel("titanic", user="me", out=tmp_path / "k", folds=2,
                         overrides=["model.name=lgbm"])
    assert "pip install" not in Path(build["script"]).read_text()
    env = kernel_env(tmp_path, root)
    env.update(KAGGLE_API_TOKEN=TOKEN, KAGGLE_KEY=LEGACY_KEY)  # a leak would have them at hand
    done = run_kernel(build["script"], env, root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "network.log").exists()  # nothing even tried to connect
    final = root / "working" / "submission.csv"
    validate_file(final, root / "input" / "titanic" / "gender_submission.csv")
    assert set(pd.read_csv(final)["Survived"]) <= {0, 1}
    runs = [p for p in (root / "working" / "runs" / "titanic").iterdir()
            if (p / "config.toml").exists()]  # beside splits/, the stored folds
    assert len(runs) == 1 and (runs[0] / "fold1" / "done.json").exists()
    assert not (runs[0] / "fold2").exists()  # --fits 2 reached train.py
    assert (runs[0] / "fold1" / "model.txt").is_file()  # LightGBM's own format
    assert "accuracy" in (runs[0] / "scores.json").read_text()
    assert leaks([Path(build["kernel_dir"]), root / "working"], (done.stdout, done.stderr)) == []


# --- the kernel's final check follows the metric; kernel folders are built whole -------------


STUB_TRAIN_PROBA = STUB_TRAIN.replace(
    "dest.write_text(sample.read_text())",
    "import pandas as pd\n"
    "pd.read_csv(sample).assign(Survived=0.25).to_csv(dest, index=False)")


@pytest.mark.parametrize("metric, status", [("auc", 0), ("accuracy", 2)])
def test_the_kernel_final_check_takes_probabilities_where_the_metric_scores_them(
        tmp_path, stubs, metric, status):
    """issue 27 item 8: the check ran without the metric, so probabilities against the
    sample's integer placeholders (Survived = 0) were refused after the whole kernel."""
    (stubs / "train.py").write_text(STUB_TRAIN_PROBA)
    config = tmp_path / "competitions" / "titanic" / "config.toml"
    config.write_text(config.read_text().replace('metric = "accuracy"', f'metric = "{metric}"'))
    root = kaggle_tree(tmp_path)
    build = build_kernel("titanic", user="me", out=tmp_path / "k")
    done = run_kernel(build["script"], kernel_env(tmp_path, root), root)
    assert done.returncode == status, done.stderr
    final = root / "working" / "submission.csv"
    if status == 0:
        assert set(pd.read_csv(final)["Survived"]) == {0.25}
    else:  # a label metric keeps the sample's integer labels
        assert "dtype float64, the sample has int64" in done.stderr and not final.exists()


def test_inference_kernel_with_a_probability_metric_writes_probabilities(tmp_path, monkeypatch):
    """train.py with metric auc writes probabilities (it wrote hard 0/1 labels), and the
    inference kernel, the real predict.py offline, writes the same file and accepts it."""
    monkeypatch.delenv("KIT_COMPETITIONS_ROOT")  # the real competitions/titanic
    root = kaggle_tree(tmp_path)
    data = root / "input" / "titanic"
    done = run_script("train.py", "--comp", "titanic", "--data", str(data), "--fits", "2",
                      "--runs", str(tmp_path / "runs"), "--submissions", str(tmp_path / "subs"),
                      "--set", "model.name=gbdt", "--set", "competition.metric=auc",
                      "--summary-json", str(tmp_path / "train.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    run = Path(json.loads((tmp_path / "train.json").read_text())["run_dir"])
    trained = pd.read_csv(run / "submission.csv")
    assert trained["Survived"].dtype == float and trained["Survived"].between(0, 1).all()
    assert trained["Survived"].nunique() > 2  # scores, not labels
    build = build_kernel("titanic", user="me", mode="predict", run=run, out=tmp_path / "k",
                         dataset_out=tmp_path / "ds")
    Path(build["dataset_dir"]).rename(root / "input" / build["dataset_slug"])
    done = run_kernel(build["script"], kernel_env(tmp_path, root), root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "network.log").exists()
    pd.testing.assert_frame_equal(pd.read_csv(root / "working" / "submission.csv"), trained)


def test_a_failed_kernel_build_leaves_the_previous_folder_whole(tmp_path, stubs):
    first = build_kernel("titanic", user="me", out=tmp_path / "k")
    before = {p.name: p.read_bytes() for p in (tmp_path / "k").iterdir()}
    with pytest.raises(KaggleError, match="at least 5 characters"):
        build_kernel("titanic", user="me", out=tmp_path / "k", title="kit")
    assert {p.name: p.read_bytes() for p in (tmp_path / "k").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    again = build_kernel("titanic", user="me", out=tmp_path / "k")  # not "refusing to clear"
    assert Path(again["script"]).read_bytes() == Path(first["script"]).read_bytes()


def test_submit_refuses_a_demo_trained_file_unless_forced(tmp_path, titanic_data):
    """issue 27 item 10: `submit.py --dry-run` on a demo-trained file said it would submit."""
    sample = (titanic_data / "gender_submission.csv").read_text()
    copy = tmp_path / "subs" / "titanic" / "20240101-120000_gbdt_raw_demo.csv"
    run = tmp_path / "runs" / "titanic" / "20240101-120000_gbdt_raw"  # the mark in run.json
    for folder in (copy.parent, run):
        folder.mkdir(parents=True)
    (run / "config.toml").write_text("")
    (run / "run.json").write_text(json.dumps({"demo": True}))
    copy.write_text(sample)
    (run / "submission.csv").write_text(sample)
    for demo in (copy, run / "submission.csv"):
        common = ["--comp", "titanic", "--file", str(demo), "-m", "x", "--data",
                  str(titanic_data)]
        for extra in ([], ["--dry-run"])[demo != copy:]:  # the run.json case: a dry run only
            done = run_script("submit.py", *common, *extra)
            assert done.returncode == 2 and "is demo-trained" in done.stderr, done.stderr
            assert "--force" in done.stderr and len(done.stderr.strip().splitlines()) == 1
        forced = run_script("submit.py", *common, "--dry-run", "--force")
        assert forced.returncode == 0 and "demo-trained" in forced.stdout, forced.stderr
    assert calls(tmp_path) == []
    (run / "run.json").write_text(json.dumps({"demo": False}))
    real = run_script("submit.py", "--comp", "titanic", "--file", str(run / "submission.csv"),
                      "-m", "x", "--data", str(titanic_data), "--dry-run")
    assert real.returncode == 0 and "demo-trained" not in real.stdout, real.stderr


def test_submit_checks_the_form_the_config_wrote(tmp_path, titanic_data):
    """[submission] kind = "proba" under accuracy writes probabilities; submit judged the
    file by "auto" (labels) and refused it ("dtype float64"), while train.py had written it."""
    config = tmp_path / "competitions" / "titanic" / "config.toml"
    config.write_text(config.read_text() + '\n[submission]\nkind = "proba"\n')
    probs = tmp_path / "probs.csv"
    pd.read_csv(titanic_data / "gender_submission.csv").assign(Survived=0.3).to_csv(
        probs, index=False)
    assert submit("titanic", probs, "probabilities", data=titanic_data, dry_run=True)
    assert calls(tmp_path) == []
