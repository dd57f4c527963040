"""Security: no code from user files runs, archives stay in their folder, no credentials leak."""

import os
import pickle
import re
import stat
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, run_train

from kit.data.archive import safe_extract
from kit.errors import CheckpointError, DataError


class Payload:
    """Unpickling this runs os.system: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path):
    from kit.training.checkpoints import load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "best_e001_accuracy0.9000.pt"
    path.write_bytes(pickle.dumps({"model": Payload(marker)}))
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_no_eval_exec_or_unpickling_in_the_kit():
    offenders = []
    for path in [*ROOT.glob("kit/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("competitions/*/*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"(?<![.\w])(eval|exec)\(|pickle\.loads?\(|\bjoblib\.load\(", code):
                offenders.append(f"{path}:{n}: {line.strip()}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{path}:{n}: {line.strip()}")
    assert not offenders, offenders


def zip_with(tmp_path, name, *, link=False):
    archive = tmp_path / "comp.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train.csv", "id,target\n1,0\n")
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if link else "x")
    return archive


@pytest.mark.parametrize("name, link, reason", [
    ("../../escape.txt", False, "leaves the folder"),
    ("/tmp/absolute.txt", False, "absolute path"),
    ("C:\\\\windows.txt", False, "absolute path"),
    ("innocent.csv", True, "symbolic link"),
])
def test_unsafe_archive_members_are_refused_before_anything_is_written(tmp_path, name, link,
                                                                       reason):
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=reason):
        safe_extract(zip_with(tmp_path, name, link=link), dest)
    assert not dest.exists() or not any(dest.iterdir())


def test_damaged_archive_is_a_data_error(tmp_path):
    archive = zip_with(tmp_path, "more.csv")
    data = bytearray(archive.read_bytes())
    data[40:60] = b"\x00" * 20  # inside the first member's compressed bytes
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError, match="comp.zip"):
        safe_extract(archive, tmp_path / "data")


def test_run_folders_hold_no_credentials(tmp_path, titanic_demo):
    secrets = {"KAGGLE_KEY": "kaggle-secret-0123456789abcdef",
               "KAGGLE_API_TOKEN": "KGAT_token_fedcba9876543210",
               "WANDB_API_KEY": "wandb-secret-00112233445566778899"}
    # --wandb: the tracking code that reads WANDB_API_KEY runs too (offline: no network here)
    proc, summary = run_train(tmp_path, titanic_demo, "--set", "model.name=gbdt", "--fits", "1",
                              "--wandb", env={**secrets, "WANDB_MODE": "offline",
                                              "HOME": str(tmp_path), "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    leaked = [str(p) for p in Path(summary["run_dir"]).rglob("*") if p.is_file()
              and any(s.encode() in p.read_bytes() for s in secrets.values())]
    assert not leaked and not any(s in proc.stdout + proc.stderr for s in secrets.values())


# --- ~/.netrc: where `wandb login` keeps its key ------------------------------------------

WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"  # wandb keys: 40 hex characters


@pytest.fixture
def netrc_home(tmp_path, monkeypatch):
    """A HOME of our own whose ~/.netrc holds a wandb key; no other credential anywhere."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("NETRC", "KAGGLE_API_TOKEN", "KAGGLE_KEY", "WANDB_API_KEY",
                 "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    netrc = home / ".netrc"  # the layout `wandb login` writes
    netrc.write_text(f"machine api.wandb.ai\n  login kaggle-user-name\n  password {WANDB_KEY}\n")
    netrc.chmod(0o600)
    return home


def test_a_wandb_key_in_netrc_stops_an_upload_and_is_scrubbed(tmp_path, netrc_home):
    from kit.errors import KaggleError
    from kit.kaggle.client import check_no_secrets, scrub, secret_values

    built = tmp_path / "kernel"
    built.mkdir()
    (built / "kernel-metadata.json").write_text('{"id": "kaggle-user-name/kit-titanic"}')
    check_no_secrets(built)  # a login name is not a secret: the kernel id is no leak
    (built / "notes.txt").write_text(f"WANDB_API_KEY={WANDB_KEY}\n")
    with pytest.raises(KaggleError, match=r"credential values found in .*notes.txt"):
        check_no_secrets(built)
    assert scrub(f"key {WANDB_KEY} end") == "key *** end"
    assert "kaggle-user-name" not in secret_values()


def test_the_netrc_env_var_names_the_file_and_a_malformed_one_is_still_read(tmp_path,
                                                                            netrc_home,
                                                                            monkeypatch):
    from kit.kaggle.client import secret_values

    other = tmp_path / "elsewhere.netrc"
    other.write_text("password lonely-secret-0123 machine\n")  # no machine first: unparsable
    monkeypatch.setenv("NETRC", str(other))
    values = secret_values()
    assert "lonely-secret-0123" in values and WANDB_KEY not in values
