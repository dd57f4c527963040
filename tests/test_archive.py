"""A download is complete or absent (kit.data.archive, and the demo writers).

An extraction writes each member under a temporary name and renames it, then a marker
naming the zip; while a zip lies in a data folder, only that marker says the files are
whole. Interruptions are real here: a member whose CRC fails, a SIGKILLed process, a
write limit (RLIMIT_FSIZE) that stops a demo part-way.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

from kit.config import load_config
from kit.data import archive
from kit.data.folder import resolve_data_dir
from kit.errors import DataError

LINE = "1,0,3,\"Braund, Mr. Owen Harris\",male,22,1,0,A/5 21171,7.25,,S\n"
HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
TRAIN = HEADER + LINE * 400


def make_zip(path: Path, members: dict[str, str], *, stored: bool = False) -> Path:
    kind = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", kind) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def damage(path: Path, needle: bytes) -> None:
    """Flip one byte inside a stored member: its CRC fails only when it is read to the end."""
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def visible_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def hidden_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*") if p.name != archive.MARKER]


def titanic_cfg():
    return load_config(ROOT / "competitions" / "titanic" / "config.toml")


# --- one extraction ----------------------------------------------------------------------


def test_a_member_whose_crc_fails_leaves_no_file_under_its_name_and_no_marker(tmp_path):
    dest = tmp_path / "data"
    zpath = make_zip(tmp_path / "titanic.zip",
                     {"test.csv": "PassengerId\n1\n", "train.csv": TRAIN + "9,damaged here\n"},
                     stored=True)
    damage(zpath, b"damaged here")
    with pytest.raises(DataError, match=r"titanic.zip: member 'train.csv' is damaged"):
        archive.safe_extract(zpath, dest)
    assert not (dest / "train.csv").exists()  # the whole member was written, then refused
    assert visible_files(dest) == {"test.csv": b"PassengerId\n1\n"}
    assert not (dest / archive.MARKER).exists() and hidden_files(dest) == []


def test_the_marker_names_the_zip_and_its_files(tmp_path):
    dest = tmp_path / "data"
    zpath = make_zip(tmp_path / "titanic.zip", {"train.csv": TRAIN, "img/a.png": "x"})
    files = archive.safe_extract(zpath, dest)
    marker = json.loads((dest / archive.MARKER).read_text())
    assert marker["archive"] == "titanic.zip" and marker["size"] == zpath.stat().st_size
    assert sorted(marker["files"]) == ["img/a.png", "train.csv"] and len(files) == 2
    assert archive.is_extracted(zpath, dest)
    make_zip(zpath, {"train.csv": TRAIN + LINE})  # downloaded again: another zip
    assert not archive.is_extracted(zpath, dest)


KILLED_EXTRACTION = """
import sys
sys.path.insert(0, {root!r})
from kit.data.archive import safe_extract
safe_extract({zip!r}, {dest!r})
"""


def test_a_killed_extraction_leaves_only_whole_files_and_the_next_one_finishes(tmp_path):
    big = HEADER + LINE * 400_000  # ~27 MB: it takes the extraction a while to write
    members = {"a.csv": HEADER + LINE, "big.csv": big}
    zpath = make_zip(tmp_path / "titanic.zip", members)
    dest = tmp_path / "data"
    code = KILLED_EXTRACTION.format(root=str(ROOT), zip=str(zpath), dest=str(dest))
    proc = subprocess.Popen([sys.executable, "-c", code])
    _kill_once_writing(proc, dest, "big.csv")
    for name, data in visible_files(dest).items():  # whatever has its name is whole
        assert data == members[name].encode(), f"{name} is a half file"
    assert not (dest / archive.MARKER).exists()
    archive.safe_extract(zpath, dest)
    assert visible_files(dest) == {k: v.encode() for k, v in members.items()}
    assert hidden_files(dest) == []  # the killed process's partial member is swept


def _kill_once_writing(proc: subprocess.Popen, dest: Path, name: str) -> None:
    """SIGKILL `proc` as soon as a file named after `name` (final or temporary) has bytes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > 0 for p in dest.glob(f"*{name}*") if p.is_file()):
            break
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the extraction finished before the kill"


# --- which folders count as extracted ----------------------------------------------------


