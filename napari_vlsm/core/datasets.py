"""Image/mask folders and medvlsm-style annotation files -> samples for finetune and evaluate.

A dataset folder ``DIR`` holds ``images/`` and ``masks/`` whose files share a stem (PNG, JPEG or
TIFF; or volumes: NIfTI, NRRD, MHA, DICOM series folders in images/ with label volumes in masks/,
see ``volume_datasets.py``). A mask pixel is foreground when it is non-zero — except in JPEG masks, whose compression
noise would turn into foreground: those are thresholded at half their range. An annotation file
(``--ann``) is a JSON list of entries naming an image, its mask and prompt phrasings, as in the
medvlsm repository: ``{"img_name": "x.jpg", "mask_name": "x.png", "prompts": {"p0": "polyp",
"p1": "pink round polyp"}}``; names resolve inside ``DIR/images`` and ``DIR/masks`` and never
outside ``DIR``.

Samples read their files when ``.image`` / ``.mask`` are accessed, so a folder of 1000 large
photographs costs no memory until it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError, VLSMError
from .image_files import IMAGE_SUFFIXES, read_image
from .medical import formats
from .volume_datasets import VolumeSample

INPUT_SUFFIXES = IMAGE_SUFFIXES + tuple(s for s in formats.VOLUME_SUFFIXES if s not in formats.DICOM_SUFFIXES)
JPEG_SUFFIXES = (".jpg", ".jpeg")
IMAGE_KEYS = ("img_name", "image_name", "image", "img", "file_name", "filename", "image_path", "img_path")
MASK_KEYS = ("mask_name", "mask", "mask_path", "seg_name", "label_name", "label", "annotation")
PROMPT_KEYS = ("prompts", "prompt", "texts", "text", "sentences", "captions", "caption")
LIST_KEYS = ("annotations", "data", "items", "samples", "images")
SHOWN = 10  # names listed in an error message


class DataError(VLSMError):
    """A dataset folder or annotation file cannot be used as it is."""


def read_array(path: Path) -> np.ndarray:
    """One 2D image file as an array (a multi-page TIFF is refused: pass volumes as NIfTI)."""
    data = np.asarray(read_image(path))
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[-1] not in (3, 4)):
        raise ImageError(f"{path} holds an array of shape {data.shape}, not one 2D image; pass 2D slices, "
                         "or the volume as NIfTI with a NIfTI label volume")
    return data


def read_mask(path: Path) -> np.ndarray:
    data = read_array(path)
    if data.ndim == 3:
        data = data[..., :3].max(axis=-1)  # colour masks: any colour = foreground (alpha ignored)
    if path.suffix.lower() in JPEG_SUFFIXES:
        return data >= (128 if data.dtype == np.uint8 else data.max() / 2)
    return data != 0


@dataclass(frozen=True)
class FileSample:
    """An image/mask pair on disk with its prompt phrasings (``.image``/``.mask`` read on access)."""

    name: str
    image_path: Path
    mask_path: Path
    prompts: tuple[str, ...]

    @property
    def image(self) -> np.ndarray:
        return read_array(self.image_path)

    @property
    def mask(self) -> np.ndarray:
        return read_mask(self.mask_path)


def _listing(names) -> str:
    names = sorted(names)
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _is_input(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return formats.is_dicom_folder(path)  # a DICOM series: one volume named after its folder
    return path.is_file() and formats.full_suffix(path) in INPUT_SUFFIXES


def _sample(name: str, image: Path, mask: Path, prompts: tuple[str, ...], window):
    if formats.is_volume_path(image):
        return VolumeSample(name, image, mask, prompts, window)
    return FileSample(name, image, mask, prompts)


def _files_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    twice = set()
    for path in sorted(folder.iterdir()):
        if _is_input(path):
            stem = formats.stem(path)  # case1.nii.gz -> case1
            if stem in found:
                twice.add(stem)
            found[stem] = path
    if twice:
        raise DataError(f"{folder} holds several files with the stem(s) {_listing(twice)}; keep one per stem")
    return found


def _check_root(root) -> tuple[Path, Path, Path]:
    root = Path(root).expanduser()
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DataError(f"{root} must hold two folders, images/ and masks/, with files of matching names "
                        "(e.g. images/case1.png and masks/case1.png)")
    return root, images, masks


def _clean(prompts) -> tuple[str, ...]:
    if prompts is None:
        return ()
    if isinstance(prompts, str):
        prompts = [prompts]
    elif isinstance(prompts, dict):
        prompts = list(prompts.values())  # medvlsm: {"p0": ..., "p1": ...}, values may be lists
    flat: list[str] = []
    for p in prompts:
        flat.extend(p if isinstance(p, (list, tuple)) else [p])
    return tuple(dict.fromkeys(str(p).strip() for p in flat if isinstance(p, str) and p.strip()))


def read_folder(root, prompts: Sequence[str] | None = None, ann=None, window="auto") -> list:
    """Samples of ``root`` (images/ + masks/), sorted by name: FileSample for 2D pairs,
    VolumeSample for volume pairs (``window``: their intensity window, see medical/windows.py).

    ``prompts`` (e.g. from ``--prompt``) are used for every sample and win over an annotation
    file's phrasings; without them each annotation entry must carry its own.
    """
    root, images, masks = _check_root(root)
    given = _clean(prompts)
    if ann is not None:
        return _read_annotated(root, images, masks, Path(ann).expanduser(), given, window)
    if not given:
        raise DataError("no prompt: pass --prompt TEXT (e.g. --prompt polyp), or an --ann file with prompts")
    imgs, msks = _files_by_stem(images), _files_by_stem(masks)
    if not imgs:
        raise DataError(f"{images} holds no images ({', '.join(INPUT_SUFFIXES)}, DICOM series folders)")
    lonely_images, lonely_masks = set(imgs) - set(msks), set(msks) - set(imgs)
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            parts.append(f"images without a mask: {_listing(lonely_images)}")
        if lonely_masks:
            parts.append(f"masks without an image: {_listing(lonely_masks)}")
        raise DataError(f"{root}: {'; '.join(parts)}. Give every image a mask of the same stem in masks/ "
                        "(or list the pairs in an --ann file)")
    return [_sample(stem, imgs[stem], msks[stem], given, window) for stem in sorted(imgs)]


def _pick(entry: dict, keys: tuple[str, ...]):
    for key in keys:
        if key in entry:
            return entry[key]
    return None


def _resolve(root: Path, folder: Path, name, what: str, where: str) -> Path:
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{where} has no {what} name (keys tried: "
                        f"{', '.join(IMAGE_KEYS if what == 'image' else MASK_KEYS)})")
    # Checked on the written path, not the resolved one: ".." and absolute names cannot leave DIR,
    # while images/ may still be a link the user made to where the files really are.
    top = os.path.abspath(root)
    rel = Path(name.strip())
    for cand in (folder / rel, root / rel, folder / rel.name):
        path = os.path.normpath(os.path.abspath(cand))
        if os.path.commonpath([top, path]) != top:
            raise DataError(f"{where}: {what} {name!r} points outside {root}; annotation files may only name "
                            "files inside the dataset folder")
        if os.path.isfile(path):
            return Path(path)
    raise DataError(f"{where}: {what} {name!r} was not found in {folder}")


def _entries(ann: Path) -> list:
    try:
        data = json.loads(ann.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the annotation file {ann}: {err}") from None
    if isinstance(data, dict):
        lists = [data[k] for k in LIST_KEYS if isinstance(data.get(k), list)]
        data = lists[0] if lists else data
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise DataError(f"{ann} must hold a JSON list of entries such as "
                        '{"img_name": "x.jpg", "mask_name": "x.png", "prompts": {"p0": "polyp"}}')
    if not data:
        raise DataError(f"{ann} lists no entries")
    return data


def _read_annotated(root: Path, images: Path, masks: Path, ann: Path, given: tuple[str, ...], window) -> list:
    samples, unprompted, seen = [], [], set()
    for i, entry in enumerate(_entries(ann)):
        where = f"{ann.name} entry {i}"
        image = _resolve(root, images, _pick(entry, IMAGE_KEYS), "image", where)
        mask = _resolve(root, masks, _pick(entry, MASK_KEYS), "mask", where)
        phrasings = given or _clean(_pick(entry, PROMPT_KEYS))
        stem = formats.stem(image)
        name = stem if stem not in seen else f"{stem}#{i}"
        seen.add(name)
        if not phrasings:
            unprompted.append(name)
        samples.append(_sample(name, image, mask, phrasings, window))
    if unprompted:
        raise DataError(f"{ann}: no prompts for {_listing(unprompted)} (keys tried: {', '.join(PROMPT_KEYS)}); "
                        "add them or pass --prompt TEXT for all")
    return sorted(samples, key=lambda s: s.name)


def _unit_hash(name: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_train_val(samples: Sequence, val_fraction: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """A deterministic split by a hash of each sample's name: a sample keeps its side when others are
    added or removed. With two or more samples both sides get at least one; one sample trains."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1); got {val_fraction!r}")
    samples = list(samples)
    keyed = sorted(samples, key=lambda s: _unit_hash(str(getattr(s, "name", s)), seed))
    val = [s for s in keyed if _unit_hash(str(getattr(s, "name", s)), seed) < val_fraction]
    if len(samples) < 2:
        val = []  # a single sample trains (and the result says its score is not held out)
    elif val_fraction > 0 and not val:
        val = keyed[:1]
    elif len(val) == len(samples):
        val = val[:-1]
    chosen = {id(s) for s in val}
    return [s for s in samples if id(s) not in chosen], [s for s in samples if id(s) in chosen]

