"""An honest demo: while the untrained demo model is in use the dock says so at the top, in a line
that needs no click, and every mask layer it makes carries "(demo model)" in its name."""

from __future__ import annotations

import shutil

import pytest

napari = pytest.importorskip("napari")

from napari_vlsm._napari import launch, texts  # noqa: E402

from dock_helpers import image_2d, segment  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]


def test_the_demo_model_is_named_at_the_top_of_the_dock_and_in_its_layers(qtbot, make_dock, tiny_model_dir,
                                                                         tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where the demo model lives
    shutil.copytree(tiny_model_dir, launch.demo_model_path())  # what --demo-model writes (tiny, random)
    viewer, dock = make_dock()
    assert dock.demo_banner.isHidden()  # a real model: no banner
    dock.set_model_source(str(launch.demo_model_path()))
    assert not dock.demo_banner.isHidden()
    assert dock.demo_banner.text() == texts.BANNER_DEMO
    assert "random weights" in texts.BANNER_DEMO and "noise until you finetune" in texts.BANNER_DEMO
    image_2d(viewer)
    labels = segment(qtbot, dock, "polyp")
    assert labels.name.endswith("(demo model)"), labels.name
    dock.set_model_source(str(tiny_model_dir))
    assert dock.demo_banner.isHidden()
    assert not segment(qtbot, dock, "vessel").name.endswith("(demo model)")
