"""Shared pieces of the subcommands: model arguments, input discovery, image reading, mask writing.

Nothing heavy at import time (no torch, no numpy): ``napari-vlsm --help`` must stay instant.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..core.errors import ImageError, VLSMError

PROG = "napari-vlsm"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
# Kept in sync with core.adapters.VARIANTS by a test (importing that package would load torch).
VARIANTS = ("none", "shallow-v", "shallow-vl", "shallow-vlc", "dense-v", "dense-vl", "dense-vlc")
DEFAULT_MODEL = "CIDAS/clipseg-rd64-refined"


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


def make_segmenter(args, variant: str = "none"):
    if getattr(args, "server", None):  # --server URL: the engine runs there (cli/remote.py)
        from .remote import remote_segmenter

        return remote_segmenter(args)
    from ..core.engine import Segmenter

    return Segmenter(args.model, adapter=getattr(args, "adapter", None), variant=variant,
                     device=args.device, precision=args.precision)


def collect_inputs(paths) -> list[Path]:
    """Files as given, folders expanded to their image files (sorted, not recursive).

    A path that does not exist, or a folder without images, is a usage error (raised before the
    model loads); a file that exists but cannot be decoded is reported later, per file.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not p.name.startswith("."))
            if not images:
                raise VLSMError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise VLSMError(f"input {path} does not exist; pass image files (PNG, JPEG, TIFF) or folders")
    return list(dict.fromkeys(found))


def _read_tiff(path: Path):
    import numpy as np
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        # RGB stored as separate planes reads as (3|4, H, W). Old tifffile versions tagged any
        # (3|4, H, W) array as RGB, so signed/float data (CT, MRI) with that tag stays a stack.
        planar_rgb = page.photometric == 2 and page.planarconfig == 2 and page.dtype.kind == "u"
    try:
        data = tifffile.memmap(path, mode="r")  # uncompressed: read lazily, slice by slice
    except Exception:
        data = tifffile.imread(path)
    if planar_rgb and data.ndim == 3 and data.shape[0] in (3, 4) and data.shape[-1] not in (3, 4):
        data = np.moveaxis(data, 0, -1)
    return data


def read_image(path: Path):
    """An image file as an array (TIFF stacks may come back as a lazy memmap). Raises ImageError."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            data = _read_tiff(path)
        else:  # imageio's v3 API (what skimage.io wraps), straight to Pillow: no legacy plugin scan
            import imageio.v3 as iio

            data = iio.imread(path)
    except Exception as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ImageError(f"cannot read {path}: {reason}") from None
    if data.ndim == 3 and data.shape[-1] == 2:  # grey + alpha PNG: keep the grey channel
        data = data[..., 0]
    return data


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
        seen[path.stem] = seen.get(path.stem, 0) + 1
        out.append(path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}")
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
