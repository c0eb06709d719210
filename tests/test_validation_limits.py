"""The rules the server needed and the core lacked: prompt length in the text model's tokens, slice
indices, a batch size maximum; and the wire decoder that checks an upload before allocating it."""

from __future__ import annotations

import io

import numpy as np
import pytest

from napari_vlsm.core import validation
from napari_vlsm.core.errors import PromptError, SettingError


def test_prompt_tokens_refuses_what_the_text_model_would_cut(loaded):
    from napari_vlsm.core.model_input import token_limit

    tok = loaded.tokenizer
    count = lambda p: len(tok(p).input_ids)  # noqa: E731
    limit = token_limit(loaded)
    fits = "a" * (limit - 2)  # the tiny model's tokenizer: one token per character, plus start and end
    assert count(fits) == limit
    assert validation.check_prompt_tokens((fits, "liver"), count, limit) == (fits, "liver")
    with pytest.raises(PromptError, match=f"prompt 2 .* has {limit + 1} tokens; the text model reads at most {limit}"):
        validation.check_prompt_tokens(("liver", fits + "a"), count, limit)
    calls = []
    with pytest.raises(PromptError, match="10000 characters"):  # refused before the tokenizer sees it
        validation.check_prompt_tokens(("x" * 10_000,), lambda p: calls.append(p) or 1, limit)
    assert calls == []


@pytest.mark.parametrize("value, want", [(None, None), (0, 0), (7, 7), ([0, 3], [0, 3]), ((2,), [2]),
                                         (np.int64(4), 4)])
def test_slice_index_accepts(value, want):
    assert validation.check_slice_index(value) == want


@pytest.mark.parametrize("value", [-5, [1, -2], True, 1.5, "3", [None], [[1]]])
def test_slice_index_refuses(value):
    with pytest.raises(SettingError, match="slice index"):
        validation.check_slice_index(value)


def test_batch_size_has_a_documented_maximum():
    assert validation.check_batch_size(validation.MAX_BATCH_SIZE) == validation.MAX_BATCH_SIZE
    for bad in (0, -1, validation.MAX_BATCH_SIZE + 1, 100_000, True, 2.0):
        with pytest.raises(SettingError, match="batch_size"):
            validation.check_batch_size(bad)


# --------------------------------------------------------------------------------- the decoder
def _npy_then(shape, dtype, extra: bytes) -> bytes:
    import zstandard

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                               "shape": shape})
    return zstandard.ZstdCompressor().compress(buf.getvalue() + extra)


def test_the_decoder_reads_the_header_fed_byte_by_byte_and_allocates_exactly_the_array():
    from napari_vlsm.client.wire import ArrayDecoder, encode_array

    array = np.arange(6 * 5 * 3, dtype=np.uint16).reshape(6, 5, 3)
    for fortran in (False, True):
        want = np.asfortranarray(array) if fortran else array
        data = encode_array(want)
        decoder = ArrayDecoder(max_bytes=1000)
        for i in range(len(data)):
            decoder.feed(data[i: i + 1])
        got = decoder.finish()
        assert got.dtype == want.dtype and np.array_equal(got, want) and got.flags.writeable
        assert decoder._data.nbytes == want.nbytes  # the buffer is the declared array, nothing more


def test_a_bomb_stops_at_its_declared_size_and_a_huge_declaration_allocates_nothing():
    from napari_vlsm.client.wire import ArrayDecoder, WireError, decode_array

    bomb = _npy_then((10, 10), "uint8", b"\0" * (64 * 2**20))
    assert len(bomb) < 2**16
    decoder = ArrayDecoder(max_bytes=2**30)
    with pytest.raises(WireError, match="more than the 100 bytes") as info:
        decoder.feed(bomb)
    assert info.value.status == 413 and decoder._data.nbytes == 100
    huge = ArrayDecoder(max_bytes=2**20)
    with pytest.raises(WireError, match="limit") as info:
        huge.feed(_npy_then((100000, 100000), "float32", b""))
    assert info.value.status == 413 and huge._data is None
    with pytest.raises(WireError, match="cut off"):
        decode_array(_npy_then((10, 10), "uint8", b"\0" * 50))
