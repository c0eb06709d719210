"""Reading planes from napari layers and writing model proposals into Labels layers.

* A :class:`Plane` names one 2D slice of an image layer: the two layer axes it spans (the axes
  the viewer displays) and the position on every other axis. Labels layers made here have the
  image's spatial shape, so the same Plane addresses the mask.
* Output layers are found again through ``layer.metadata["napari_vlsm"]`` (target + image id),
  never by name: the user may rename them. A layer holds one structure or several (a label map:
  value i + 1 for structure i, see ``core.labelmap``); its target is then 'liver; spleen'.
* A proposal is written with ``Labels.data_setitem`` inside ``Labels.block_history()``: ONE undo
  step (Ctrl+Z removes it) that napari also reports through ``events.paint``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from napari.layers import Image, Labels

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.errors import ImageError
from napari_vlsm.core.store import normalize_target

from . import texts

TAG = "napari_vlsm"
LABEL = 1  # the value of the structure in an output layer
# One clear colour for model masks: cyan stands out on red fundus and endoscopy photos, on skin
# and on grey CT/MR (napari's default label 1 is a dark red that vanishes on red tissue).
MASK_COLOURS = {None: "yellow", 0: "transparent", LABEL: "cyan"}
# Above this many changed pixels a proposal is written without undo history: napari's history
# keeps index arrays (~24 bytes a pixel), which would cost gigabytes on a large volume.
UNDO_PIXEL_BUDGET = 32 * 2**20


@dataclass(frozen=True)
class Plane:
    """One 2D slice: ``axes`` (the two spatial layer axes it spans, ascending) and ``index`` (the
    position on each other spatial axis, in axis order; empty for a 2D image)."""

    axes: tuple[int, int]
    index: tuple[int, ...] = ()

    def key(self, ndim: int) -> tuple:
        """Indexing tuple over the spatial axes (a colour axis, if any, is kept whole)."""
        rest = iter(self.index)
        return tuple(slice(None) if a in self.axes else next(rest) for a in range(ndim))

    @property
    def slice_index(self) -> tuple[int, ...] | None:
        return self.index or None

    def label(self) -> str:
        return ",".join(str(i) for i in self.index) if self.index else "2d"

    def full_indices(self, ndim: int, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """Fancy indices over all axes for in-plane pixel coordinates (rows, cols)."""
        rest = iter(self.index)
        out = []
        for a in range(ndim):
            if a == self.axes[0]:
                out.append(rows)
            elif a == self.axes[1]:
                out.append(cols)
            else:
                out.append(np.full(rows.shape, next(rest), dtype=rows.dtype))
        return tuple(out)


# ---------------------------------------------------------------------------- image side
def check_image(layer) -> None:
    if layer is None:
        raise ImageError(texts.NO_IMAGE)
    if getattr(layer, "multiscale", False):
        raise ImageError(texts.MULTISCALE.format(name=layer.name))
    if layer.ndim < 2:
        raise ImageError(f"image '{layer.name}' has {layer.ndim} dimension(s); a 2D image or a stack is needed")


def spatial_shape(layer) -> tuple[int, ...]:
    """The image's shape without its colour axis (= the shape of its Labels layers)."""
    return tuple(int(s) for s in layer.data.shape[: layer.ndim])


def plane_axes(layer, dims) -> tuple[int, int]:
    """The layer axes the viewer shows; the last two when it shows 3D (or something odd)."""
    offset = dims.ndim - layer.ndim
    axes = sorted(a - offset for a in dims.displayed if a - offset >= 0)
    if dims.ndisplay != 2 or len(axes) != 2:
        return (layer.ndim - 2, layer.ndim - 1)
    return (axes[0], axes[1])


def current_plane(layer, dims) -> Plane:
    """The slice of ``layer`` the viewer is on now."""
    axes = plane_axes(layer, dims)
    pos = layer.world_to_data(dims.point)
    shape = spatial_shape(layer)
    index = tuple(
        int(np.clip(np.round(pos[a]), 0, shape[a] - 1)) for a in range(layer.ndim) if a not in axes
    )
    return Plane(axes, index)


def all_planes(layer, axes: tuple[int, int]) -> list[Plane]:
    shape = spatial_shape(layer)
    others = [range(shape[a]) for a in range(layer.ndim) if a not in axes]
    return [Plane(axes, tuple(idx)) for idx in itertools.product(*others)]


def read_plane(data, ndim: int, plane: Plane) -> np.ndarray:
    """One plane of image (or labels) data as a numpy array (only that plane is read)."""
    return np.asarray(data[plane.key(ndim)])


def source_id(layer, axes: tuple[int, int]) -> str:
    """Where a slice comes from, for the store (same source + slice -> a correction is replaced)."""
    path = getattr(getattr(layer, "source", None), "path", None)
    base = str(path) if path else f"layer:{layer.name}"
    if layer.ndim > 2 and tuple(axes) != (layer.ndim - 2, layer.ndim - 1):
        base += f"#axes={axes[0]},{axes[1]}"  # a resliced view is another set of slices
    return base


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


def layer_name(prompts, image) -> str:
    """'polyp — scan.png': which structure(s) and which image a mask layer belongs to."""
    what = prompts[0] if len(prompts) == 1 else ", ".join(prompts)
    if len(what) > 48:
        what = f"{what[:45]}…"
    return f"{what} — {image.name}"


def create_output(viewer, image, prompts):
    """A new empty Labels layer aligned with ``image`` (same spatial transform) holding the
    structures ``prompts`` (value i + 1 for prompt i, named and coloured in the layer)."""
    structures = LM.legend(prompts)
    data = np.zeros(spatial_shape(image), dtype=LM.label_dtype(len(structures)))
    meta = {"target": LM.join_structures([s.name for s in structures]), "prompt": LM.join_structures(prompts),
            "structures": LM.as_rows(structures), "image": image.name, "image_id": str(image.unique_id),
            "slices": {}}
    kwargs = {"name": layer_name(prompts, image), "scale": image.scale, "translate": image.translate,
              "rotate": image.rotate, "shear": image.shear, "affine": image.affine.affine_matrix,
              "metadata": {TAG: meta}, "opacity": 0.6, "features": features_of(structures)}
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
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
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
