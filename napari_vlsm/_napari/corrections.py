"""What a correction of one slice stores: one sample per structure, as single-structure ones.

A mask layer may hold several structures (a label map: value i + 1 for structure i). A corrected
slice of it becomes one sample PER STRUCTURE, each exactly like a single-structure correction:
``mask = labels == value``, ``prompts = [that structure's prompt]``, the proposal of that structure,
the same source and slice. The store files each under its own target, so one finetune learns all
of them in one adapter (the trainer takes each sample's own prompt). Every structure of the slice
is stored, also one the user left as proposed or empty there: the user has looked at the whole
slice, and "no spleen on this slice" teaches as much as a spleen outline.

``plane_sample`` runs on the GUI thread (cheap copies); ``write_samples`` in the writer worker.
"""

from __future__ import annotations

import numpy as np

from . import layers as L

MANY = "samples"  # key of a slice item that carries one sample per structure


def plane_sample(session, labels, image, plane, prompt: str) -> dict:
    """GUI thread: copy what a correction of one slice needs (cheap); written later in a worker.

    One structure: the sample's fields (``store.add`` keywords). Several: ``{"samples": [...]}``,
    one per structure (the caller queues one item per slice; :func:`write_samples` expands it).
    """
    entry = session.proposals.get(labels, plane)
    structures = L.structures_of(labels)
    shared = {"image": np.array(L.read_plane(image.data, image.ndim, plane)),
              "source": L.source_id(image, plane.axes), "slice_index": plane.slice_index,
              "window": session.window_for(image)}
    if len(structures) == 1:
        return {**shared, "mask": L.plane_mask(labels, plane), "prompts": [prompt],
                "proposal": None if entry is None else entry.mask.copy()}
    values = np.array(L.plane_values(labels, plane))
    return {MANY: [
        {**shared, "mask": values == s.value, "prompts": [s.prompt],
         "proposal": None if entry is None else entry.mask_of(s.value)}
        for s in structures
    ]}


def expand(item: dict) -> list[dict]:
    """A queued slice item -> the ``add_correction`` keyword sets it holds."""
    if MANY in item:
        return list(item[MANY])
    return [{k: v for k, v in item.items() if not k.startswith("_")}]


def write_samples(project, items: list[dict]):
    """Worker: store the corrections in order; each is durable (acknowledged) when it is yielded."""
    for item in items:
        for sample in expand(item):
            yield project.add_correction(**sample)
