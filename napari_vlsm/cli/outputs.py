"""What the CLI writes and what it calls it: the output names and the atomic writers.

Every output file is named here, once: ``<stem>__<slug><suffix>`` for a prompt's mask,
``<stem>__<slug>__prob<suffix>`` for its probability map, ``<stem>__labels<suffix>`` and
``<stem>__labels.json`` for a ``--multilabel`` label map and its legend, ``<stem>__statistics.csv``
for ``--statistics``. ``predict`` (in process,
``predict_input.py``) and the batch runner (``batch.py``: which outputs exist; ``batch_tasks.py``:
writing them) both take the names from here, so a resumed batch finds what ``predict`` wrote.
Writers go through ``core.atomic``: an interrupted run never leaves half a file under a final name.

Nothing heavy at import time (no torch, no numpy): ``napari-vlsm --help`` must stay instant.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import VLSMError
from ..core.medical import formats

LABELS = "labels"  # the part of a label map's name where a prompt's slug would be


# ------------------------------------------------------------------------------------ names
def slug(prompt: str, limit: int = 60) -> str:
    """A file-name-safe form of a prompt: 'Left kidney!' -> 'left-kidney' (letters of any script kept)."""
    text = re.sub(r"[^\w]+", "-", prompt.lower(), flags=re.UNICODE).strip("-_")
    return text[:limit].rstrip("-_") or "prompt"


def unique_slugs(prompts) -> list[str]:
    """Slugs that never collide: two prompts with the same slug get -2, -3 ..."""
    seen: dict[str, int] = {}
    out = []
    for prompt in prompts:
        base = slug(prompt)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def unique_stems(paths) -> list[str]:
    """Output stems per input; inputs with the same stem (from different folders) get -2, -3 ..."""
    seen: dict[str, int] = {}
    out = []
    for path in paths:
        name = formats.stem(path)  # scan.nii.gz -> scan; a DICOM folder -> its name
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def output_path(out, stem: str, name: str, suffix: str) -> Path:
    """``out/<stem>__<name><suffix>``: a prompt's mask (``name`` = its slug) or a label map (LABELS)."""
    return Path(out) / f"{stem}__{name}{suffix}"


def probability_path(out, stem: str, name: str, suffix: str) -> Path:
    """``out/<stem>__<slug>__prob<suffix>``: a prompt's float32 probability map (``--save-prob``)."""
    return output_path(out, stem, f"{name}__prob", suffix)


def statistics_path(out, stem: str) -> Path:
    """``out/<stem>__statistics.csv``: ``--statistics``' per-structure table of one input."""
    return output_path(out, stem, "statistics", ".csv")


def legend_path(out, stem: str) -> Path:
    """``out/<stem>__labels.json``: a label map's legend."""
    return output_path(out, stem, LABELS, ".json")


# ---------------------------------------------------------------------------------- writers
def write_png(path: Path, array) -> None:
    import imageio.v3 as iio

    _write(path, lambda tmp: iio.imwrite(tmp, array, extension=".png"))


def write_tiff(path: Path, array, metadata: dict | None = None) -> None:
    """A TIFF that reads back with the array's shape (tifffile's shaped JSON description, which
    also carries ``metadata``: prompt and provenance); zlib-compressed."""
    import tifffile

    # minisblack: a (3, H, W) mask stack must not be stored as an RGB image
    _write(path, lambda tmp: tifffile.imwrite(tmp, array, photometric="minisblack", compression="zlib",
                                              metadata=dict(metadata or {})))


def write_bytes(path: Path, data: bytes) -> None:
    from ..core import atomic

    try:
        atomic.write_bytes_atomic(path, data)
    except OSError as err:
        raise VLSMError(f"cannot write {path}: {err.strerror or err}; check the --out folder") from None


def _write(path: Path, writer) -> None:
    from ..core.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            writer(tmp)
    except OSError as err:
        raise VLSMError(f"cannot write {path}: {err.strerror or err}; check the --out folder") from None


def write_outputs(path, stem, slugs, is_stack, results, args, provenance) -> list[dict]:
    """A 2D image's PNG masks or a TIFF stack's TIFF masks (and ``--save-prob`` maps) and their
    summary records; ``results``: {prompt: Prediction} (2D) or {prompt: (mask, prob)} (stack)."""
    import numpy as np

    out, records = Path(args.out), []
    for (prompt, result), name in zip(results.items(), slugs):
        if is_stack:
            mask, prob = result
            target = output_path(out, stem, name, ".tif")
            write_tiff(target, mask, metadata={"prompt": prompt, **provenance})
        else:
            mask, prob = result.mask.astype(np.uint8) * np.uint8(255), result.probability
            target = output_path(out, stem, name, ".png")
            write_png(target, mask)
        record = {"input": str(path), "prompt": prompt, "path": str(target), "shape": list(mask.shape),
                  "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 6)}
        if args.save_prob:
            prob_path = probability_path(out, stem, name, ".tif")
            write_tiff(prob_path, prob, metadata={"prompt": prompt, **provenance})
            record["probability_path"] = str(prob_path)
        records.append(record)
    return records
