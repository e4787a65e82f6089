"""Zip files a user gives: every member checked before it is read, so a bad archive is a refusal, never a traceback.

Zips come from three operating systems and many tools: backslashes for folders
(Windows), `__MACOSX/` and `._name` companions (macOS), encryption, compression
methods Python cannot read (Deflate64), damaged data. Each door that takes a zip
(the Data page's image folders, the Runs page's checkpoints) reads it through
these functions and names its own error type, so the user sees that door's
message naming the archive and the member.
"""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from pathlib import Path, PurePosixPath

READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                    zipfile.ZIP_LZMA: "lzma"}
MAX_NAME_BYTES = 255  # one file or folder name, as Linux and macOS allow
MAX_PATH_BYTES = 1024
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, RuntimeError, NotImplementedError,
                ValueError)


def open_zip(data: bytes, name: str, refuse: type[ValueError]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise refuse(f"{name}: not a readable zip file ({exc}).") from None


def member_path(member: zipfile.ZipInfo) -> PurePosixPath:
    """The member's path with '/' between folders, whichever system made the zip."""
    return PurePosixPath(member.filename.replace("\\", "/"))


def is_hidden(path: PurePosixPath) -> bool:
    """macOS's __MACOSX/ and ._ companions, .DS_Store, .git, .ipynb_checkpoints: never data."""
    return any((part.startswith(".") and part != "..") or part == "__MACOSX" for part in path.parts)


def checked_members(archive: zipfile.ZipFile, name: str, refuse: type[ValueError], max_files: int,
                    max_bytes: int) -> list[zipfile.ZipInfo]:
    """The archive's visible files, refused whole if any could not be read or unpacked safely.

    Sizes are the archive's own claims, which reading enforces: zipfile never returns more
    than a member's declared size, and a member whose data disagrees fails its check.
    """
    files = [m for m in archive.infolist() if not m.is_dir() and not is_hidden(member_path(m))]
    if len(files) > max_files:
        raise refuse(f"{name}: {len(files):,} files, more than the {max_files:,} allowed.")
    total = sum(m.file_size for m in files)
    if total > max_bytes:
        raise refuse(f"{name}: {total / 2**20:,.0f} MB unpacked, more than the {max_bytes >> 20:,} MB allowed.")
    seen: set[PurePosixPath] = set()
    for member in files:
        path = check_member(member, name, refuse)
        if path in seen:
            raise refuse(f"{name}: {member.filename} is in the archive twice.")
        seen.add(path)
    folders = {parent for path in seen for parent in path.parents}
    clash = next((path for path in seen if path in folders), None)
    if clash is not None:
        raise refuse(f"{name}: {clash} is both a file and a folder.")
    return files


def check_member(member: zipfile.ZipInfo, name: str, refuse: type[ValueError], max_bytes: int | None = None) -> PurePosixPath:
    """The member's path, if it can be read and unpacked here: not encrypted, a method Python reads, a safe name."""
    path = member_path(member)
    if member.flag_bits & 0x1:
        raise refuse(f"{name}: {member.filename} is encrypted; zip it again without a password.")
    if member.compress_type not in READABLE_METHODS:
        raise refuse(f"{name}: {member.filename} is compressed with method {member.compress_type}, which cannot "
                     f"be read here; zip it again with {', '.join(READABLE_METHODS.values())} (plain zip uses deflate).")
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise refuse(f"{name}: {member.filename!r} points outside the archive.")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in path.parts) or len(str(path).encode()) > MAX_PATH_BYTES:
        raise refuse(f"{name}: {member.filename[:60]!r}... is too long a name (at most {MAX_NAME_BYTES} bytes "
                     f"a file or folder, {MAX_PATH_BYTES} in all).")
    if max_bytes is not None and member.file_size > max_bytes:
        raise refuse(f"{name}: {member.filename} unpacks to {member.file_size / 2**20:,.1f} MB, more than the "
                     f"{max_bytes / 2**20:,.1f} MB it may have.")
    return path


def read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, refuse: type[ValueError]) -> bytes:
    """A checked member's bytes; damaged data (a bad CRC, a truncated stream) is a refusal naming the member."""
    try:
        return archive.read(member)
    except _READ_ERRORS as exc:
        raise refuse(f"{name}: {member.filename} is damaged and cannot be unpacked ({exc}).") from None


def extract(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path, name: str,
            refuse: type[ValueError]) -> None:
    """Write checked members under `dest`, folders as the archive names them."""
    for member in members:
        target = dest.joinpath(*member_path(member).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read_member(archive, member, name, refuse))
