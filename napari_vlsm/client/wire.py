"""Arrays on the wire: ``.npy`` bytes compressed with zstd (numpy + zstandard only, no pickle).

Both sides use this module, so the server can check an upload's header (dtype, shape, size) BEFORE
it allocates the array: a negative or huge shape, an object dtype, a zstd bomb or a truncated body
is a clear :class:`WireError` (the server answers 413 or 422), never a crash or a pickle load.
"""

from __future__ import annotations

import io

import numpy as np

MEDIA_TYPE = "application/x-npy+zstd"
# Pixel and mask dtypes the engine reads; anything else (object, void, complex, strings) is refused.
ALLOWED_DTYPES = frozenset(["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64"])
ZSTD_LEVEL = 3  # ~300 MB/s on one core: the wire, not the compressor, should be the limit


class WireError(ValueError):
    """A payload that cannot be decoded; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def encode_array(array, level: int = ZSTD_LEVEL) -> bytes:
    import zstandard

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return zstandard.ZstdCompressor(level=level).compress(buf.getvalue())


def _decompress(data: bytes, max_bytes: int) -> bytes:
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        raw = reader.read(max_bytes + 1)  # bounded: a small frame that inflates to terabytes stops here
        if len(raw) > max_bytes:
            raise WireError(f"the array is larger than the server's limit of {max_bytes // 2**20} MiB "
                            "uncompressed; send a smaller image or fewer slices", status=413)
        # the stream must end here; a cut frame raises or stops short
        if reader.read(1):
            raise WireError("the upload holds more than one array", status=422)
    except zstandard.ZstdError as err:
        raise WireError(f"the upload is not a complete zstd-compressed .npy array ({err}); "
                        "it may have been cut off", status=422) from None
    return raw


def decode_array(data: bytes, max_bytes: int = 2**31, max_dims: int = 4, max_side: int = 1 << 16) -> np.ndarray:
    """Bytes from :func:`encode_array` -> a writable numpy array, checked before allocation."""
    raw = _decompress(data, max_bytes)
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(buf)  # numpy's own parser: a literal dict, never eval'd code
    except (ValueError, SyntaxError, TypeError, OverflowError) as err:
        raise WireError(f"the upload is not a complete .npy array ({err}); it may have been cut off",
                        status=422) from None
    if dtype.hasobject or dtype.name not in ALLOWED_DTYPES:
        raise WireError(f"dtype {dtype} is not accepted; send one of {', '.join(sorted(ALLOWED_DTYPES))}")
    if any(not isinstance(s, int) or s < 0 for s in shape):
        raise WireError(f"shape {shape} has a negative or non-integer size")
    if not 2 <= len(shape) <= max_dims:
        raise WireError(f"shape {shape} has {len(shape)} dimensions; send 2 to {max_dims}")
    if any(s > max_side for s in shape):
        raise WireError(f"shape {shape} has a side over the server's limit of {max_side}", status=413)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize > max_bytes:
        raise WireError(f"shape {shape} of {dtype} is over the server's limit of {max_bytes // 2**20} MiB",
                        status=413)
    body = raw[buf.tell():]
    if len(body) != count * dtype.itemsize:
        raise WireError(f"the array data is {len(body)} bytes but shape {shape} of {dtype} needs "
                        f"{count * dtype.itemsize}; the upload was cut off or damaged")
    array = np.frombuffer(body, dtype=dtype).copy()
    return array.reshape(shape, order="F" if fortran else "C")
