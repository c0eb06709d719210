"""Mask layers: finding, making and writing the Labels layers that hold model proposals.

* Slices are :class:`Plane` s (``planes.py``, re-exported here with the image-side helpers): a
  Labels layer made here has the image's spatial shape, so the same Plane addresses the mask.
* Output layers are found again through ``layer.metadata["napari_vlsm"]`` (target + image id),
  never by name: the user may rename them. A layer holds one structure or several (a label map:
  value i + 1 for structure i, see ``core.labelmap``); its target is then 'liver; spleen'.
* A proposal is written with ``Labels.data_setitem`` inside ``Labels.block_history()``: ONE undo
  step (Ctrl+Z removes it) that napari also reports through ``events.paint``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
from napari.layers import Image, Labels

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.store import normalize_target

from .planes import (  # noqa: F401  (re-exported: the panels use L.Plane, L.read_plane, ...)
    Plane,
    all_planes,
    check_image,
    current_plane,
    plane_axes,
    read_plane,
    source_id,
    spatial_shape,
)

TAG = "napari_vlsm"
LABEL = 1  # the value of the structure in an output layer
# One clear colour for model masks: cyan stands out on red fundus and endoscopy photos, on skin
# and on grey CT/MR (napari's default label 1 is a dark red that vanishes on red tissue).
MASK_COLOURS = {None: "yellow", 0: "transparent", LABEL: "cyan"}
# Above this many changed pixels a proposal is written without undo history: napari's history
# keeps index arrays (~24 bytes a pixel), which would cost gigabytes on a large volume.
UNDO_PIXEL_BUDGET = 32 * 2**20


# ---------------------------------------------------------------------------- output layers
SEP = f"{LM.SEPARATOR} "  # between the targets of a several-structure layer


def target_key(text: str) -> str:
    """The key an output layer is found by: its structures' targets, normalised, in order
    ('Liver;spleen ' -> 'liver; spleen'; one structure -> exactly the store's target)."""
    return LM.join_structures([normalize_target(p) for p in LM.split_structures(text)])


def find_output(viewer, image, target: str, exact: bool = False):
    """The Labels layer holding ``target`` (one structure, or several as 'liver; spleen') for ``image``.

    Unless ``exact``, a single structure is also found inside a several-structure layer (the
    corrections panel asks for the structure picked in the legend); a layer of exactly that
    target is preferred.
    """
    uid, shape, key = str(image.unique_id), spatial_shape(image), target_key(target)
    found = {}  # rank -> layer: 0 exact + same image id, 1 exact + same name, 2/3 the same inside a label map
    for layer in viewer.layers:
        meta = layer.metadata.get(TAG) if isinstance(layer, Labels) else None
        if not isinstance(meta, dict) or "target" not in meta or layer.data.shape != shape:
            continue
        if meta["target"] == key:
            rank = 0
        elif not exact and SEP not in key and key in meta["target"].split(SEP):
            rank = 2
        else:
            continue
        if meta.get("image_id") == uid:
            found.setdefault(rank, layer)
        elif meta.get("image") == image.name:
            found.setdefault(rank + 1, layer)
    return found[min(found)] if found else None


def image_of(viewer, labels):
    """The image layer an output layer was made for, or None."""
    meta = labels.metadata.get(TAG) or {}
    for layer in viewer.layers:
        if isinstance(layer, Image) and str(layer.unique_id) == meta.get("image_id"):
            return layer
    for layer in viewer.layers:
        if isinstance(layer, Image) and layer.name == meta.get("image"):
            return layer
    return None


def output_meta(layer) -> dict | None:
    meta = layer.metadata.get(TAG) if layer is not None else None
    return meta if isinstance(meta, dict) and "target" in meta else None


def structures_of(labels) -> list:
    """The legend of an output layer (value, name, prompt, colour), one entry per structure."""
    meta = output_meta(labels) or {}
    rows = meta.get("structures")
    if rows:
        return [LM.Structure(int(r["value"]), r["name"], r["prompt"], r["colour"]) for r in rows]
    return [LM.Structure(LABEL, meta.get("target", ""), meta.get("prompt", meta.get("target", "")), LM.PALETTE[0])]


def layer_name(prompts, image, demo: bool = False) -> str:
    """'polyp — scan.png': which structure(s) and which image a mask layer belongs to; ' (demo model)'
    after it when the untrained demo model made it (its masks are noise: nobody should take them for
    a real model's)."""
    what = prompts[0] if len(prompts) == 1 else ", ".join(prompts)
    if len(what) > 48:
        what = f"{what[:45]}…"
    from .texts import DEMO_SUFFIX

    return f"{what} — {image.name}" + (DEMO_SUFFIX if demo else "")


def create_output(viewer, image, prompts, demo: bool = False):
    """A new empty Labels layer aligned with ``image`` (same spatial transform) holding the
    structures ``prompts`` (value i + 1 for prompt i, named and coloured in the layer); ``demo``:
    made by the demo model (named so)."""
    structures = LM.legend(prompts)
    data = np.zeros(spatial_shape(image), dtype=LM.label_dtype(len(structures)))
    meta = {"target": LM.join_structures([s.name for s in structures]), "prompt": LM.join_structures(prompts),
            "structures": LM.as_rows(structures), "image": image.name, "image_id": str(image.unique_id),
            "slices": {}}
    from .reader import METADATA_KEY, volume_metadata

    scan = volume_metadata(image)  # a mask of a NIfTI/DICOM scan carries its grid: File > Save writes it there
    kwargs = {"name": layer_name(prompts, image, demo), "scale": image.scale, "translate": image.translate,
              "rotate": image.rotate, "shear": image.shear, "affine": image.affine.affine_matrix,
              "metadata": {TAG: meta, **({METADATA_KEY: scan} if scan is not None else {})}, "opacity": 0.6,
              "features": features_of(structures)}
    for attr in ("units", "axis_labels"):  # napari >= 0.6
        if hasattr(image, attr):
            kwargs[attr] = getattr(image, attr)
    from napari.utils.colormaps import DirectLabelColormap

    colours = {None: MASK_COLOURS[None], 0: "transparent", **{s.value: s.colour for s in structures}}
    kwargs["colormap"] = DirectLabelColormap(color_dict=colours)
    return viewer.add_labels(data, **kwargs)


def features_of(structures) -> dict:
    """napari's per-label table (row 0 = background): the status bar names the label under the cursor."""
    return {"index": [0] + [s.value for s in structures], "name": ["background"] + [s.name for s in structures],
            "prompt": [""] + [s.prompt for s in structures], "colour": [""] + [s.colour for s in structures]}


def write_plane(labels, plane: Plane, values: np.ndarray, undo: bool = True) -> int:
    """Make ``plane`` of ``labels`` equal ``values``; returns pixels changed. ``values`` is a bool
    mask (LABEL inside, 0 outside) or a label plane (written as it is).

    With ``undo`` the write is one step of the layer's undo history (call it inside
    ``labels.block_history()`` to group several planes into one step).
    """
    key = plane.key(labels.ndim)
    current = np.asarray(labels.data[key])
    if values.dtype == bool:
        values = np.where(values, LABEL, 0)
    new = values.astype(current.dtype, copy=False)
    rows, cols = np.nonzero(current != new)
    if rows.size == 0:
        return 0
    if undo and rows.size <= UNDO_PIXEL_BUDGET:
        labels.data_setitem(plane.full_indices(labels.ndim, rows, cols), new[rows, cols])
    else:
        labels.data[key] = new
        labels.refresh()
    return int(rows.size)


def plane_mask(labels, plane: Plane) -> np.ndarray:
    """The structure on one plane of an output layer, as bool (any non-zero label counts)."""
    return read_plane(labels.data, labels.ndim, plane) != 0


def plane_values(labels, plane: Plane) -> np.ndarray:
    """The label values on one plane of an output layer."""
    return read_plane(labels.data, labels.ndim, plane)


def record_provenance(labels, planes, prompt: str, threshold: float, provenance: dict) -> None:
    """Stamp what produced the mask into the layer's metadata (model, adapter, prompt, time)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    meta = labels.metadata.setdefault(TAG, {})
    meta.update({"prompt": prompt, "threshold": float(threshold), "time": now, **provenance})
    slices = meta.setdefault("slices", {})
    for plane in planes:
        slices[plane.label()] = {
            "prompt": prompt, "threshold": float(threshold), "time": now, "axes": list(plane.axes),
            "model_fingerprint": provenance.get("model_fingerprint"),
            "adapter_sha256": provenance.get("adapter_sha256"),
        }


# ---------------------------------------------------------------------------- paint capture
def touched_planes(history_item, axes: tuple[int, int], shape: tuple[int, ...]) -> set[tuple[int, ...]]:
    """The plane indices (positions off ``axes``) that one napari paint history item changed.

    An item is a list of atoms: a masked paint (``slice_key`` bounding box + optional ``mask``,
    from brush, fill and polygon) or ``(indices, old, new)`` from ``data_setitem``.
    """
    others = [a for a in range(len(shape)) if a not in axes]
    out: set[tuple[int, ...]] = set()
    for atom in history_item:
        if not others:  # a 2D layer has one plane
            out.add(())
            continue
        key = getattr(atom, "slice_key", None)
        if key is not None:
            starts = [s.start or 0 for s in key]
            mask = getattr(atom, "mask", None)
            if mask is not None:
                pts = np.argwhere(mask)[:, others] + np.asarray([starts[a] for a in others], dtype=int)
                out.update(tuple(int(v) for v in row) for row in np.unique(pts, axis=0))
            else:
                ranges = [range(starts[a], key[a].stop if key[a].stop is not None else shape[a]) for a in others]
                out.update(itertools.product(*ranges))
        else:
            indices = atom[0]
            cols = np.stack([np.asarray(indices[a]).ravel() for a in others], axis=1)
            out.update(tuple(int(v) for v in row) for row in np.unique(cols, axis=0))
    return out
