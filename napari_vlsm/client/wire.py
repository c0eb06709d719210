"""Arrays on the wire: ``.npy`` bytes compressed with zstd (numpy + zstandard only, no pickle).

Both sides use this module, so the server can check an upload's header (dtype, shape, size) BEFORE
it allocates the array (:class:`ArrayDecoder`, streamed): a negative or huge shape, an object dtype, a
zstd bomb or a truncated body is a clear :class:`WireError` (the server answers 413 or 422), never a
crash or a pickle load.
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


HEADER_MAX = 65536  # a .npy header is a few hundred bytes; numpy itself refuses over 10,000
# Compressed bytes per feed: 64 KiB pieces (as uvicorn delivers a body) were faster than 1 MiB ones
# here (zstd's output stays in cache; docs/server.md, Security).
FEED_BYTES = 1 << 16


class ArrayDecoder:
    """Decode one upload as its bytes arrive: the ``.npy`` header is parsed from the first
    decompressed bytes and checked (dtype, dimensions, sides, size) BEFORE anything is allocated;
    then the data streams into a buffer of exactly the declared size and one byte more is refused.
    A zstd bomb therefore costs at most the array its header declares, within ``max_bytes``.

    ``feed(chunk)`` for each compressed piece, then ``finish()`` -> the array.
    """

    def __init__(self, max_bytes: int = 2**31, max_dims: int = 4, max_side: int = 1 << 16):
        import zstandard

        self.max_bytes, self.max_dims, self.max_side = max_bytes, max_dims, max_side
        self._head = bytearray()  # decompressed bytes until the header is complete
        self._data = None  # the array's bytes (np.empty of the declared size), once the header is read
        self._filled = 0
        self._shape = self._dtype = self._fortran = None
        self._writer = zstandard.ZstdDecompressor().stream_writer(self, write_size=1 << 17)

    # zstandard calls write() with each decompressed piece (at most write_size bytes)
    def write(self, data) -> int:
        if self._data is None:
            self._head += data
            if not self._parse_header():
                if len(self._head) > HEADER_MAX:
                    raise WireError("the upload does not start with a .npy header")
                return len(data)
            data, self._head = bytes(self._head[self._header_len:]), bytearray()
        end = self._filled + len(data)
        if end > self._data.size:
            raise WireError(f"the upload holds more than the {self._data.size} bytes its header declares "
                            f"(shape {self._shape} of {self._dtype})", status=413)
        self._data[self._filled:end] = np.frombuffer(data, np.uint8)
        self._filled = end
        return len(data)

    def _parse_header(self) -> bool:
        buf = io.BytesIO(bytes(self._head))
        try:
            version = np.lib.format.read_magic(buf)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(buf)  # numpy's own parser: a literal dict, never eval'd code
        except (ValueError, SyntaxError, TypeError, OverflowError) as err:
            if _incomplete_header(self._head):
                return False  # wait for more bytes
            raise WireError(f"the upload is not a .npy array ({err})", status=422) from None
        nbytes = check_header(shape, dtype, self.max_bytes, self.max_dims, self.max_side)
        self._shape, self._fortran, self._dtype, self._header_len = shape, fortran, dtype, buf.tell()
        self._data = np.empty(nbytes, np.uint8)  # exactly the declared array, checked above
        return True

    def feed(self, chunk: bytes) -> None:
        import zstandard

        try:
            self._writer.write(chunk)
        except zstandard.ZstdError as err:
            raise WireError(f"the upload is not a complete zstd-compressed .npy array ({err}); "
                            "it may have been cut off", status=422) from None

    def finish(self) -> np.ndarray:
        import zstandard

        try:
            self._writer.flush()
        except zstandard.ZstdError as err:
            raise WireError(f"the upload is not a complete zstd-compressed .npy array ({err})", status=422) from None
        if self._data is None:
            raise WireError("the upload is not a complete .npy array; it may have been cut off", status=422)
        if self._filled != self._data.size:
            raise WireError(f"the array data is {self._filled} bytes but shape {self._shape} of {self._dtype} "
                            f"needs {self._data.size}; the upload was cut off or damaged")
        array = self._data.view(self._dtype)
        return array.reshape(self._shape, order="F" if self._fortran else "C")


def _incomplete_header(head: bytes) -> bool:
    """True while ``head`` may still grow into a valid header (magic, length, then the dict)."""
    magic = b"\x93NUMPY"
    if len(head) < len(magic) + 2:
        return magic.startswith(bytes(head[: len(magic)]))
    if not head.startswith(magic):
        return False
    major = head[6]
    size_len = 2 if major == 1 else 4
    if len(head) < 8 + size_len:
        return True
    header_len = int.from_bytes(head[8: 8 + size_len], "little")
    return len(head) < 8 + size_len + header_len and header_len <= HEADER_MAX


def check_header(shape, dtype, max_bytes: int, max_dims: int, max_side: int) -> int:
    """The rules for an upload's declared array; -> its size in bytes."""
    if dtype.hasobject or dtype.name not in ALLOWED_DTYPES:
        raise WireError(f"dtype {dtype} is not accepted; send one of {', '.join(sorted(ALLOWED_DTYPES))}")
    if any(not isinstance(s, int) or s < 0 for s in shape):
        raise WireError(f"shape {shape} has a negative or non-integer size")
    if not 2 <= len(shape) <= max_dims:
        raise WireError(f"shape {shape} has {len(shape)} dimensions; send 2 to {max_dims}")
    if any(s > max_side for s in shape):
        raise WireError(f"shape {shape} has a side over the server's limit of {max_side}", status=413)
    nbytes = dtype.itemsize
    for s in shape:  # Python ints: no overflow on a huge declared shape
        nbytes *= s
    if nbytes > max_bytes:
        raise WireError(f"shape {shape} of {dtype} is over the server's limit of {max_bytes // 2**20} MiB",
                        status=413)
    return nbytes


def decode_array(data: bytes, max_bytes: int = 2**31, max_dims: int = 4, max_side: int = 1 << 16) -> np.ndarray:
    """Bytes from :func:`encode_array` -> a writable numpy array, checked before allocation."""
    decoder = ArrayDecoder(max_bytes, max_dims, max_side)
    data = bytes(data)
    for pos in range(0, len(data), FEED_BYTES):
        decoder.feed(data[pos: pos + FEED_BYTES])
    return decoder.finish()
