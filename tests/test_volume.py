"""Stacks: axis rules, one window per volume, lazy arrays read slice by slice, predict_stack == predict."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core import volume
from napari_vlsm.core.engine import Segmenter
from napari_vlsm.core.errors import ImageError, SettingError
from napari_vlsm.core.preprocess import intensity_window
from napari_vlsm.core.volume import StackPlanes, guess_rgb, volume_window


class CountingArray:
    """A zarr-like lazy array: .shape, .dtype, __getitem__; records how many values were read."""

    def __init__(self, data):
        self._data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.values_read, self.keys = 0, []

    def __getitem__(self, key):
        out = np.array(self._data[key])
        self.values_read += out.size
        self.keys.append(key)
        return out


@pytest.fixture(scope="module")
def seg(loaded):
    return Segmenter(loaded=loaded)


@pytest.fixture(scope="module")
def ct():
    rng = np.random.default_rng(0)
    stack = rng.normal(40, 30, (5, 37, 29)).astype(np.int16)
    stack[:, :4] = -1024  # air
    stack[2, 10:20, 10:20] = 900  # bone on one slice only
    return stack


@pytest.mark.parametrize("shape, rgb, expected", [
    ((64, 64), None, False), ((64, 64, 3), None, True), ((64, 64, 4), None, True),
    ((10, 64, 64), None, False), ((10, 64, 64, 3), None, True), ((2, 10, 64, 64), None, False),
    ((10, 64, 3), False, False),
])
def test_guess_rgb_follows_napari(shape, rgb, expected):
    assert guess_rgb(shape, rgb) is expected


def test_rgb_flag_on_a_shape_without_colours_is_an_error():
    with pytest.raises(ImageError, match="rgb=True"):
        guess_rgb((10, 64, 64), True)


def test_stack_layouts():
    grey = StackPlanes.of(np.zeros((5, 8, 9)))
    assert grey.count == 5 and grey.indices() == [0, 1, 2, 3, 4] and grey.plane_shape == (8, 9)
    colour = StackPlanes.of(np.zeros((4, 8, 9, 3)))
    assert colour.rgb and colour.count == 4 and colour.read(1).shape == (8, 9, 3)
    movie = StackPlanes.of(np.zeros((2, 3, 8, 9)))
    assert movie.indices()[:2] == [(0, 0), (0, 1)] and movie.count == 6 and movie.read((1, 2)).shape == (8, 9)
    sideways = StackPlanes.of(np.zeros((5, 8, 9)), axis=1)
    assert sideways.count == 8 and sideways.read(3).shape == (5, 9) and sideways.plane_shape == (5, 9)
    assert grey.check_index(-1) == 4
    with pytest.raises(ImageError, match="out of range"):
        grey.check_index(5)
    with pytest.raises(ImageError, match="2D image"):
        StackPlanes.of(np.zeros((8, 9, 3)))  # one RGB image: use predict()
    with pytest.raises(ImageError, match="axis"):
        StackPlanes.of(np.zeros((5, 8, 9)), axis=3)


def test_volume_window_is_shared_and_exact_in_memory(ct):
    assert volume_window(ct) == intensity_window(ct)
    assert volume_window(np.zeros((3, 4, 4), np.uint8)) == (0.0, 255.0)
    assert volume_window(np.zeros((3, 4, 4), bool)) == (0.0, 1.0)
    with pytest.raises(ImageError):
        volume_window(np.zeros((0, 4, 4), np.int16))


def test_volume_window_of_a_lazy_volume_reads_a_sample_only():
    rng = np.random.default_rng(1)
    data = rng.normal(0, 100, (40, 200, 200)).astype(np.float32)
    lazy = CountingArray(data)
    lo, hi = volume_window(lazy, max_values=100_000, max_slices=20)
    exact_lo, exact_hi = intensity_window(data)
    assert lazy.values_read <= 100_000 < data.size
    assert abs(lo - exact_lo) < 0.05 * (exact_hi - exact_lo) and abs(hi - exact_hi) < 0.05 * (exact_hi - exact_lo)


def test_memmap_counts_as_lazy(tmp_path):
    data = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.int16, shape=(4, 30, 30))
    data[:] = np.arange(30, dtype=np.int16)
    assert volume.is_lazy(data) and not volume.is_lazy(np.asarray(data))
    lo, hi = volume_window(data, max_values=1000)
    assert 0 <= lo < hi <= 29


def test_predict_stack_equals_per_slice_predict_with_the_volume_window(seg, ct):
    window = volume_window(ct)
    got = list(seg.predict_stack(ct, ["liver", "bone"], batch_size=2))
    assert [i for i, _ in got] == list(range(5))
    for index, preds in got:
        ref = seg.predict(ct[index], ["liver", "bone"], window=window)
        for p, r in zip(preds, ref):
            assert p.prompt == r.prompt and p.probability.shape == (37, 29)
            np.testing.assert_allclose(p.probability, r.probability, atol=1e-4)


def test_lazy_dask_stack_reads_batch_by_batch_and_matches(seg, ct):
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(ct, chunks=(1, 37, 29))
    eager = {i: p[0].probability for i, p in seg.predict_stack(ct, "liver")}
    lazy_results = {i: p[0].probability for i, p in seg.predict_stack(lazy, "liver", batch_size=3)}
    assert eager.keys() == lazy_results.keys()
    for i in eager:
        np.testing.assert_allclose(lazy_results[i], eager[i], atol=1e-4)
    counting = CountingArray(ct)
    stream = seg.predict_stack(counting, "liver", batch_size=2, window=(-200.0, 300.0))
    next(stream)  # one batch of two slices, nothing more
    assert counting.values_read == 2 * 37 * 29
    stream.close()  # cancel: stop iterating


def test_predict_stack_options(seg, ct):
    some = list(seg.predict_stack(ct, "liver", indices=[4, -5]))
    assert [i for i, _ in some] == [4, 0]
    per_slice = dict(seg.predict_stack(ct, "liver", window="slice"))
    np.testing.assert_allclose(per_slice[2][0].probability, seg.predict(ct[2], "liver")[0].probability, atol=1e-4)
    sideways = list(seg.predict_stack(ct, "liver", axis=2))
    assert len(sideways) == 29 and sideways[0][1][0].shape == (5, 37)
    rgb = np.random.default_rng(2).integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    coloured = list(seg.predict_stack(rgb, ["a", "b"]))
    assert len(coloured) == 3 and coloured[1][1][1].shape == (20, 24)
    np.testing.assert_allclose(coloured[1][1][0].probability, seg.predict(rgb[1], "a")[0].probability, atol=1e-4)
    movie = list(seg.predict_stack(np.zeros((2, 2, 10, 12), np.float32), "x"))
    assert [i for i, _ in movie] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    with pytest.raises(SettingError):
        seg.predict_stack(ct, "liver", batch_size=0)
    with pytest.raises(ImageError, match="2D image"):
        seg.predict_stack(ct[0], "liver")


def test_neighbouring_slices_get_the_same_normalisation(seg, ct):
    """Slice 2 has bone: with per-slice windows its soft tissue would be scaled differently."""
    shared = volume_window(ct)
    assert intensity_window(ct[1]) != intensity_window(ct[2])  # per-slice windows would differ
    default = dict(seg.predict_stack(ct, "liver"))
    for i in (1, 2):
        np.testing.assert_allclose(default[i][0].probability,
                                   seg.predict(ct[i], "liver", window=shared)[0].probability, atol=1e-4)


def test_volumes_from_shared_data(seg, shared_data):
    import tifffile

    ct = tifffile.imread(shared_data / "volumes" / "ct_abdomen.tif")
    window = volume_window(ct)
    assert window[0] < 0 < window[1]  # Hounsfield units: air below zero, tissue above
    results = list(seg.predict_stack(ct, "liver", indices=[0, 15, 29]))
    assert [r[1][0].shape for r in results] == [ct.shape[1:]] * 3
