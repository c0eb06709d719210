"""The real dock (hidden napari viewer, Xvfb) connected to a real server process: Segment gives the
local engine's mask, Add correction stores it on the server; nothing loads a local model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm._napari.dock import VLSMDock  # noqa: E402
from napari_vlsm._napari.server_client import RemoteEngine, connect_session  # noqa: E402
from napari_vlsm.client import VLSMClient  # noqa: E402
from napari_vlsm.core.store import normalize_target  # noqa: E402
from napari_vlsm.server.process import ServerProcess  # noqa: E402

pytestmark = pytest.mark.gui
WAIT_MS = 60_000  # generous: a slow shared machine, never a speed threshold


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server")) as proc:
        yield proc


def test_dock_segments_and_stores_corrections_through_the_server(make_napari_viewer, qtbot, server, loaded,
                                                                  tmp_path):
    from napari_vlsm.core.engine import Segmenter

    viewer = make_napari_viewer()
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    dock.set_model_source("/nonexistent/model")  # a local load would fail: all work must go to the server
    dock.session.set_project(tmp_path / "project")
    engine = connect_session(dock.session, server.url, server.token, "dock-gui", tmp_path / "outbox")
    pixels = np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8)
    image = viewer.add_image(pixels, name="scan")
    dock.segment.prompt.setCurrentText("polyp")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    labels = L.find_output(viewer, image, normalize_target("polyp"))
    assert labels is not None and isinstance(dock.session.segmenter, RemoteEngine)
    here = Segmenter(loaded=loaded).predict(pixels, ["polyp"])[0]
    clear = np.abs(here.probability - 0.5) > 1e-4  # pixels not on the threshold itself
    np.testing.assert_array_equal((labels.data != 0)[clear], here.mask[clear])
    labels.data_setitem((np.arange(10, 20), np.arange(10, 20)), 1)
    dock.corrections.btn_add.click()
    qtbot.waitUntil(lambda: not dock.corrections.saving, timeout=WAIT_MS)
    stored = VLSMClient(server.url, server.token).corrections("dock-gui")["samples"]
    assert len(stored) == 1 and stored[0]["target"] == "polyp" and stored[0]["source"] == "layer:scan"
    assert engine.client.info()["jobs_running"] == []
