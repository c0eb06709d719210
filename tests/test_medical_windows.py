"""Window presets: CT in HU, percentile windows, the automatic default, parsing and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core.errors import ImageError
from napari_vlsm.core.medical.windows import PRESETS, parse_window, resolve_window
from napari_vlsm.core.preprocess import intensity_window


@pytest.fixture(scope="module")
def ct():
    rng = np.random.default_rng(0)
    return rng.normal(0, 400, size=(12, 40, 40)).clip(-1024, 3000).astype(np.int16)


@pytest.mark.parametrize("name, expected", [("soft-tissue", (-160, 240)), ("lung", (-1350, 150)),
                                            ("bone", (-500, 1300)), ("brain", (0, 80))])
def test_ct_presets_in_hounsfield_units(ct, name, expected):
    assert resolve_window(name, ct, "CT") == expected
    assert resolve_window(name, ct, "") == expected  # the file does not say: the user knows best


def test_auto_is_the_whole_volume_percentile_window(ct):
    assert resolve_window("auto", ct) == pytest.approx(intensity_window(ct))
    assert resolve_window(None, ct) == resolve_window("auto", ct)


def test_percentile_windows_read_the_whole_volume(ct):
    lo, hi = resolve_window("p1-99", ct, "MR")
    assert (lo, hi) == pytest.approx(intensity_window(ct, (1, 99)))
    assert resolve_window("p5-95", ct)[1] < hi < resolve_window("p0.5-99.5", ct)[1]


def test_numbers_and_bad_values(ct):
    assert resolve_window("-100, 300", ct) == (-100.0, 300.0)
    assert parse_window(" Lung ") == "lung"
    for bad in ("mediastinum", "300,-100", "a,b", "1,2,3"):
        with pytest.raises(ImageError) as err:
            parse_window(bad)
        assert "auto" in str(err.value) and "\n" not in str(err.value)
    assert set(PRESETS) >= {"auto", "soft-tissue", "lung", "bone", "brain", "p1-99"}


def test_hounsfield_preset_refused_on_mr(ct):
    with pytest.raises(ImageError, match="Hounsfield"):
        resolve_window("lung", ct, "MR")


def test_which_window_applies_is_one_rule():
    # core.medical.windows.window_for: the CLI (predict, its batch tasks), the server and the training
    # volumes ask it; a 2D image under auto is windowed by the engine itself (None)
    from napari_vlsm.core.medical.windows import window_for
    from napari_vlsm.core.volume import volume_window

    rng = np.random.default_rng(3)
    image, rgb_image = rng.normal(0, 50, (20, 24)), rng.normal(0, 50, (20, 24, 3))
    stack = rng.normal(100, 400, (5, 20, 24)).astype(np.float32)
    assert window_for("auto", image) is None and window_for(None, rgb_image) is None
    assert window_for("-100,300", image) == (-100.0, 300.0)
    assert window_for("auto", stack) == tuple(float(v) for v in volume_window(stack))  # what the engine computes
    assert window_for("soft-tissue", stack, "CT") == (-160.0, 240.0)
    colourless = stack[..., :3]  # (5, 20, 3): colour by napari's guess, x when the caller says rgb=False
    assert window_for("auto", colourless) is None
    assert window_for("auto", colourless, rgb=False) == tuple(float(v) for v in volume_window(colourless, rgb=False))
    with pytest.raises(ImageError, match="Hounsfield"):
        window_for("lung", stack, "MR")
