"""Fill between slices: masks for the slices between corrected (key) slices of one structure.

Shape-based interpolation: each key slice becomes a signed distance map (inside > 0, in mm from
the in-plane pixel spacing) and a slice between two keys is where the linear blend of the two maps
is positive. Two refinements, each measured (benchmarks/bench_fill_between.py, docs/volumes.md):

- the two key shapes are moved onto their interpolated centroid before blending, so a structure
  that drifts across slices (aorta, kidney poles) moves instead of shrinking in one place and
  growing in another;
- per component: the connected parts of the two keys are matched once the whole structure's
  drift is taken out (they overlap, or their centroids are closer than the sum of their radii);
  each group of matched parts -- one to one, or a split / merge -- is interpolated on its own,
  moved along its own centroids, and a part with no partner shrinks away towards the other key
  (as a structure that ends between two keys vanishes half-way).

Measured on real label maps (every 3rd/5th/10th slice kept; docs/volumes.md) "components" is best
on average at every k; plain "sdf" stays a hair better on large organs whose keys overlap well.

A key slice is never changed, and slices outside the first..last key are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("sdf", "aligned", "components")
DEFAULT_METHOD = "components"
MARGIN = 4  # pixels of padding around the working crop (distances stay exact inside it)


def signed_distance(mask: np.ndarray, sampling=(1.0, 1.0)) -> np.ndarray:
    """Inside > 0, outside < 0 (mm); the boundary is half-way between a pixel in and one out."""
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.full(mask.shape, -np.inf, np.float32)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    return (inside - outside).astype(np.float32)


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


def _shifted(sdf: np.ndarray, offset) -> np.ndarray:
    """``sdf`` moved by ``offset`` pixels with linear interpolation, one axis at a time (whole
    pixels would cost 1-2 Dice points at 3 mm voxels); beyond the crop's edge the edge values go on."""
    out = sdf
    for axis, shift in enumerate(float(o) for o in offset):
        if abs(shift) < 1e-3:
            continue
        whole = int(np.floor(shift))
        frac = np.float32(shift - whole)
        n = out.shape[axis]
        near = np.clip(np.arange(n) - whole, 0, n - 1)  # out[i] = sdf[i - shift]
        far = np.clip(near - 1, 0, n - 1)
        out = (1 - frac) * np.take(out, near, axis=axis) + frac * np.take(out, far, axis=axis)
    return out


def _blend(sdf_a, sdf_b, t: float) -> np.ndarray:
    """Linear blend; an empty key (all -inf) stands for a shape that vanishes half-way."""
    if np.isinf(sdf_a).all():
        sdf_a = np.full_like(sdf_b, -max(float(sdf_b.max()), 0.0) - 1e-3)
    if np.isinf(sdf_b).all():
        sdf_b = np.full_like(sdf_a, -max(float(sdf_a.max()), 0.0) - 1e-3)
    return (1.0 - t) * sdf_a + t * sdf_b


def _pair(a: np.ndarray, b: np.ndarray, ts: Sequence[float], sampling, align: bool) -> list[np.ndarray]:
    """Blended signed distances (inside > 0, mm) at fractions ``ts`` between key shapes ``a`` (t=0)
    and ``b`` (t=1), same-shape crops."""
    sdf_a, sdf_b = signed_distance(a, sampling), signed_distance(b, sampling)
    if not (align and a.any() and b.any()):
        return [_blend(sdf_a, sdf_b, t) for t in ts]
    ca, cb = _centroid(a), _centroid(b)
    out = []
    for t in ts:
        c = (1 - t) * ca + t * cb  # where the structure's centre is at this slice
        out.append(_blend(_shifted(sdf_a, c - ca), _shifted(sdf_b, c - cb), t))
    return out


