"""What the finetune worker runs (a worker thread: no Qt calls here). The loop itself is the
project's (``core/project``); this only adds the dock's own check and message."""

from __future__ import annotations

from napari_vlsm.core.errors import TrainingError

from . import texts


def finetune_job(project, request, cancel, keep):
    """Worker: the project's finetune, once it has corrections to train on. For a server project the
    count is a request: asked here, never on the GUI thread."""
    if project.counts()["train"] == 0:
        raise TrainingError(texts.NO_CORRECTIONS.format(root=project.name))
    return (yield from project.train(request, cancel, keep))
