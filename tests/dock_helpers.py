"""Plain helpers of the dock tests (the fixtures ``make_dock``, ``notes`` and ``force_dice`` live in
conftest.py): wait for the dock, segment, add a correction, a 2D image, a corrected stack.
Import as ``from dock_helpers import segment, idle`` after ``pytest.importorskip("napari")``;
nothing here imports napari at import time."""

from __future__ import annotations

import numpy as np

WAIT_MS = 60_000  # generous: a slow shared CI machine, never a speed threshold


def idle(dock) -> bool:
    return not dock.session.job and not dock.session.finetuning


def segment(qtbot, dock, prompt="polyp", all_slices=False):
    """Type ``prompt``, click Segment (slice or all slices), wait; the output Labels layer."""
    from napari_vlsm._napari import layers as L
    from napari_vlsm.core.store import normalize_target

    dock.segment.prompt.setCurrentText(prompt)
    (dock.segment.btn_all if all_slices else dock.segment.btn_slice).click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    image = dock.segment.image.value
    return L.find_output(dock.viewer, image, normalize_target(prompt))


def add_correction(qtbot, dock):
    dock.corrections.btn_add.click()
    qtbot.waitUntil(lambda: not dock.corrections.saving, timeout=WAIT_MS)


def image_2d(viewer, shape=(64, 80), **kwargs):
    rng = np.random.default_rng(0)
    return viewer.add_image(rng.integers(0, 255, shape, dtype=np.uint8), name="scan", **kwargs)


def corrected_image(qtbot, viewer, dock, n=2):
    """A stack of n + 1 slices, the first ``n`` corrected and stored (the first is 'train', the
    second 'val'); the viewer ends on the last, uncorrected slice."""
    rng = np.random.default_rng(0)
    stack = viewer.add_image(rng.integers(0, 255, (n + 1, 48, 48), dtype=np.uint8), name="scan")
    labels = segment(qtbot, dock, "lesion", all_slices=True)
    truth = labels.data.copy()
    truth[:n] = 0
    truth[:n, 12:36, 12:36] = 1  # the "expert" mask: a square
    labels.data_setitem(np.nonzero(labels.data != truth), truth[labels.data != truth])
    for z in range(n):
        viewer.dims.set_current_step(0, z)
        add_correction(qtbot, dock)
    viewer.dims.set_current_step(0, n)
    assert dock.session.project.store.counts() == {"train": 1, "val": 1}
    return stack, labels
