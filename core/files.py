"""Atomic file writes, a file lock and a bounded JSON read, so that readers and writers in many threads and
processes never collide and no file read is larger than it may be.

A reader never sees half a file: every write fills a temporary name of its own
(process, thread and a random part) and renames it into place. A
read-modify-write of a shared file (a run's status) holds `locked(path)`, an
advisory lock on a file beside it, which excludes other threads and processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the lock below then only excludes this process's threads
    fcntl = None

_PROCESS_LOCK = threading.Lock()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Let `write` fill a temporary name beside `path` unique to this call, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=1)))


def safe_name(text: str, limit: int = 40) -> str:
    """A part of a file name made from a user's text (a dataset's name): ASCII letters, digits, '-', '_' and '.'
    (what a run id may hold, core.store.RUN_ID), the rest as '_', at most `limit` long, never starting with '.',
    '-' or '_' (no hidden files); "data" when nothing is left."""
    kept = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in text)
    return kept[:limit].lstrip("._-") or "data"


def read_json(path: Path, max_bytes: int) -> Any:
    """The JSON in `path`, read only when it is a regular file of at most `max_bytes`, judged on the file opened
    (one swapped in after a look is never read whole; a pipe never blocks). FileNotFoundError when there is none;
    ValueError naming the file and why for one that is not a regular file, too large, unreadable, not JSON or
    nested too deeply."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"{path.name} is not a regular file.")
            chunks, left = [], max_bytes + 1  # all of it up to the limit, and a byte more to tell
            while left > 0 and (chunk := os.read(fd, left)):
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise FileNotFoundError(path) from None
    except OSError as exc:
        raise ValueError(f"{path.name} cannot be read ({exc.strerror or exc}).") from None
    if len(data) > max_bytes:
        limit = f"{max_bytes >> 20} MB" if max_bytes >= 1 << 20 else f"{max_bytes:,} bytes"
        raise ValueError(f"{path.name} is larger than {limit}.")
    return parse_json(data, path.name)


def parse_json(data: bytes, name: str) -> Any:
    """JSON bytes (a file's, a Ray node's copy of one) as Python; ValueError naming `name` for anything else."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply to be read.") from None
    except ValueError as exc:  # not JSON, not UTF-8, a number of more digits than Python converts
        raise ValueError(f"{name} is not valid JSON ({exc}).") from None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock named after `path` (`.<name>.lock` beside it) across threads and processes."""
    lock_path = path.with_name(f".{path.name}.lock")
    if fcntl is None:
        with _PROCESS_LOCK:
            yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
