"""Plain helpers of the Series section's tests (no fixtures; test modules never import each other)."""

from __future__ import annotations

import numpy as np

from dock_helpers import WAIT_MS


def write_images(folder, n=3, shape=(40, 48)):
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        path = folder / f"frame{i}.png"
        iio.imwrite(path, rng.integers(0, 255, (*shape, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def settle(qtbot, dock):
    series = dock.series
    qtbot.waitUntil(lambda: series.settled() and not dock.session.finetuning, timeout=WAIT_MS)


def open_series(qtbot, dock, paths, prompt="polyp"):
    dock.segment.prompt.setCurrentText(prompt)
    dock.series.add_paths(paths)
    qtbot.waitUntil(lambda: dock.series.item is not None, timeout=WAIT_MS)
    settle(qtbot, dock)


def next_item(qtbot, dock):
    before = dock.series.item.id if dock.series.item else None
    dock.series.btn_next.click()
    qtbot.waitUntil(lambda: dock.series.item is None or dock.series.item.id != before, timeout=WAIT_MS)
    settle(qtbot, dock)
