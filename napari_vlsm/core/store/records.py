"""What a correction sample is: its record, the checks on everything written to or read from
meta.json, and the train/validation split rule (the layout is in the package docstring)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .. import validation
from ..errors import PromptError, StoreError

SCHEMA = 1
SPLITS = ("train", "val")
VAL_FRACTION = 0.2
STAMP = "%Y%m%dT%H%M%S%f"
ID_RE = re.compile(r"^(\d{8}T\d{12})-[0-9a-f]{8}$")


class DamagedSampleWarning(UserWarning):
    """A sample directory could not be read; it is skipped (and left on disk for rescue)."""


class Damaged(Exception):
    """Internal: why a sample directory is unreadable."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One correction. ``eq=False``: samples compare by identity (they hold arrays)."""

    id: str
    image: np.ndarray  # (H, W) or (H, W, 3), the dtype it was saved with
    mask: np.ndarray  # bool (H, W)
    proposal: np.ndarray | None  # bool (H, W) or None
    prompts: tuple[str, ...]
    target: str
    source: str
    slice_index: tuple[int, ...] | None
    split: str  # "train" | "val"
    created: str  # ISO 8601, UTC
    window: tuple[float, float] | None = None  # the intensity window used at prediction, if fixed


@dataclass(frozen=True)
class SampleInfo:
    """A correction as a list shows it: its record from meta.json, no pixels (nothing decoded)."""

    id: str
    target: str
    prompts: tuple[str, ...]
    split: str
    source: str
    slice_index: tuple[int, ...] | None
    created: str
    shape: tuple[int, ...]
    proposal: bool = False
    window: tuple[float, float] | None = None

    @classmethod
    def from_meta(cls, meta: dict) -> SampleInfo:
        si, window = meta["slice_index"], meta.get("window")
        return cls(id=meta["id"], target=meta["target"], prompts=tuple(meta["prompts"]), split=meta["split"],
                   source=meta["source"], slice_index=None if si is None else tuple(si), created=meta["created"],
                   shape=tuple(meta["image_shape"]), proposal=bool(meta["proposal"]),
                   window=None if window is None else (float(window[0]), float(window[1])))

    @classmethod
    def of(cls, sample: Sample) -> SampleInfo:
        """The record of a sample already in memory."""
        return cls(id=sample.id, target=sample.target, prompts=sample.prompts, split=sample.split,
                   source=sample.source, slice_index=sample.slice_index, created=sample.created,
                   shape=tuple(sample.image.shape), proposal=sample.proposal is not None, window=sample.window)

    def to_json(self) -> dict:
        """The server's wire form (``SampleInfo(**...)`` reads it back, see ``from_json``)."""
        return {"id": self.id, "target": self.target, "prompts": list(self.prompts), "split": self.split,
                "source": self.source, "slice_index": None if self.slice_index is None else list(self.slice_index),
                "created": self.created, "shape": list(self.shape), "proposal": self.proposal,
                "window": None if self.window is None else list(self.window)}

    @classmethod
    def from_json(cls, doc: dict) -> SampleInfo:
        si, window = doc.get("slice_index"), doc.get("window")
        return cls(id=doc["id"], target=doc["target"], prompts=tuple(doc["prompts"]), split=doc["split"],
                   source=doc.get("source", ""), slice_index=None if si is None else tuple(si),
                   created=doc["created"], shape=tuple(doc.get("shape") or ()), proposal=bool(doc.get("proposal")),
                   window=None if window is None else (float(window[0]), float(window[1])))


def normalize_target(prompt: str) -> str:
    """The target a prompt names: stripped, lowercase, inner whitespace collapsed."""
    return " ".join(str(prompt).split()).lower()


def clean_prompts(prompts) -> tuple[str, ...]:
    return validation.clean_prompts(prompts, PromptError)


def clean_source(source) -> str:
    if source is None:
        return ""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise StoreError(f"source must be text (a file path or layer name); got {source!r}")
    return source


