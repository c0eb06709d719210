"""Plain helpers of the server worklist tests (no fixtures; test modules never import each other)."""

from __future__ import annotations

import numpy as np

from napari_vlsm.client import VLSMClient
from napari_vlsm.client.worklist import RemoteWorklist
from napari_vlsm.core.worklist import Worklist


def write_frames(folder, n, shape=(20, 26, 3), seed=0, prefix="f"):
    """``n`` random PNG frames ``<prefix><k>.png`` in ``folder`` (made if needed)."""
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        iio.imwrite(folder / f"{prefix}{k}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return folder


def server_project(server, name, paths):
    """A server project with a worklist of ``paths``, added the way an admin does (on the server)."""
    with Worklist(server.project_root / name) as wl:
        wl.add(paths)
    return server.project_root / name


def annotator(server, project, name):
    """One annotator's RemoteWorklist on a server project (``name``: the holder)."""
    return RemoteWorklist(VLSMClient(server.url, server.token, timeout=120), project, holder=name)
