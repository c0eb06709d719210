"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The one implementation for adapters, their metadata, masks written by the CLI and the correction
store. Every file is created with mode ``0o666`` and the process umask applied, as ``open()``
would create it (0644 under the usual umask 022, 0600 under 077): a temporary file from
``tempfile.mkstemp`` would keep 0600 after the rename, and a teammate could not read the adapter.
``mode=`` (e.g. 0o600 for the server's private files) sets the mode exactly, whatever the umask.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o666  # before the umask, as open() and every ordinary program create files


def fsync_dir(folder: Path) -> None:
    """Make a rename or creation inside ``folder`` durable (not possible on Windows: harmless there)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF):  # a real I/O error must not pass silently
            raise
    finally:
        os.close(fd)


def _create(path: Path, mode: int | None = None) -> int:
    """Create ``path``, which must not exist, with the umask's permissions (or exactly ``mode``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 FILE_MODE if mode is None else mode)
    if mode is not None and hasattr(os, "fchmod"):
        os.fchmod(fd, mode)  # the umask may have removed bits that were asked for
    return fd


def write_durable(path: Path, data: bytes, mode: int | None = None) -> None:
    """Create ``path`` (must not exist), write ``data``, fsync."""
    fd = _create(path, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")


def _commit(tmp: Path, target: Path) -> None:
    os.replace(tmp, target)
    fsync_dir(target.parent)


@contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a new empty file's path beside ``target`` for a writer that wants a path (safetensors,
    tifffile); on success fsync it and rename it over ``target``; on failure remove it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(target)
    fd = _create(tmp)
    umask_mode = stat.S_IMODE(os.fstat(fd).st_mode)  # what the umask made of FILE_MODE
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            if stat.S_IMODE(os.fstat(fh.fileno()).st_mode) != umask_mode:
                os.chmod(tmp, umask_mode)  # the writer replaced the file (safetensors creates 0600)
            os.fsync(fh.fileno())
        _commit(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes,
                       write: Callable[[Path, bytes], None] | None = None, mode: int | None = None) -> None:
    """Replace ``target`` by ``data`` atomically: temp file + fsync + os.replace + fsync of the folder.

    ``write`` (default :func:`write_durable`) creates and fills the temp file: the store passes its
    own, the single point where its bytes hit the disk. ``mode``: exact permissions (default: the umask's).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(target)
    try:
        if write is not None:
            write(tmp, data)
        else:
            write_durable(tmp, data, mode)
        _commit(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
