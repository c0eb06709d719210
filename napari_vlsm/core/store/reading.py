"""Reading the store back: every sample folder checked before it is trusted, damaged ones skipped
with a warning (never deleted), and a replace cut by a crash resolved to its newest sample."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import StoreError
from .files import read_png_mask
from .records import (
    ID_RE,
    Damaged,
    DamagedSampleWarning,
    Sample,
    check_meta,
    replace_key,
)


def read_metas(samples_dir: Path) -> list[tuple[Path, dict]]:
    """Every readable sample's validated meta, newest last; damaged ones warned about."""
    out = []
    try:
        names = sorted(os.listdir(samples_dir))
    except OSError as err:
        raise StoreError(
            f"cannot read the correction store at {samples_dir}: {err.strerror or err}"
        ) from err
    for name in names:
        if name.startswith("."):
            continue  # .tmp- (uncommitted), .trash- (removed), .DS_Store, ...
        path = samples_dir / name
        if not ID_RE.match(name):
            warnings.warn(
                f"ignoring {path}: not a correction sample folder",
                DamagedSampleWarning,
                stacklevel=3,
            )
            continue
        try:
            raw = (path / "meta.json").read_bytes()
        except FileNotFoundError:
            if not path.exists():
                continue  # removed by another process since listdir
            warn_damaged(path, "meta.json is missing")
            continue
        except OSError as err:
            warn_damaged(path, f"meta.json cannot be read ({err})")
            continue
        try:
            meta = check_meta(json.loads(raw), name)
            for fname in ("image.tif", "mask.png") + (("proposal.png",) if meta["proposal"] else ()):
                if not (path / fname).is_file():
                    raise Damaged(f"{fname} is missing")
        except Exception as err:  # bad JSON or bad values: skip the sample, never crash
            if path.exists():
                reason = str(err) if isinstance(err, Damaged) else f"{type(err).__name__}: {err}"
                warn_damaged(path, reason)
            continue
        out.append((path, meta))
    return out

def warn_damaged(path: Path, reason: str) -> None:
    warnings.warn(
        f"skipping damaged correction sample {path}: {reason}. It is left on disk; move it "
        "away or delete it once you have checked it",
        DamagedSampleWarning,
        stacklevel=4,
    )

def newest_per_key(metas: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """Drop samples shadowed by a newer one with the same key (a replace cut by a crash)."""
    newest: dict = {}
    for _path, meta in metas:  # sorted by id = by time
        k = replace_key(meta)
        if k is not None:
            newest[k] = meta["id"]
    return [(p, m) for p, m in metas if replace_key(m) is None or newest[replace_key(m)] == m["id"]]


def load_sample(path: Path, meta: dict) -> Sample:
    import tifffile

    shape = tuple(meta["image_shape"])
    image = np.asarray(tifffile.imread(path / "image.tif"))
    if image.shape != shape or image.dtype != np.dtype(meta["image_dtype"]):
        raise Damaged(
            f"image.tif is {image.dtype} {image.shape}, meta.json says "
            f"{meta['image_dtype']} {shape}"
        )
    mask = read_png_mask(path / "mask.png", shape[:2])
    proposal = read_png_mask(path / "proposal.png", shape[:2]) if meta["proposal"] else None
    si = meta["slice_index"]
    window = meta.get("window")
    return Sample(
        id=meta["id"],
        image=image,
        mask=mask,
        proposal=proposal,
        prompts=tuple(meta["prompts"]),
        target=meta["target"],
        source=meta["source"],
        slice_index=None if si is None else tuple(si),
        split=meta["split"],
        created=meta["created"],
        window=None if window is None else (float(window[0]), float(window[1])),
    )
