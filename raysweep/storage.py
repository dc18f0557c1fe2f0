"""Where outputs go and how they get there: atomic local writes and pyarrow filesystems for URIs.

Every stage writes through :func:`atomic_file` or :func:`atomic_dir`, so a crash never leaves a
half-written output that looks complete: data is written aside in the same directory, then renamed
into place (``os.replace`` is atomic on one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pyarrow.fs as pafs


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` keeps its previous content. An OSError
    (a full disk, say) is raised again naming ``path``, with its errno kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it owner-only; outputs get the usual permissions
    try:
        yield tmp
        # fsync before the rename: after a power loss the name never points at data that did not reach the disk.
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, f"could not write {path}: {exc.strerror}; its previous content is kept") from exc
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; on success it replaces ``path``.

    A previous ``path`` is moved aside first and deleted only once the new one is in place, so at every
    instant ``path`` is either the old complete output or the new complete output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it owner-only; outputs get the usual permissions
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_uri(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` locations such as ``s3://bucket/key`` (not for local paths)."""
    scheme = urlparse(str(location)).scheme
    return len(scheme) > 1  # a one-letter scheme is a Windows drive letter


def filesystem_and_path(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """Resolve a local path or a pyarrow URI to ``(filesystem, path)``.

    URIs take pyarrow's query options, e.g. ``s3://bucket/run?endpoint_override=127.0.0.1:9000&scheme=http``.
    """
    if is_uri(location):
        return pafs.FileSystem.from_uri(str(location))
    return pafs.LocalFileSystem(), str(Path(location).resolve())


class LockHeld(RuntimeError):
    """Another live process holds the lock."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[dict | None]:
    """Hold an exclusive lock on ``path`` (created if absent) for the ``with`` block; never wait for it.

    The lock is ``flock`` on the file, so the kernel releases it when its holder dies in any way (SIGKILL
    included) and a lock left by a dead process is taken over. While held, the file records the holder's pid,
    host and start time, for the message another process gets; it is emptied on a normal release.

    Yields
    ------
    stale : dict or None
        The record of a holder that died without releasing the lock (its pid, host, since), else None.

    Raises
    ------
    LockHeld
        Naming ``what``, the lock file and its holder, when a live process holds it.
    """
    import fcntl
    import json
    import socket
    import time

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        handle.seek(0)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_record(handle.read())
            held_by = ("a process that is starting" if holder is None else  # locked, its record not written yet
                       f"pid {holder['pid']} on host {holder['host']} since {holder['since']}")
            raise LockHeld(f"{what} is in use by {held_by} (lock file {path}); wait for it to end, or stop it "
                           "first") from None
        stale = _lock_record(handle.read())
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
        handle.flush()
        try:
            yield stale
        finally:
            handle.truncate(0)  # released normally: an empty file; the flock goes with the close


def _lock_record(text: str) -> dict | None:
    import json

    try:
        record = json.loads(text)
        return record if {"pid", "host", "since"} <= set(record) else None
    except (ValueError, TypeError):
        return None
