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
