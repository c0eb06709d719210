"""Bad input: a clear message or a defined result, never a crash or a silent wrong result.

Covers the core (Segmenter, finetune), the CLI (in-process ``main`` with capsys) and properties of
the normalisation and mask post-processing that tests/test_preprocess.py does not already check.
Cases already tested elsewhere are listed in docs/reliability.md with their test, not repeated here.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_vlsm.cli import main
from napari_vlsm.core.engine import Prediction, Segmenter
from napari_vlsm.core.errors import ImageError, MaskError, SettingError, VLSMError
from napari_vlsm.core.preprocess import (
    as_binary_mask,
    intensity_window,
    logits_to_probability,
    normalize_intensity,
    threshold_mask,
)
from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

from helpers import Sample, disk_mask

PROMPTS = ["Leber", "肝臓", "🫀 heart", "ｌｅｆｔ ｋｉｄｎｅｙ"]


@pytest.fixture()
def seg(loaded):
    return Segmenter(loaded=loaded)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-vlsm: error: ") and "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- prompts


def test_non_ascii_and_emoji_prompts_work(seg):
    image = np.random.default_rng(0).random((30, 40)).astype(np.float32)
    preds = seg.predict(image, PROMPTS)
    assert [p.prompt for p in preds] == PROMPTS
    assert all(p.probability.shape == (30, 40) and np.isfinite(p.probability).all() for p in preds)
    # different texts give different conditioning: emoji are not silently dropped to an empty prompt
    assert not np.allclose(preds[0].probability, preds[2].probability)
    stack = np.random.default_rng(1).random((3, 20, 20)).astype(np.float32)
    assert [len(p) for _, p in seg.predict_stack(stack, PROMPTS[1:3])] == [2, 2, 2]


def test_long_prompt_in_a_stack_warns_once_per_call_and_still_segments(seg):
    stack = np.random.default_rng(2).random((2, 16, 16)).astype(np.float32)
    with pytest.warns(UserWarning, match="truncated"):
        out = list(seg.predict_stack(stack, "left kidney " * 30))
    assert [i for i, _ in out] == [0, 1] and out[0][1][0].probability.shape == (16, 16)


# ----------------------------------------------------------------------------- images


def _odd_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    with_inf = rng.normal(size=(20, 24))
    with_inf[0, :3] = [np.inf, -np.inf, np.nan]
    return {
        "1x1": np.array([[7]], np.uint8),
        "1x1-rgb": np.array([[[1, 2, 3]]], np.uint8),
        "constant-float": np.full((25, 30), 3.25, np.float32),
        "constant-int16": np.full((25, 30), -1000, np.int16),
        "all-nan": np.full((18, 22), np.nan, np.float32),
        "inf-and-nan": with_inf,
        "bool": rng.random((21, 19)) > 0.5,
        "negative-float64": -1e300 * rng.random((12, 13)),
        "uint16-full-range": rng.integers(0, 65536, (16, 17), dtype=np.uint16),
        "rgba-float": rng.random((14, 15, 4)).astype(np.float32),
        "big-endian": rng.integers(-5, 5, (9, 11)).astype(">i4"),
        "non-contiguous": rng.random((40, 60))[::2, ::3],
    }


@pytest.mark.parametrize("name", list(_odd_images()))
def test_odd_images_give_a_finite_result_of_their_own_shape(seg, name):
    image = _odd_images()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "invalid value" noise from numpy either
        pred = seg.predict(image, "liver")[0]
    assert pred.probability.shape == image.shape[:2] and pred.probability.dtype == np.float32
    assert np.isfinite(pred.probability).all() and pred.mask.shape == image.shape[:2]


def test_all_nan_and_constant_images_mean_black_not_garbage(seg):
    """No finite value (or one value) -> the normalised image is all zeros: the same result as a
    black image, a defined answer instead of NaN propagating through the model."""
    black = seg.predict(np.zeros((18, 22), np.float32), "x")[0].probability
    for image in (np.full((18, 22), np.nan, np.float32), np.full((18, 22), 5.0, np.float32)):
        np.testing.assert_allclose(seg.predict(image, "x")[0].probability, black, atol=1e-6)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((8, 8), np.complex64), ["complex", "np.abs"]),
        (np.zeros((2, 3, 16, 16), np.float32), ["(2, 3, 16, 16)", "slice by slice"]),
        (np.zeros((1, 2, 3, 16, 16), np.uint8), ["(1, 2, 3, 16, 16)", "slice by slice"]),
        (np.zeros((5, 16, 16), np.uint16), ["(5, 16, 16)", "slice by slice"]),
        (np.array([["a", "b"]]), ["non-numeric"]),
        (np.zeros((0, 16)), ["empty"]),
    ],
    ids=["complex", "4D", "5D", "stack-to-predict", "strings", "empty"],
)
def test_images_predict_cannot_use_name_the_shape_and_the_fix(seg, image, words):
    with pytest.raises(ImageError) as info:
        seg.predict(image, "liver")
    for word in words:
        assert word in str(info.value)


def test_predict_stack_refuses_a_2d_image_and_complex_stacks(seg):
    with pytest.raises(ImageError, match=r"\(16, 16\).*use predict\(\)"):
        seg.predict_stack(np.zeros((16, 16)), "x")
    with pytest.raises(ImageError, match="complex"):
        list(seg.predict_stack(np.zeros((2, 8, 8), np.complex128), "x", window=(0, 1)))
    with pytest.raises(SettingError, match="batch_size"):
        seg.predict_stack(np.zeros((2, 8, 8)), "x", batch_size=0)


def _memory(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) * 1024


def test_huge_image_memory_stays_bounded(seg):
    """A 4000 x 4000 float slide: same-shape result, and the peak memory is a small multiple of
    the image (measured: ~245 MB over the baseline for two prompts, 122 MB of which are the two
    returned probability maps). Linux only: reads and resets VmHWM through /proc."""
    clear = Path("/proc/self/clear_refs")
    if not clear.exists():
        pytest.skip("needs Linux /proc to measure peak memory")
    seg.predict(np.zeros((64, 64), np.float32), "warm-up")  # one-time allocations are not the image's
    image = np.random.default_rng(4).normal(size=(4000, 4000)).astype(np.float32)
    base = _memory("VmRSS")
    try:
        clear.write_text("5")  # reset the peak (VmHWM) to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS here")
    preds = seg.predict(image, ["lesion", "vessel"])
    peak = _memory("VmHWM") - base
    assert [p.probability.shape for p in preds] == [(4000, 4000)] * 2
    returned = sum(p.probability.nbytes for p in preds)
    assert peak < returned + 5 * image.nbytes, f"peak {peak / 2**20:.0f} MB"


# ----------------------------------------------------------------------------- finetune input


def _disk(h=32, w=32):
    return disk_mask(h, w)


@pytest.mark.parametrize(
    ("sample", "error", "words"),
    [
        (Sample(np.zeros((32, 32), np.complex64), _disk(), name="c1"), ImageError, ["c1", "complex"]),
        (Sample(np.zeros((2, 32, 32, 3)), _disk(), name="v4"), ImageError, ["v4", "(2, 32, 32, 3)"]),
        (Sample(np.zeros((32, 32)), _disk().astype(np.uint8) * np.arange(32), name="lab"), MaskError,
         ["lab", "label values"]),
        (Sample(np.zeros((32, 32)), _disk()[:30], name="short"), MaskError, ["short", "(30, 32)"]),
        (Sample(np.zeros((32, 32)), _disk(), prompts=("  ",), name="blank"), VLSMError, ["blank", "no prompt"]),
    ],
    ids=["complex-image", "4D-image", "several-labels", "mask-shape", "blank-prompt"],
)
def test_finetune_names_the_bad_sample(loaded, sample, error, words):
    good = Sample(np.random.default_rng(0).random((32, 32)), _disk(), name="good")
    with pytest.raises(error) as info:
        run_to_end(finetune(loaded, [good, sample], [], TrainConfig(max_steps=1)))
    for word in words:
        assert word in str(info.value)


def test_finetune_on_nan_and_constant_images_runs(loaded):
    samples = [Sample(np.full((32, 32), np.nan), _disk(), ("🫀",), "nan"),
               Sample(np.full((32, 32), 9.0), _disk(), ("肝臓",), "flat")]
    result = run_to_end(finetune(loaded, samples, [], TrainConfig(max_steps=2, batch_size=2)))
    assert result.steps == 2 and np.isfinite([h["val_loss"] for h in result.history]).all()
    assert result.metadata["prompts"] == ["🫀", "肝臓"]


# ----------------------------------------------------------------------------- CLI input


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd-inputs")
    rng = np.random.default_rng(5)
    iio.imwrite(folder / "dot.png", np.array([[200]], np.uint8))
    tifffile.imwrite(folder / "nan.tif", np.full((12, 14), np.nan, np.float32))
    tifffile.imwrite(folder / "flat.tif", np.full((12, 14), 1234, np.uint16))
    tifffile.imwrite(folder / "tzyx.tif", rng.integers(0, 4000, (2, 3, 10, 12), dtype=np.uint16),
                     photometric="minisblack")
    tifffile.imwrite(folder / "complex.tif", np.ones((10, 10), np.complex64))
    iio.imwrite(folder / "photo.png", rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    return folder


def test_cli_odd_images_are_segmented(capsys, tiny_model_dir, files, tmp_path):
    code, out, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--prompt", "liver",
                             files / "dot.png", files / "nan.tif", files / "flat.tif", files / "tzyx.tif",
                             "--out", tmp_path, "--json")
    assert code == 0 and "Traceback" not in err, err
    shapes = {Path(r["path"]).name: tuple(r["shape"]) for r in json.loads(out)["outputs"]}
    assert shapes == {"dot__liver.png": (1, 1), "nan__liver.png": (12, 14), "flat__liver.png": (12, 14),
                      "tzyx__liver.tif": (2, 3, 10, 12)}


def test_cli_4d_mask_file_reads_back_with_the_input_shape(capsys, tiny_model_dir, files, tmp_path):
    code, _, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--prompt", "liver", files / "tzyx.tif",
                           "--out", tmp_path, "--save-prob")
    assert code == 0, err
    assert tifffile.imread(files / "tzyx.tif").shape == (2, 3, 10, 12)
    assert tifffile.imread(tmp_path / "tzyx__liver.tif").shape == (2, 3, 10, 12)
    assert tifffile.imread(tmp_path / "tzyx__liver__prob.tif").shape == (2, 3, 10, 12)


def test_cli_complex_image_is_one_line_and_the_others_go_on(capsys, tiny_model_dir, files, tmp_path):
    code, _, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--prompt", "x",
                           files / "complex.tif", files / "photo.png", "--out", tmp_path)
    line = one_error_line(err)
    assert code == 1 and "complex.tif" in line and "complex" in line.split("complex.tif", 1)[1]
    assert (tmp_path / "photo__x.png").is_file()


def test_cli_long_prompt_is_truncated_with_one_warning(capsys, tiny_model_dir, files, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as in a plain `napari-vlsm` process (the suite may run with -W ignore)
        code, _, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--prompt", "left kidney " * 30,
                               files / "photo.png", "--out", tmp_path)
    assert code == 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-vlsm: warning: ") and "truncated" in lines[0]
    assert len(list(tmp_path.glob("photo__left-kidney*.png"))) == 1


def test_cli_non_ascii_emoji_and_path_like_prompts_stay_in_out(capsys, tiny_model_dir, files, tmp_path):
    out_dir = tmp_path / "out"
    prompts = ["Leber", "肝臓", "🫀", "🫁", "../../etc/passwd", "/abs"]
    argv = ["predict", "--model", tiny_model_dir, files / "photo.png", "--out", out_dir, "--json"]
    for p in prompts:
        argv += ["--prompt", p]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == sorted(["napari-vlsm-predict.json", "photo__leber.png", "photo__肝臓.png", "photo__prompt.png",
                            "photo__prompt-2.png", "photo__etc-passwd.png", "photo__abs.png"])
    assert [r["prompt"] for r in json.loads(out)["outputs"]] == prompts
    assert not list(tmp_path.glob("*.png")) and not Path("/etc/passwd.png").exists()


@pytest.mark.parametrize("prompt", ["", "   ", "\t\n"])
def test_cli_blank_prompt_is_a_usage_error(capsys, tiny_model_dir, files, tmp_path, prompt):
    code, _, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--prompt", "ok", "--prompt", prompt,
                           files / "photo.png", "--out", tmp_path)
    assert code == 2 and "prompt 2 is empty" in one_error_line(err)
    assert not list(tmp_path.glob("*.png"))  # nothing was segmented before the error


# ----------------------------------------------------------------------------- properties


def _finite_grey(dtype=np.float64, max_side=10):
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=max_side),
                      elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False, width=64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_finite_grey())
def test_property_normalisation_keeps_the_order_of_intensities(img):
    out = normalize_intensity(img)[..., 0].ravel()
    flat = img.ravel()
    order = np.argsort(flat, kind="stable")
    assert (np.diff(out[order]) >= 0).all()  # brighter input is never darker after normalisation


_LEVELS = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=10),
                    elements=st.integers(-4000, 4000).map(float))  # grey levels a float64 can shift exactly


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LEVELS, st.floats(1e-3, 1e3, allow_subnormal=False), st.floats(-1e3, 1e3, allow_subnormal=False))
def test_property_normalisation_ignores_the_unit_of_the_data(img, scale, offset):
    """Percentile windows move with the data: HU vs mHU, or an offset scanner, look the same."""
    a = normalize_intensity(img)
    b = normalize_intensity(img * scale + offset)
    np.testing.assert_allclose(a, b, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(_finite_grey(), st.floats(-100, 100, allow_subnormal=False), st.floats(1e-3, 100, allow_subnormal=False))
def test_property_fixed_window_clips_exactly(img, lo, width):
    hi = lo + width
    out = normalize_intensity(img, window=(lo, hi))[..., 0]
    assert (out[img <= lo] == 0).all() and (out[img >= hi] == 1).all()
    inside = (img > lo) & (img < hi)
    np.testing.assert_allclose(out[inside], ((img[inside] - lo) / (hi - lo)).astype(np.float32), atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float32, (6, 7), elements=st.floats(0, 1, width=32, allow_subnormal=False)),
    st.floats(0, 1, allow_subnormal=False), st.floats(0, 1, allow_subnormal=False),
)
def test_property_thresholds_nest_and_rethreshold_equals_fresh(prob, t1, t2):
    low, high = sorted((t1, t2))
    assert not (threshold_mask(prob, high) & ~threshold_mask(prob, low)).any()  # a higher threshold only removes
    pred = Prediction("x", prob, 0.5)
    np.testing.assert_array_equal(pred.with_threshold(high).mask, prob >= np.float32(high))


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float32, (1, 5, 5), elements=st.floats(-20, 20, width=32, allow_subnormal=False)),
    hnp.arrays(np.float32, (1, 5, 5), elements=st.floats(0, 5, width=32, allow_subnormal=False)),
    st.integers(1, 40), st.integers(1, 40),
)
def test_property_probability_is_monotone_in_the_logits(logits, bump, h, w):
    """More evidence never lowers a pixel's probability, at any output size (the resize weights
    are non-negative and the sigmoid is monotone)."""
    a = logits_to_probability(torch.from_numpy(logits), (h, w))
    b = logits_to_probability(torch.from_numpy(logits + bump), (h, w))
    assert (b >= a - 1e-6).all()


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.bool_, hnp.array_shapes(min_dims=2, max_dims=2, max_side=9)),
    st.sampled_from([np.uint8, np.uint16, np.int32, np.float32]),
    st.integers(1, 255),
)
def test_property_one_structure_mask_round_trips_and_shape_is_checked(mask, dtype, value):
    value = 1 if np.dtype(dtype).kind == "f" else value  # float masks are 0/1 by contract
    as_int = mask.astype(dtype) * dtype(value)
    np.testing.assert_array_equal(as_binary_mask(as_int, shape=mask.shape), mask)
    wrong = (mask.shape[0] + 1, mask.shape[1])
    with pytest.raises(MaskError, match=re.escape(str(tuple(mask.shape)))):
        as_binary_mask(as_int, shape=wrong)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, (5, 6), elements=st.sampled_from([np.nan, np.inf, -np.inf, 0.0])))
def test_property_images_without_a_finite_range_get_a_valid_window(img):
    lo, hi = intensity_window(img)
    assert np.isfinite([lo, hi]).all() and lo < hi
    out = normalize_intensity(img)
    assert np.isfinite(out).all() and ((out == 0) | (out == 1)).all()