def cut_short(path: Path, lines: int) -> None:
    """What an interrupted `unzip` leaves: the file cut at a line boundary."""
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:lines]))


def test_a_cut_short_train_csv_beside_its_zip_is_extracted_again(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_zip(data / "titanic.zip", {"train.csv": TRAIN})
    (data / "train.csv").write_text(TRAIN)
    cut_short(data / "train.csv", 50)
    assert resolve_data_dir(titanic_cfg(), data, False) == data
    assert (data / "train.csv").read_text() == TRAIN
    assert archive.is_extracted(data / "titanic.zip", data)


def test_an_interrupted_extraction_is_redone_by_the_next_run(tmp_path):
    data = tmp_path / "data"
    zpath = make_zip(tmp_path / "damaged.zip", {"train.csv": TRAIN + "9,damaged here\n"},
                     stored=True)
    damage(zpath, b"damaged here")
    data.mkdir()
    zpath.rename(data / "titanic.zip")
    with pytest.raises(DataError, match="is damaged"):
        resolve_data_dir(titanic_cfg(), data, False)
    assert not (data / "train.csv").exists()
    make_zip(data / "titanic.zip", {"train.csv": TRAIN})  # downloaded again
    resolve_data_dir(titanic_cfg(), data, False)
    assert (data / "train.csv").read_text() == TRAIN


def test_a_folder_extracted_from_this_zip_is_not_extracted_again(tmp_path):
    data = tmp_path / "data"
    zpath = make_zip(tmp_path / "titanic.zip", {"train.csv": TRAIN})
    data.mkdir()
    zpath = zpath.rename(data / "titanic.zip")
    resolve_data_dir(titanic_cfg(), data, False)
    (data / "train.csv").write_text(TRAIN + LINE)  # edited after a complete extraction
    resolve_data_dir(titanic_cfg(), data, False)
    assert (data / "train.csv").read_text() == TRAIN + LINE


def test_hand_placed_data_needs_no_zip_and_no_marker(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text(TRAIN)
    assert resolve_data_dir(titanic_cfg(), data, False) == data
    assert sorted(p.name for p in data.iterdir()) == ["train.csv"]


def test_download_extracts_a_zip_whose_unzip_was_cut_short(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_zip(data / "titanic.zip", {"train.csv": TRAIN})
    (data / "train.csv").write_text(TRAIN)
    cut_short(data / "train.csv", 50)
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    (tmp_path / "kaggle").write_text("#!/bin/sh\necho 'kaggle must not be called'; exit 1\n")
    (tmp_path / "kaggle").chmod(0o755)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "download.py"), "--comp",
                           "titanic", "--data", str(data)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "extracted 1 files" in done.stdout
    assert (data / "train.csv").read_text() == TRAIN and not (data / "titanic.zip").exists()


# --- the demo writers --------------------------------------------------------------------

DEMOS = {"titanic": {}, "house-prices-advanced-regression-techniques": {},
         "digit-recognizer": {"n_test": 50}, "mask": {"n_people": 2, "n_eval_people": 1}}
LIMITED_DEMO = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {root!r})
    from kit.hooks import load_hook
    make_demo = load_hook({comp!r}, "demo", "make_demo")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
    make_demo({dest!r}, **{kwargs!r})
""")


@pytest.mark.parametrize("comp", sorted(DEMOS))
def test_a_demo_stopped_part_way_leaves_no_half_file(tmp_path, comp):
    from kit.hooks import load_hook

    data = tmp_path / "data"
    load_hook(ROOT / "competitions" / comp, "demo", "make_demo")(data, **DEMOS[comp])
    whole = visible_files(data)
    # Written again over the good files (seeded: the same bytes), stopped at the first file
    # larger than 2000 bytes: the earlier good file stays, never a half one.
    code = LIMITED_DEMO.format(root=str(ROOT), comp=str(ROOT / "competitions" / comp),
                               dest=str(data), kwargs=DEMOS[comp])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    found = visible_files(data)
    assert [name for name in whole if found.get(name) != whole[name]] == []  # no half file
    assert found.keys() == whole.keys() and hidden_files(data) == []
    assert done.returncode != 0, "the demo hid its failed writes"
    assert "File too large" in done.stderr, done.stderr[-2000:]  # the limit, not another error
