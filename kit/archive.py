"""Safe zip extraction: Kaggle archives are unpacked without trusting member names.

A member whose path is absolute, climbs out with '..', or is a symbolic link is refused
before anything is written (zip-slip), so a hostile archive cannot touch files outside
the data folder.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from kit.errors import DataError


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


def safe_extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract every member of `archive` under `dest`; refuse the archive if any is unsafe."""
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(
            f"{archive} is not a valid zip file (interrupted download?); delete it and "
            "download again"
        ) from None
    with zf:
        members = zf.infolist()
        for info in members:  # check all before writing any
            _check_member(info, archive)
        root = dest.resolve()
        written = []
        for info in members:
            target = (dest / info.filename).resolve()
            if root not in target.parents and target != root:
                raise DataError(f"{archive}: refusing member {info.filename!r}: leaves {dest}")
            try:
                zf.extract(info, dest)
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise DataError(f"{archive}: member {info.filename!r} is damaged ({exc}); "
                                "delete the archive and download again") from None
            written.append(target)
    return written
