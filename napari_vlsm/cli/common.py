"""Shared pieces of the subcommands: model arguments, input discovery, image reading, mask writing.

Nothing heavy at import time (no torch, no numpy): ``napari-vlsm --help`` must stay instant.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..core.constants import DEFAULT_MODEL, VARIANTS  # noqa: F401 - VARIANTS: the subcommands' choices
from ..core.errors import VLSMError
from ..core.image_files import IMAGE_SUFFIXES, INPUT_SUFFIXES  # noqa: F401 - light: path rules only
from ..core.medical import formats

PROG = "napari-vlsm"
INPUTS = "image files (PNG, JPEG, TIFF), volumes (NIfTI, NRRD, MHA, DICOM series folders or files) or folders"


def error(message) -> None:
    """One line on stderr, the way argparse reports problems."""
    text = " ".join(str(message).split())
    print(f"{PROG}: error: {text}", file=sys.stderr)


def add_model_args(parser, adapter: bool = True) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="SRC",
                        help=f"hub id or local model folder (default: {DEFAULT_MODEL}; offline-first)")
    if adapter:
        parser.add_argument("--adapter", metavar="FILE", help="adapter .safetensors file saved by napari-vlsm")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="auto: CUDA if available, else CPU (default: auto)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="compute precision; auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")


def add_window_arg(parser) -> None:
    from ..core.medical.windows import PRESETS

    parser.add_argument("--window", default="auto", metavar="W",
                        help=f"intensity window, one per volume: {', '.join(PRESETS)} (CT presets in HU, "
                             "percentiles for MR) or lo,hi as --window=-160,240 (default auto: 0.5-99.5 %% of the volume)")


def _is_input_file(path: Path) -> bool:
    return (path.is_file() and not path.name.startswith(".")
            and formats.full_suffix(path) in INPUT_SUFFIXES and formats.full_suffix(path) not in formats.DICOM_SUFFIXES)


def collect_inputs(paths) -> list[Path]:
    """Files as given; a DICOM series folder as one input; other folders expanded to their image
    and volume files (sorted, not recursive) and to the DICOM series folders inside them.

    A path that does not exist, or a folder without inputs, is a usage error (raised before the
    model loads); a file that exists but cannot be decoded is reported later, per file.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir() and formats.is_dicom_folder(path):
            found.append(path)  # one series (read_volume says so if it holds several)
        elif path.is_dir():
            inputs = sorted(p for p in path.iterdir() if _is_input_file(p)
                            or (p.is_dir() and not p.name.startswith(".") and formats.is_dicom_folder(p)))
            if not inputs:
                raise VLSMError(f"folder {path} holds no images or volumes ({', '.join(INPUT_SUFFIXES)}) and no DICOM "
                                "series folder directly inside it; pass the image files or the series folder itself")
            found.extend(inputs)
        elif path.is_file():
            found.append(path)
        else:
            raise VLSMError(f"input {path} does not exist; pass {INPUTS}")
    return list(dict.fromkeys(found))


def read_image(path: Path):
    """An image file as an array (TIFF stacks may come back as a lazy memmap). Raises ImageError."""
    from ..core.image_files import read_image as read

    return read(path)


def read_input(path: Path):
    """An image array, or a MedicalVolume for NIfTI / DICOM / NRRD / MHA (canonical orientation)."""
    from ..core.image_files import read_input as read

    return read(path)


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


def progress(total: int, desc: str):
    """A tqdm bar on stderr, shown on a terminal for more than one input."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="image", file=sys.stderr,
                disable=total < 2 or not sys.stderr.isatty(), leave=False)
