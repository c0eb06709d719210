"""The right reader without asking: napari opens NIfTI, NRRD and DICOM folders with napari-vlsm's
reader once the launcher or the dock has run (reader_preference.py), and a folder with nothing to
read gets napari-vlsm's own one-line message instead of napari's dialog or generic error."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm._napari import reader_preference, settings
from napari_vlsm._napari.reader import METADATA_KEY

from helpers import dicom_series


def test_only_patterns_the_user_left_open_are_added():
    added = reader_preference.missing({"*.nrrd": "some-other-reader", "*.tif": "napari"})
    assert "*.nrrd" not in added and "*.tif" not in added
    assert added["*.nii.gz"] == added["*.dcm"] == added[reader_preference.FOLDERS] == "napari-vlsm"
    assert set(added) >= {"*.nii", "*.nii.gz", "*.mha", "*.dcm"}


napari = pytest.importorskip("napari")
pytestmark = pytest.mark.gui


@pytest.fixture
def first_use(make_napari_viewer, notes):
    """A viewer as a new user has it: napari-vlsm's first-run marker absent, the user's own
    preference for .nrrd files kept; then the dock opens (as from the Plugins menu)."""
    from napari.settings import get_settings

    from napari_vlsm._napari.dock import VLSMDock

    (settings.user_config_dir() / reader_preference.MARKER).unlink()
    get_settings().plugins.extension2reader = {"*.nrrd": "napari"}  # the user chose this one
    viewer = make_napari_viewer()
    get_settings().plugins.extension2reader = {"*.nrrd": "napari"}
    viewer.window.add_dock_widget(VLSMDock(viewer), name="Text segmentation")
    return viewer


@pytest.fixture
def no_dialog(monkeypatch):
    from napari._qt.dialogs import qt_reader_dialog

    def fail(*_a, **_k):
        raise AssertionError("napari asked which reader to use")

    monkeypatch.setattr(qt_reader_dialog.QtReaderDialog, "get_user_choices", fail)


def _nifti(tmp_path):
    import nibabel as nib

    scan = np.random.default_rng(0).integers(0, 1000, (4, 6, 5)).astype(np.int16)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(scan, np.diag([0.8, 0.8, 2.0, 1.0])), path)
    return path


def test_the_dock_sets_naparis_reader_preference_once_in_words(first_use, notes):
    from napari.settings import get_settings

    prefs = get_settings().plugins.extension2reader
    assert prefs["*.nii.gz"] == prefs["*.dcm"] == prefs[reader_preference.FOLDERS] == "napari-vlsm"
    assert prefs["*.nrrd"] == "napari"  # the user's own choice stands
    said = [n for n in notes if "open with napari-vlsm" in n]
    assert len(said) == 1 and ".nii.gz" in said[0] and "Preferences" in said[0], notes
    assert len(said[0].split("\n")[0]) <= 40
    get_settings().plugins.extension2reader = {}  # the user removes them: that is their choice now
    assert reader_preference.apply_once() is None and get_settings().plugins.extension2reader == {}


def test_file_open_of_nifti_and_a_dicom_folder_needs_no_dialog(first_use, no_dialog, tmp_path):
    viewer = first_use
    qt_viewer = viewer.window._qt_viewer
    qt_viewer._qt_open([str(_nifti(tmp_path))], stack=False)  # what File > Open and drag and drop call
    folder = dicom_series(tmp_path / "series", positions=[0.0, 2.5, 5.0])
    qt_viewer._qt_open([str(folder)], stack=False)
    scan, series = viewer.layers
    assert scan.data.ndim == 3 and sorted(scan.data.shape) == [4, 5, 6]
    assert METADATA_KEY in scan.metadata and METADATA_KEY in series.metadata
    assert series.data.shape[0] == 3 and np.allclose(series.scale[0], 2.5)
    (tmp_path / "again").mkdir()
    (again,) = viewer.open(_nifti(tmp_path / "again"), plugin=None)  # napari's choice (its default is builtins)
    assert METADATA_KEY in again.metadata


@pytest.mark.parametrize("content", ["empty", "text only"])
def test_a_folder_with_nothing_to_read_gets_one_line_of_ours(first_use, no_dialog, notes, tmp_path, content):
    folder = tmp_path / "nothing"
    folder.mkdir()
    if content == "text only":
        (folder / "notes.txt").write_text("not an image")
    first_use.window._qt_viewer._qt_open([str(folder)], stack=False)
    assert len(first_use.layers) == 0
    said = [n for n in notes if "Nothing to open" in n]
    assert len(said) == 1 and str(folder) in said[0], notes
    assert ("notes.txt" in said[0]) == (content == "text only") and ("empty" in said[0]) == (content == "empty")
    assert not [n for n in notes if "refused" in n or "Tried" in n], notes
