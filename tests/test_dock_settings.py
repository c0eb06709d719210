"""The dock's settings stay across reopening the dock and restarting napari (per user + per project),
and a damaged settings file falls back to the defaults with a warning, never an error."""

from __future__ import annotations

import json

import pytest

from napari_vlsm._napari import settings

# ----------------------------------------------------------------------------- the files alone


def test_the_user_file_lives_in_the_platformdirs_config_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("NAPARI_VLSM_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # what platformdirs reads on Linux
    import platformdirs

    assert settings.user_path() == tmp_path / "xdg" / "napari-vlsm" / "dock.json"
    assert settings.user_path().parent == __import__("pathlib").Path(platformdirs.user_config_dir("napari-vlsm"))


def test_write_then_read_round_trips_known_keys_only(tmp_path):
    path = tmp_path / "cfg" / "dock.json"
    values = {"model_source": "/models/clipseg", "autosave": False, "budget_s": 45.0, "max_steps": 0,
              "not_a_setting": 1, "device": 3}  # device of the wrong type is not written
    assert settings.write(path, values, settings.USER_KEYS) is None
    read, warning = settings.read(path, settings.USER_KEYS)
    assert warning is None
    assert read == {"model_source": "/models/clipseg", "autosave": False, "budget_s": 45.0, "max_steps": 0}
    assert [p.name for p in path.parent.iterdir()] == ["dock.json"]  # atomic: no temporary left


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff\xfe", ""])
def test_a_damaged_file_gives_defaults_and_one_warning(tmp_path, content):
    path = tmp_path / "dock.json"
    path.write_bytes(content.encode("latin-1"))
    values, warning = settings.read(path, settings.USER_KEYS)
    assert values == {} and warning and str(path) in warning and "defaults" in warning


def test_bad_values_are_dropped_one_by_one(tmp_path):
    path = tmp_path / "dock.json"
    path.write_text(json.dumps({"autosave": "yes", "batch_size": True, "device": "cpu"}))
    values, warning = settings.read(path, settings.USER_KEYS)
    assert values == {"device": "cpu"}
    assert "autosave" in warning and "batch_size" in warning


def test_a_missing_file_is_silent(tmp_path):
    assert settings.read(tmp_path / "absent.json", settings.USER_KEYS) == ({}, None)


def test_an_unwritable_folder_is_a_warning_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    warning = settings.write(blocker / "dock.json", {"device": "cpu"}, settings.USER_KEYS)
    assert warning and "could not be saved" in warning


# ----------------------------------------------------------------------------- in the dock
napari = pytest.importorskip("napari")

from napari_vlsm._napari.dock import VLSMDock  # noqa: E402


def reopen(viewer, dock):
    dock.save_settings()
    viewer.window.remove_dock_widget(dock)
    again = VLSMDock(viewer)
    viewer.window.add_dock_widget(again, name="Text segmentation 2")
    return again


@pytest.mark.gui
def test_settings_come_back_when_the_dock_is_reopened(qtbot, make_dock, tmp_path):
    viewer, dock = make_dock()
    assert dock.session.project.store is not None  # the project folder exists once used
    dock.model.variant.setCurrentText("dense-vl")
    dock.model.device.setCurrentText("cpu")
    dock.model.precision.setCurrentText("fp32")
    dock.corrections.autosave.setChecked(False)
    dock.advanced.budget.setValue(40)
    dock.advanced.steps.setValue(25)
    dock.segment.threshold.setValue(0.3)
    dock.session.adapter = "latest"
    source, project = dock.session.model_source, dock.session.folder
    again = reopen(viewer, dock)
    s = again.session
    assert (s.model_source, s.folder) == (source, project)
    assert (s.variant, s.device, s.precision) == ("dense-vl", "cpu", "fp32")
    assert (s.budget_s, s.max_steps, s.adapter) == (40.0, 25, "latest")
    assert not again.corrections.autosave.isChecked()
    assert again.segment.threshold.value() == pytest.approx(0.3)
    assert json.loads((project / "settings.json").read_text())["variant"] == "dense-vl"
    assert settings.user_path().is_file()


@pytest.mark.gui
def test_settings_are_saved_by_themselves_shortly_after_a_change(qtbot, make_dock):
    viewer, dock = make_dock()
    dock.model.precision.setCurrentText("bf16")
    qtbot.waitUntil(lambda: settings.user_path().is_file()
                    and json.loads(settings.user_path().read_text()).get("precision") == "bf16", timeout=5000)


@pytest.mark.gui
def test_a_damaged_settings_file_opens_the_dock_with_defaults_and_a_warning(qtbot, make_napari_viewer, notes):  # noqa: F811
    settings.user_path().parent.mkdir(parents=True, exist_ok=True)
    settings.user_path().write_text("{ damaged")
    viewer = make_napari_viewer()
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    assert dock.corrections.autosave.isChecked() and dock.session.variant == "shallow-vlc"
    assert any("damaged" in n and "defaults" in n for n in notes), notes


@pytest.mark.gui
def test_another_project_does_not_inherit_the_adapter(qtbot, make_dock, tmp_path):
    viewer, dock = make_dock()
    assert dock.session.project.store is not None
    dock.session.adapter = "latest"
    dock.save_settings()
    dock.session.set_project(tmp_path / "other")
    assert dock.session.adapter == "none"
