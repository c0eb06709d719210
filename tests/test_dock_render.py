"""What the user sees: on a shown viewer, the proposal is drawn on the canvas in its label colour."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from dock_helpers import segment  # noqa: E402

pytestmark = pytest.mark.gui


def test_the_proposal_is_drawn_on_the_canvas(qtbot, make_dock):
    viewer, dock = make_dock(show=True)
    viewer.add_image(np.zeros((64, 64), np.uint8), name="dark scan")  # black: only the mask shows
    dock.segment.threshold.setValue(0.01)  # (almost) everything: a large area to find
    labels = segment(qtbot, dock, "polyp")
    assert (labels.data != 0).mean() > 0.3
    labels.opacity = 1.0
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    colour = np.round(np.asarray(labels.get_color(1))[:3] * 255).astype(int)
    close = (np.abs(shot - colour).max(axis=-1) <= 12).mean()
    assert close > 0.1, (colour.tolist(), np.unique(shot.reshape(-1, 3), axis=0)[:8].tolist())
    labels.visible = False  # the colour really comes from the mask
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    assert (np.abs(shot - colour).max(axis=-1) <= 12).mean() < 0.01


def test_nothing_in_the_dock_is_cut_off_on_the_right(qtbot, make_napari_viewer, tiny_model_dir, tmp_path):
    """The scroll area never squeezes its content below the content's minimum width: a narrower
    viewport clips the right edge (seen: "Auto-save correction", "Proje"). That minimum is known
    only once napari's style sheet applies (after docking: larger paddings and fonts than at
    construction) and changes with what is shown, so the dock must follow it after docking."""
    from qtpy.QtWidgets import QApplication

    from dock_helpers import add_correction, image_2d

    def settle():
        for _ in range(5):
            QApplication.processEvents()
            qtbot.wait(20)

    def clipped() -> tuple[int, int] | None:
        content, viewport = dock._content, dock._scroll.viewport()
        need = content.minimumSizeHint().width()
        return None if viewport.width() >= need else (viewport.width(), need)

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 940)
    image_2d(viewer, shape=(96, 120))
    _, dock = viewer.window.add_plugin_dock_widget("napari-vlsm", "Text segmentation")  # as a user does
    dock.set_model_source(str(tiny_model_dir))
    dock.session.set_project(tmp_path / "p")
    segment(qtbot, dock)
    add_correction(qtbot, dock)
    dock.model.expand(animate=False)
    dock.advanced.expand(animate=False)
    settle()
    assert clipped() is None
    # What a style sheet or a longer translation does after docking: a row that cannot wrap grows.
    dock.corrections.autosave.setText("Auto-save every correction the moment it is painted")
    settle()
    assert clipped() is None