def _groups(a: np.ndarray, b: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected parts of ``a`` and ``b`` matched into groups (parts of a, parts of b).

    Parts are matched once the whole of ``b`` is moved onto the centroid of ``a`` (the drift of
    the structure as a whole): two parts match when they overlap or when their centroids are
    closer than the sum of their radii. A group may hold several parts on either side (a split or
    a merge) or none on one side (a part that ends between the keys).
    """
    from scipy import ndimage
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    la, na = ndimage.label(a)
    lb, nb = ndimage.label(b)
    if na == 0 or nb == 0:
        return [(a, b)]
    ids_a, ids_b = np.arange(1, na + 1), np.arange(1, nb + 1)
    drift = _centroid(a) - _centroid(b)
    ca = np.array(ndimage.center_of_mass(a, la, ids_a)).reshape(na, 2)
    cb = np.array(ndimage.center_of_mass(b, lb, ids_b)).reshape(nb, 2) + drift
    ra = np.sqrt(ndimage.sum_labels(a, la, ids_a) / np.pi)
    rb = np.sqrt(ndimage.sum_labels(b, lb, ids_b) / np.pi)
    near = np.linalg.norm(ca[:, None] - cb[None], axis=2) < (ra[:, None] + rb[None])
    shifted = np.round(_shifted(lb.astype(np.float32), drift)).astype(int) if na > 1 or nb > 1 else lb
    both = (la > 0) & (shifted > 0)
    edges = {(int(i) + 1, int(j) + 1) for i, j in zip(*np.nonzero(near))}
    edges.update(zip(la[both].tolist(), shifted[both].tolist()))
    rows = [i - 1 for i, _ in edges]
    cols = [na + j - 1 for _, j in edges]
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(na + nb, na + nb))
    _, group_of = connected_components(graph, directed=False)
    return [(np.isin(la, [i + 1 for i in range(na) if group_of[i] == g]),
             np.isin(lb, [j + 1 for j in range(nb) if group_of[na + j] == g])) for g in np.unique(group_of)]


def interpolate_pair(a: np.ndarray, b: np.ndarray, ts: Sequence[float], sampling=(1.0, 1.0),
                     method: str = DEFAULT_METHOD) -> list[np.ndarray]:
    """Masks at fractions ``ts`` (0 < t < 1) between two key slices ``a`` and ``b`` (bool, (H, W))."""
    return [field > 0 for field in interpolated_distance(a, b, ts, sampling, method)]


def interpolated_distance(a: np.ndarray, b: np.ndarray, ts: Sequence[float], sampling=(1.0, 1.0),
                          method: str = DEFAULT_METHOD) -> list[np.ndarray]:
    """The interpolated signed distance (mm, inside > 0; float32, (H, W)) at each of ``ts``: the mask
    is where it is positive. -inf outside the working crop (far from both keys), and everywhere
    when both keys are empty. (What a blend with other evidence thresholds; docs/volumes.md.)"""
    if method not in METHODS:
        raise ValueError(f"unknown fill method {method!r}; use one of {', '.join(METHODS)}")
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    ts = list(ts)
    if not (a.any() or b.any()):
        return [np.full(a.shape, -np.inf, np.float32) for _ in ts]
    box = _crop(a, b)
    ca, cb = a[box], b[box]
    if method == "components":  # the union of the groups: the largest of their distances
        crops = [np.full(ca.shape, -np.inf, np.float32) for _ in ts]
        for part_a, part_b in _groups(ca, cb):
            for crop, field in zip(crops, _pair(part_a, part_b, ts, sampling, align=True)):
                np.maximum(crop, field, out=crop)
    else:
        crops = _pair(ca, cb, ts, sampling, align=method == "aligned")
    out = []
    for crop in crops:
        full = np.full(a.shape, -np.inf, np.float32)
        full[box] = crop
        out.append(full)
    return out


def _crop(a: np.ndarray, b: np.ndarray) -> tuple[slice, slice]:
    """A box holding both shapes, padded by how far their centroids move (aligned shapes stay in)."""
    pts = np.argwhere(a | b)
    lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
    drift = np.abs(_centroid(a) - _centroid(b)) if a.any() and b.any() else np.zeros(2)
    pad = np.ceil(drift).astype(int) + MARGIN
    return tuple(slice(max(0, int(lo[i] - pad[i])), min(a.shape[i], int(hi[i] + pad[i]))) for i in range(2))


def checked_keys(mask, keys, axis: int, spacing):
    """-> (mask as bool 3D, axis in 0..2, sorted unique keys, in-plane sampling): the checks every
    fill makes (plain or model-guided) before it touches a slice."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 3:
        raise ValueError(f"fill between needs a 3D mask; got shape {mask.shape}")
    axis = axis % 3
    keys = sorted({int(k) for k in keys})
    if any(not 0 <= k < mask.shape[axis] for k in keys):
        raise ValueError(f"key slices {keys} are outside 0..{mask.shape[axis] - 1}")
    sampling = (1.0, 1.0) if spacing is None else tuple(float(s) for i, s in enumerate(spacing) if i != axis)
    return mask, axis, keys, sampling


def fill_between(mask: np.ndarray, keys: Sequence[int], axis: int = 0, spacing=None,
                 method: str = DEFAULT_METHOD) -> np.ndarray:
    """``mask`` (bool, 3D) with every slice strictly between two consecutive ``keys`` (slice
    indices along ``axis``) filled from those two keys. Keys and slices outside the first..last
    key are returned exactly as given. ``spacing``: the volume's voxel size (its in-plane part is
    used so distances are in mm), or None for square pixels."""
    mask, axis, keys, sampling = checked_keys(mask, keys, axis, spacing)
    out = np.moveaxis(mask.copy(), axis, 0)  # a view of the copy: writes land in it
    for lo, hi in zip(keys, keys[1:]):
        if hi - lo < 2:
            continue
        ts = [(z - lo) / (hi - lo) for z in range(lo + 1, hi)]
        for z, m in zip(range(lo + 1, hi), interpolate_pair(out[lo], out[hi], ts, sampling, method)):
            out[z] = m
    return np.moveaxis(out, 0, axis)


def fill_label_map(labels: np.ndarray, keys: Sequence[int] | None = None, axis: int = 0, spacing=None,
                   method: str = DEFAULT_METHOD, fill_structure=None) -> np.ndarray:
    """Every non-zero label of ``labels`` filled on its own between the key slices.

    ``keys`` None: every slice holding any label is a key for every label (a slice someone
    annotated is annotated for all structures; a structure absent there ends before it).
    Between keys a label's fill is written only where no other label was filled first (labels
    in ascending order), so structures never overwrite one another. ``fill_structure(mask, value,
    keys)``, when given, fills one structure instead of ``fill_between`` (e.g. guided by the model's
    probability: ``fill_guided.py``).
    """
    labels = np.asarray(labels)
    axis = axis % 3
    if keys is None:
        keys = annotated_slices(labels, axis)
    keys = sorted({int(k) for k in keys})
    out = labels.copy()
    moved = np.moveaxis(out, axis, 0)
    key_set = set(keys)
    between = np.array([keys[0] < z < keys[-1] and z not in key_set for z in range(moved.shape[0])]) \
        if keys else np.zeros(moved.shape[0], bool)
    moved[between] = 0
    for value in np.unique(labels[labels != 0]):
        mask = labels == value
        filled = fill_between(mask, keys, axis, spacing, method) if fill_structure is None else \
            fill_structure(mask, int(value), keys)
        filled = np.moveaxis(filled, axis, 0)
        moved[between] = np.where(filled[between] & (moved[between] == 0), value, moved[between])
    return out


def annotated_slices(labels: np.ndarray, axis: int = 0) -> list[int]:
    """Slices along ``axis`` that hold any non-zero label."""
    others = tuple(a for a in range(labels.ndim) if a != axis % labels.ndim)
    return [int(z) for z in np.nonzero(np.asarray(labels).any(axis=others))[0]]
