"""Safe zip extraction: Kaggle archives are unpacked without trusting member names.

A member whose path is absolute, climbs out with '..', or is a symbolic link is refused
before anything is written (zip-slip), so a hostile archive cannot touch files outside
the data folder.

A download is complete or absent: each member is written to a hidden temporary name
beside its final one and renamed when its CRC has checked out, and only after the last
member is `MARKER` written, naming the zip (name, size, mtime). While a zip lies in the
data folder, the folder counts as extracted only if the marker names that zip; a folder
with no zip (hand-placed files, /kaggle/input) needs no marker.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from kit.errors import DataError
from kit.io import write_json

MARKER = ".kit-extracted.json"  # written after the last member: the extraction finished
PARTIAL = ".kit-part"  # in a member's temporary name: '.<name>.kit-part<pid>'


def _check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    name = info.filename
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise DataError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise DataError(f"{archive}: refusing member {name!r}: its path leaves the folder")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DataError(f"{archive}: refusing member {name!r}: symbolic link")


def archive_stamp(archive: str | Path) -> dict:
    """What the marker records of a zip: a new download of it changes size or mtime.

    Not a hash: reading a multi-GB zip on every run to prove it unchanged costs minutes.
    """
    info = os.stat(archive)
    return {"archive": Path(archive).name, "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def read_marker(dest: str | Path) -> dict | None:
    """The marker of the last complete extraction into `dest`, or None."""
    try:
        marker = json.loads((Path(dest) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_extracted(archive: str | Path, dest: str | Path) -> bool:
    """True when `dest` holds a complete extraction of exactly this `archive`."""
    marker = read_marker(dest)
    if marker is None:
        return False
    return {k: marker.get(k) for k in ("archive", "size", "mtime_ns")} == archive_stamp(archive)


def _open(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(
            f"{archive} is not a valid zip file (interrupted download?); delete it and "
            "download again"
        ) from None


def _sweep_partials(dest: Path) -> None:
    """Remove temporary members a killed extraction left behind (their process is gone)."""
    for path in dest.rglob(f".*{PARTIAL}*"):
        pid = path.name.rpartition(PARTIAL)[2]
        if path.is_file() and pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Write one member to a temporary name, then rename: never a half file at `target`."""
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{PARTIAL}{os.getpid()}")
    try:
        # ZipExtFile checks the CRC at the member's end: a cut or damaged member raises
        # before the rename.
        with zf.open(info) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def safe_extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract every member of `archive` under `dest`, then write `MARKER`; refuse the
    archive if any member is unsafe. Returns the members' paths (not the marker)."""
    archive, dest = Path(archive), Path(dest)
    with _open(archive) as zf:
        members = zf.infolist()
        for info in members:  # check all before writing any
            _check_member(info, archive)
        root = dest.resolve()
        targets = [(dest / info.filename).resolve() for info in members]
        for info, target in zip(members, targets):
            if root not in target.parents and target != root:
                raise DataError(f"{archive}: refusing member {info.filename!r}: leaves {dest}")
        dest.mkdir(parents=True, exist_ok=True)
        (dest / MARKER).unlink(missing_ok=True)  # the folder is not complete from here on
        _sweep_partials(dest)
        for info, target in zip(members, targets):
            try:
                _extract_member(zf, info, target)
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise DataError(f"{archive}: member {info.filename!r} is damaged ({exc}); "
                                "delete the archive and download again") from None
    files = [t for t in targets if not t.is_dir()]
    write_json(dest / MARKER, {**archive_stamp(archive),
                               "files": [str(t.relative_to(root)) for t in files]})
    return files
