"""The CLI: info and predict on real file formats; user errors are one line and exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_vlsm.cli import main
from napari_vlsm.cli.common import VARIANTS, slug, unique_slugs

PAPER_COUNTS = {"shallow-v": 2_363_136, "shallow-vl": 3_939_072, "shallow-vlc": 4_201_984,
                "dense-v": 1_784_448, "dense-vl": 2_974_464, "dense-vlc": 3_237_376}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    iio.imwrite(folder / "photo.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    iio.imwrite(folder / "grey.png", rng.integers(0, 65535, (30, 20), dtype=np.uint16))
    iio.imwrite(folder / "scope.jpg", rng.integers(0, 256, (33, 44, 3), dtype=np.uint8))
    tifffile.imwrite(folder / "slice.tif", rng.normal(0, 1, (25, 35)).astype(np.float32))
    tifffile.imwrite(folder / "ct.tif", rng.integers(-1000, 1000, (4, 21, 23), dtype=np.int16),
                     photometric="minisblack")
    # tifffile's old default tags a (4, H, W) array as planar RGBA: int16 data stays a stack
    with warnings.catch_warnings():  # tifffile deprecates that default: silence it, keep the case
        warnings.simplefilter("ignore", DeprecationWarning)
        tifffile.imwrite(folder / "legacy.tif", rng.integers(-1000, 1000, (4, 12, 13), dtype=np.int16))
    return folder


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json_tiny(capsys, tiny_model_dir):
    code, out, err = run_main(capsys, "info", "--model", tiny_model_dir, "--variant", "shallow-vl",
                              "--device", "cpu", "--precision", "fp32", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["base_parameters"] == 203_018 and info["variant"] == "shallow-vl"
    assert info["trainable_parameters"] == info["trainable_parameters_by_variant"]["shallow-vl"] > 0
    assert info["trainable_parameters_by_variant"]["none"] == 0 and set(info["trainable_parameters_by_variant"]) == set(VARIANTS)
    assert info["device"] == "cpu" and info["precision"] == "fp32" and len(info["fingerprint"]) == 16


def test_info_shows_adapter_metadata(capsys, tiny_model_dir, tmp_path):
    from napari_vlsm.core.adapters import AdapterConfig, build_adapters
    from napari_vlsm.core.adapters.checkpoint import build_metadata, save_adapter
    from napari_vlsm.core.loading import load_model

    loaded = load_model(tiny_model_dir, device="cpu")
    adapters = build_adapters(AdapterConfig.from_variant("dense-v", loaded.config))
    path = save_adapter(tmp_path / "a.safetensors", adapters, build_metadata(adapters, loaded, {"prompts": ["liver"]}))
    code, out, err = run_main(capsys, "info", "--model", tiny_model_dir, "--adapter", path, "--json")
    info = json.loads(out)
    assert code == 0 and info["variant"] == "dense-v" and info["adapter_metadata"]["prompts"] == ["liver"]
    code, out, err = run_main(capsys, "info", "--model", tiny_model_dir, "--adapter", path)
    assert code == 0 and "dense-v" in out and "liver" in out


def test_predict_png_jpeg_tiff_and_stacks(capsys, tiny_model_dir, inputs, tmp_path):
    out_dir = tmp_path / "masks"
    code, out, err = run_main(capsys, "predict", "--model", tiny_model_dir, "--prompt", "liver",
                              "--prompt", "Left kidney!", inputs, "--out", out_dir, "--json", "--save-prob")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["failed"] == [] and len(summary["outputs"]) == 6 * 2
    by_name = {r["path"].split("/")[-1]: r for r in summary["outputs"]}
    expected = {
        "photo__liver.png": (40, 50), "grey__left-kidney.png": (30, 20), "scope__liver.png": (33, 44),
        "slice__liver.png": (25, 35), "ct__left-kidney.tif": (4, 21, 23), "legacy__liver.tif": (4, 12, 13),
    }
    for name, shape in expected.items():
        record = by_name[name]
        mask = tifffile.imread(record["path"]) if name.endswith(".tif") else iio.imread(record["path"])
        assert mask.shape == shape and tuple(record["shape"]) == shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert record["foreground_fraction"] == pytest.approx((mask > 0).mean(), abs=1e-5)
        prob = tifffile.imread(record["probability_path"])
        assert prob.shape == shape and prob.dtype == np.float32
        np.testing.assert_array_equal(prob >= 0.5, mask > 0)
    saved = json.loads((out_dir / "napari-vlsm-predict.json").read_text())
    assert saved["provenance"]["model_fingerprint"] and len(saved["outputs"]) == 12
    with tifffile.TiffFile(by_name["ct__left-kidney.tif"]["path"]) as tif:  # provenance inside the file
        meta = tif.shaped_metadata[0]
    assert meta["prompt"] == "Left kidney!" and meta["model_fingerprint"] == saved["provenance"]["model_fingerprint"]


def test_4d_tiff_gives_a_4d_mask(capsys, tiny_model_dir, tmp_path):
    tifffile.imwrite(tmp_path / "tzyx.tif", np.arange(2 * 3 * 10 * 12, dtype=np.uint16).reshape(2, 3, 10, 12),
                     photometric="minisblack")
    code, _, err = run_main(capsys, "predict", "--model", tiny_model_dir, "--prompt", "x", tmp_path / "tzyx.tif",
                            "--out", tmp_path / "o", "--save-prob")
    assert code == 0, err
    assert tifffile.imread(tmp_path / "o" / "tzyx__x.tif").shape == (2, 3, 10, 12)
    assert tifffile.imread(tmp_path / "o" / "tzyx__x__prob.tif").shape == (2, 3, 10, 12)


def test_stack_mask_equals_engine_with_one_volume_window(capsys, tiny_model_dir, inputs, tmp_path):
    from napari_vlsm.core.engine import Segmenter

    code, _, err = run_main(capsys, "predict", "--model", tiny_model_dir, "--prompt", "liver",
                            inputs / "ct.tif", "--out", tmp_path, "--precision", "fp32", "--batch-size", "3")
    assert code == 0, err
    mask = tifffile.imread(tmp_path / "ct__liver.tif")
    stack = tifffile.imread(inputs / "ct.tif")
    seg = Segmenter(tiny_model_dir, device="cpu", precision="fp32")
    for index, preds in seg.predict_stack(stack, "liver"):
        # identical up to float noise between batch sizes at the 0.5 boundary
        assert np.mean((mask[index] > 0) != preds[0].mask) < 0.01


def test_unreadable_file_is_reported_and_others_go_on(capsys, tiny_model_dir, inputs, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    code, out, err = run_main(capsys, "predict", "--model", tiny_model_dir, "--prompt", "x",
                              bad, inputs / "photo.png", "--out", tmp_path / "o")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-vlsm: error: ") and "broken.png" in lines[0]
    assert (tmp_path / "o" / "photo__x.png").is_file() and "Traceback" not in err


@pytest.mark.parametrize("case", ["missing-file", "empty-prompt", "bad-threshold", "empty-folder", "missing-model"])
def test_user_errors_are_one_line_and_exit_2(capsys, tiny_model_dir, inputs, tmp_path, case):
    args = ["predict", "--model", tiny_model_dir, "--prompt", "liver", inputs / "photo.png", "--out", tmp_path]
    if case == "missing-file":
        args[5] = tmp_path / "nope.png"
    elif case == "empty-prompt":
        args[4] = "   "
    elif case == "bad-threshold":
        args += ["--threshold", "1.5"]
    elif case == "empty-folder":
        (tmp_path / "empty").mkdir()
        args[5] = tmp_path / "empty"
    else:
        args[2] = tmp_path / "no-model-here"
    code, out, err = run_main(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-vlsm: error: ") and "Traceback" not in err


def test_broken_model_folder_in_a_real_process(tiny_model_dir, inputs, tmp_path):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (broken / "model.safetensors").write_bytes(b"truncated")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from napari_vlsm.cli import main; sys.exit(main())",
         "predict", "--model", str(broken), "--prompt", "liver", str(inputs / "photo.png"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-vlsm: error: ") and str(broken) in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_is_fast_no_torch_import():
    code = ("import sys; from napari_vlsm.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'napari', 'qtpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_keyboard_interrupt_exits_130(capsys, monkeypatch, tiny_model_dir, inputs, tmp_path):
    from napari_vlsm.cli import segmenters

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(segmenters, "make_segmenter", interrupted)
    monkeypatch.setattr("napari_vlsm.cli.predict.make_segmenter", interrupted)
    code, _, err = run_main(capsys, "predict", "--prompt", "x", inputs / "photo.png", "--out", tmp_path)
    assert code == 130 and "Traceback" not in err


def test_slugs():
    assert slug("Left kidney!") == "left-kidney" and slug("肝臓") == "肝臓" and slug("???") == "prompt"
    assert unique_slugs(["Liver", "liver", "LIVER!"]) == ["liver", "liver-2", "liver-3"]


@pytest.mark.slow
def test_info_full_architecture_counts(capsys, full_model_dir):
    code, out, err = run_main(capsys, "info", "--model", full_model_dir, "--variant", "dense-vl", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["base_parameters"] == 150_747_746 and info["trainable_parameters"] == 2_974_464
    assert {v: n for v, n in info["trainable_parameters_by_variant"].items() if v != "none"} == PAPER_COUNTS
