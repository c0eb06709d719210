"""Sample images (offline, no torch) and the launcher that opens one with the dock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from napari_vlsm._napari import sample_data
from napari_vlsm.core.errors import VLSMError

SAMPLES = {  # key: (function, shape, dtype)
    "retina": (sample_data.retina, (1411, 1411, 3), np.uint8),
    "ct_slice": (sample_data.ct_slice, (128, 128), np.int16),
    "mr_slice": (sample_data.mr_slice, (64, 64), np.int16),
}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access during a sample load")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("key", SAMPLES)
def test_sample_layer_data(key, no_network):
    function, shape, dtype = SAMPLES[key]
    ((data, kwargs, layer_type),) = function()
    assert layer_type == "image"
    assert data.shape == shape and data.dtype == dtype
    assert kwargs["name"]
    if data.ndim == 2:
        lo, hi = kwargs["contrast_limits"]
        assert lo < hi and kwargs["colormap"] == "gray"


def test_ct_slice_is_in_hounsfield_units():
    ((data, kwargs, _),) = sample_data.ct_slice()
    # CT_small.dcm stores 128..2191 with intercept -1024: air and fat below 0 HU, bone above.
    assert data.min() == 128 - 1024 and data.max() == 2191 - 1024
    assert kwargs["contrast_limits"] == sample_data.CT_WINDOW
    assert kwargs["metadata"]["units"] == "HU"


def test_mr_slice_uses_the_header_window():
    ((_, kwargs, _),) = sample_data.mr_slice()
    assert kwargs["contrast_limits"] == (600 - 1600 / 2, 600 + 1600 / 2)


def test_samples_load_no_torch():
    code = ("import json, sys\nfrom napari_vlsm._napari import sample_data as s\n"
            "[f() for f in (s.retina, s.ct_slice, s.mr_slice)]\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert not loaded & {"torch", "transformers", "napari", "PyQt6"}


def test_missing_pydicom_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # makes `import pydicom` fail
    with pytest.raises(VLSMError, match="pip install pydicom"):
        sample_data.ct_slice()


def test_dicom_layer_reads_a_file(tmp_path):
    import shutil

    from pydicom.data import get_testdata_file

    path = shutil.copy(get_testdata_file("CT_small.dcm", download=False), tmp_path / "scan.dcm")
    data, kwargs, layer_type = sample_data.dicom_layer(path)
    assert (data.shape, data.dtype, layer_type) == ((128, 128), np.int16, "image")
    assert kwargs["name"] == "scan" and kwargs["metadata"]["source"] == str(path)


# --- in napari ------------------------------------------------------------------------------------

@pytest.mark.gui
@pytest.mark.parametrize("key", ["retina", "ct_slice"])
def test_open_sample_in_napari(make_napari_viewer, key):
    from napari.layers import Image

    viewer = make_napari_viewer()
    viewer.open_sample("napari-vlsm", key)
    (layer,) = viewer.layers
    assert isinstance(layer, Image)
    assert layer.rgb == (key == "retina")
    if key == "ct_slice":
        assert tuple(layer.contrast_limits) == sample_data.CT_WINDOW


@pytest.mark.gui
def test_launcher_opens_image_and_dock(make_napari_viewer, monkeypatch):
    """The launcher adds the sample and docks the widget, or says why the dock is missing."""
    import importlib.util

    from napari_vlsm._napari import launch

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    viewer = make_napari_viewer()
    args = launch.parse_args(["--sample", "mr_slice", "--model", "/models/clipseg"])
    assert launch.open_viewer(args, viewer) is viewer
    assert [layer.name for layer in viewer.layers] == ["MR slice (pydicom)"]
    if importlib.util.find_spec("napari_vlsm._napari.dock") is None:
        assert shown and "Text segmentation" in shown[0]  # a message, not a crash
    else:
        assert not shown
        assert "Text segmentation" in str(list(viewer.window.dock_widgets))


def test_launcher_arguments():
    from napari_vlsm._napari import launch

    args = launch.parse_args([])
    assert (args.model, args.sample, args.image, args.demo_model) == (
        "CIDAS/clipseg-rd64-refined", "retina", None, False)
    with pytest.raises(SystemExit):
        launch.parse_args(["--model", "x", "--demo-model"])


def test_demo_model_is_written_once(tmp_path, monkeypatch):
    from napari_vlsm._napari import launch

    monkeypatch.setattr("platformdirs.user_cache_dir", lambda *a, **k: str(tmp_path))
    folder = launch.demo_model_dir()
    assert folder == tmp_path / "demo-model"
    assert {"config.json", "model.safetensors", "vocab.json"} <= {p.name for p in folder.iterdir()}
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert launch.demo_model_dir() == folder
    assert (folder / "config.json").stat().st_mtime_ns == stamp