def clean_slice_index(slice_index) -> tuple[int, ...] | None:
    if slice_index is None:
        return None
    try:
        items = [slice_index] if np.ndim(slice_index) == 0 else list(np.asarray(slice_index).ravel())
    except ValueError:  # ragged nesting
        items = [slice_index]
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
            raise StoreError(
                f"slice_index must be a non-negative int or a list of them (the slice's position "
                f"in the stack); got {slice_index!r}"
            )
        out.append(int(v))
    return tuple(out)


def clean_window(window) -> tuple[float, float] | None:
    return validation.check_window(window, StoreError)


def want_val(total: int) -> int:
    """How many of a target's ``total`` samples should be validation samples."""
    if total < 2:
        return 0
    return max(1, round(VAL_FRACTION * total))


def decide_split(n_existing: int, n_val: int) -> str:
    """The split of a target's next sample, given its current sample and validation counts."""
    return "val" if n_val < want_val(n_existing + 1) else "train"


def check_meta(meta, dirname: str) -> dict:
    """Validate meta.json read back from disk; raise Damaged. Nothing in it is used as a path."""
    if not isinstance(meta, dict):
        raise Damaged("meta.json is not an object")
    schema = meta.get("schema")
    if type(schema) is not int:
        raise Damaged(f"schema is {schema!r}")
    if schema > SCHEMA:
        raise Damaged(f"schema {schema} was written by a newer napari-vlsm; upgrade to read it")
    if schema != SCHEMA:
        raise Damaged(f"unknown schema {schema!r}")
    if meta.get("id") != dirname:
        raise Damaged(f"id {meta.get('id')!r} does not match the folder name {dirname!r}")
    prompts = meta.get("prompts")
    if (
        not isinstance(prompts, list)
        or not prompts
        or not all(isinstance(p, str) and p.strip() for p in prompts)
    ):
        raise Damaged(f"prompts is {prompts!r}")
    target = meta.get("target")
    if target != normalize_target(prompts[0]):
        raise Damaged(f"target {target!r} does not match the first prompt {prompts[0]!r}")
    if not isinstance(meta.get("source"), str):
        raise Damaged(f"source is {meta.get('source')!r}")
    si = meta.get("slice_index")
    if si is not None and not (
        isinstance(si, list) and all(type(v) is int and v >= 0 for v in si)
    ):
        raise Damaged(f"slice_index is {si!r}")
    if meta.get("split") not in SPLITS:
        raise Damaged(f"split is {meta.get('split')!r}")
    created = meta.get("created")
    try:
        datetime.fromisoformat(created)
    except (TypeError, ValueError):
        raise Damaged(f"created is {created!r}") from None
    shape = meta.get("image_shape")
    if not (
        isinstance(shape, list)
        and len(shape) in (2, 3)
        and all(type(v) is int and v > 0 for v in shape)
        and (len(shape) == 2 or shape[2] == 3)
    ):
        raise Damaged(f"image_shape is {shape!r}")
    try:
        dtype = np.dtype(meta.get("image_dtype"))
    except (TypeError, ValueError):
        raise Damaged(f"image_dtype is {meta.get('image_dtype')!r}") from None
    if not isinstance(meta.get("image_dtype"), str) or dtype.kind not in "biuf":
        raise Damaged(f"image_dtype is {meta.get('image_dtype')!r}")
    if type(meta.get("proposal")) is not bool:
        raise Damaged(f"proposal is {meta.get('proposal')!r}")
    window = meta.get("window")
    if window is not None:
        try:
            clean_window(window)
        except StoreError:
            raise Damaged(f"window is {window!r}") from None
    return meta


def replace_key(meta: dict):
    """Replacement key: samples of the same target, source and slice replace each other."""
    if not meta["source"]:
        return None
    si = meta["slice_index"]
    return (meta["target"], meta["source"], None if si is None else tuple(si))
