"""The store's bytes on disk: durable and atomic writes, lossless image and mask encodings, the
inter-process lock, and what to tell the user when the disk says no."""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import atomic
from .records import Damaged


def write_durable(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist), write ``data``, fsync (``atomic.write_durable``). The single
    point where the store's bytes hit the disk, so tests can simulate a full disk here."""
    atomic.write_durable(path, data)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (``atomic.write_bytes_atomic``), writing through :func:`write_durable`."""
    atomic.write_bytes_atomic(path, data, write=write_durable)


def encode_tif(image: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    photometric = "rgb" if image.ndim == 3 else "minisblack"
    # zlib (deflate) is lossless and built into tifffile (no imagecodecs needed).
    tifffile.imwrite(buf, image, photometric=photometric, compression="zlib")
    return buf.getvalue()


def encode_png(mask: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", mask.astype(np.uint8) * np.uint8(255), extension=".png")


def read_png_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    import imageio.v3 as iio

    arr = np.asarray(iio.imread(path, extension=".png"))
    if arr.dtype != np.uint8 or arr.shape != shape:
        raise Damaged(f"{path.name} is {arr.dtype} {arr.shape}, expected uint8 {shape}")
    if not np.isin(arr, (0, 255)).all():
        raise Damaged(f"{path.name} holds values other than 0 and 255")
    return arr == 255


def os_error_message(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full; free some space"
    if err.errno == errno.EDQUOT:
        return "the disk quota is exceeded; free some space"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable; fix its permissions or choose another store folder"
    return "check the folder, or choose another store folder"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (blocking). flock locks belong to the open file,
    so two threads or two processes each opening the file exclude each other."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, atomic.FILE_MODE)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            import msvcrt

            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
