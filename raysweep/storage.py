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
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it owner-only; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
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
