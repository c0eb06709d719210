"""CorrectionStore: a clinician's corrected masks, saved so that none is ever lost or damaged.

A correction is hours of expert work, so the store is append-only, every write is committed by one
atomic directory rename, and reading never trusts what it finds on disk.

Layout::

    <root>/                                default: platformdirs.user_data_dir("napari-vlsm")
      store.json                                    / "projects" / "default"
      .lock                                the inter-process lock (fcntl.flock)
      samples/
        <sample_id>/                       sample_id = "<yyyymmddThhmmssffffff UTC>-<8 hex>"
          image.tif                        the 2D slice, lossless, its own dtype (grey or RGB)
          mask.png                         the corrected mask, uint8 0/255
          proposal.png                     the model's proposal it corrects (optional), 0/255
          meta.json                        {schema, id, prompts, target, source, slice_index,
                                            split, created, image_shape, image_dtype, proposal,
                                            window}
        .tmp-<sample_id>/                  a sample being written (never read)
        .trash-<sample_id>/                a sample being removed (never read)

Atomicity: ``add`` writes every file of a sample into ``samples/.tmp-<id>/`` (each file fsynced,
then the directory), then renames the directory to ``samples/<id>`` and fsyncs ``samples/``. The
rename is the commit point: a crash before it leaves a ``.tmp-`` directory that loading ignores
(and deletes once it is an hour old); after it, the sample is complete. ``add`` returns only after
the commit, so an acknowledged correction is durable. ``remove`` renames to ``.trash-<id>`` first.

Split: decided once per sample when it is added, saved in meta.json, never re-drawn (so a sample
used for validation never leaks into training). Per target, the first sample is "train" (training
can start from one correction), the second is "val", and afterwards a sample is "val" while the
target has fewer than ``round(0.2 * total)`` validation samples (about 20 %).

Replace: adding with the same (target, source, slice_index) as an existing sample (non-empty
source) replaces it and keeps its split. The new sample is committed first and the old one removed
afterwards; a crash in between leaves both and loading keeps the newest (ids sort by time).

Concurrency: ``add`` and ``remove`` hold an exclusive ``fcntl.flock`` on ``<root>/.lock`` (two
napari windows, the CLI and a training job can share a store); the split decision, the id (always
later than every committed id) and the commit happen under it. Readers take no lock: thanks to the
rename they see a sample entirely or not at all. Damaged sample directories are skipped with a
:class:`DamagedSampleWarning`, never a crash, and never deleted: a person may be able to rescue them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .atomic import fsync_dir
from .errors import PromptError, StoreError
from .preprocess import as_2d_image, as_binary_mask

__all__ = ["CorrectionStore", "Sample", "DamagedSampleWarning", "normalize_target", "default_root"]

SCHEMA = 1
SPLITS = ("train", "val")
VAL_FRACTION = 0.2
STALE_TMP_S = 3600  # a .tmp- dir this old belongs to a writer that died
_STAMP = "%Y%m%dT%H%M%S%f"
_ID_RE = re.compile(r"^(\d{8}T\d{12})-[0-9a-f]{8}$")


class DamagedSampleWarning(UserWarning):
    """A sample directory could not be read; it is skipped (and left on disk for rescue)."""


class _Damaged(Exception):
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


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-vlsm")) / "projects" / "default"


def normalize_target(prompt: str) -> str:
    """The target a prompt names: stripped, lowercase, inner whitespace collapsed."""
    return " ".join(str(prompt).split()).lower()


def _clean_prompts(prompts) -> tuple[str, ...]:
    if isinstance(prompts, str):
        prompts = [prompts]
    try:
        items = list(prompts)
    except TypeError:
        raise PromptError(f"prompts must be a string or a list of strings; got {prompts!r}") from None
    if not items:
        raise PromptError("no prompt given; pass at least one text prompt, e.g. 'liver'")
    out = []
    for p in items:
        if not isinstance(p, str):
            raise PromptError(f"prompt {p!r} is not text; pass prompts as strings, e.g. 'liver'")
        if not p.strip():
            raise PromptError(f"prompt {p!r} is empty; type what to segment, e.g. 'liver'")
        out.append(p.strip())
    return tuple(out)


def _clean_source(source) -> str:
    if source is None:
        return ""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise StoreError(f"source must be text (a file path or layer name); got {source!r}")
    return source


def _clean_slice_index(slice_index) -> tuple[int, ...] | None:
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


def _clean_window(window) -> tuple[float, float] | None:
    if window is None:
        return None
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        raise StoreError(f"window must be two numbers (low, high) or None; got {window!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise StoreError(f"window must be finite with low < high; got {window!r}")
    return (lo, hi)


def _want_val(total: int) -> int:
    """How many of a target's ``total`` samples should be validation samples."""
    if total < 2:
        return 0
    return max(1, round(VAL_FRACTION * total))


def decide_split(n_existing: int, n_val: int) -> str:
    """The split of a target's next sample, given its current sample and validation counts."""
    return "val" if n_val < _want_val(n_existing + 1) else "train"


# ----------------------------------------------------------------------------- low-level I/O


def _write_durable(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist), write ``data``, fsync. The single point where bytes hit
    the disk, so tests can simulate a full disk here."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: temp file + fsync + os.replace + fsync of the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        _write_durable(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _encode_tif(image: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    photometric = "rgb" if image.ndim == 3 else "minisblack"
    # zlib (deflate) is lossless and built into tifffile (no imagecodecs needed).
    tifffile.imwrite(buf, image, photometric=photometric, compression="zlib")
    return buf.getvalue()


def _encode_png(mask: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", mask.astype(np.uint8) * np.uint8(255), extension=".png")


def _read_png_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    import imageio.v3 as iio

    arr = np.asarray(iio.imread(path, extension=".png"))
    if arr.dtype != np.uint8 or arr.shape != shape:
        raise _Damaged(f"{path.name} is {arr.dtype} {arr.shape}, expected uint8 {shape}")
    if not np.isin(arr, (0, 255)).all():
        raise _Damaged(f"{path.name} holds values other than 0 and 255")
    return arr == 255


def _os_error_message(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full; free some space"
    if err.errno == errno.EDQUOT:
        return "the disk quota is exceeded; free some space"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable; fix its permissions or choose another store folder"
    return "check the folder, or choose another store folder"


# ----------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (blocking). flock locks belong to the open file,
    so two threads or two processes each opening the file exclude each other."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            import msvcrt

            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- metadata


def _check_meta(meta, dirname: str) -> dict:
    """Validate meta.json read back from disk; raise _Damaged. Nothing in it is used as a path."""
    if not isinstance(meta, dict):
        raise _Damaged("meta.json is not an object")
    schema = meta.get("schema")
    if type(schema) is not int:
        raise _Damaged(f"schema is {schema!r}")
    if schema > SCHEMA:
        raise _Damaged(f"schema {schema} was written by a newer napari-vlsm; upgrade to read it")
    if schema != SCHEMA:
        raise _Damaged(f"unknown schema {schema!r}")
    if meta.get("id") != dirname:
        raise _Damaged(f"id {meta.get('id')!r} does not match the folder name {dirname!r}")
    prompts = meta.get("prompts")
    if (
        not isinstance(prompts, list)
        or not prompts
        or not all(isinstance(p, str) and p.strip() for p in prompts)
    ):
        raise _Damaged(f"prompts is {prompts!r}")
    target = meta.get("target")
    if target != normalize_target(prompts[0]):
        raise _Damaged(f"target {target!r} does not match the first prompt {prompts[0]!r}")
    if not isinstance(meta.get("source"), str):
        raise _Damaged(f"source is {meta.get('source')!r}")
    si = meta.get("slice_index")
    if si is not None and not (
        isinstance(si, list) and all(type(v) is int and v >= 0 for v in si)
    ):
        raise _Damaged(f"slice_index is {si!r}")
    if meta.get("split") not in SPLITS:
        raise _Damaged(f"split is {meta.get('split')!r}")
    created = meta.get("created")
    try:
        datetime.fromisoformat(created)
    except (TypeError, ValueError):
        raise _Damaged(f"created is {created!r}") from None
    shape = meta.get("image_shape")
    if not (
        isinstance(shape, list)
        and len(shape) in (2, 3)
        and all(type(v) is int and v > 0 for v in shape)
        and (len(shape) == 2 or shape[2] == 3)
    ):
        raise _Damaged(f"image_shape is {shape!r}")
    try:
        dtype = np.dtype(meta.get("image_dtype"))
    except (TypeError, ValueError):
        raise _Damaged(f"image_dtype is {meta.get('image_dtype')!r}") from None
    if not isinstance(meta.get("image_dtype"), str) or dtype.kind not in "biuf":
        raise _Damaged(f"image_dtype is {meta.get('image_dtype')!r}")
    if type(meta.get("proposal")) is not bool:
        raise _Damaged(f"proposal is {meta.get('proposal')!r}")
    window = meta.get("window")
    if window is not None:
        try:
            _clean_window(window)
        except StoreError:
            raise _Damaged(f"window is {window!r}") from None
    return meta


def _key(meta: dict):
    """Replacement key: samples of the same target, source and slice replace each other."""
    if not meta["source"]:
        return None
    si = meta["slice_index"]
    return (meta["target"], meta["source"], None if si is None else tuple(si))


# ----------------------------------------------------------------------------- the store


class CorrectionStore:
    """Crash-safe, append-only store of correction samples with a persisted train/val split."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.samples_dir = self.root / "samples"
        try:
            self.samples_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create the correction store at {self.root}: {err.strerror or err}; "
                f"{_os_error_message(err)}"
            ) from err
        self._init_marker()
        self._clean_leftovers()

    def __repr__(self) -> str:
        return f"CorrectionStore({str(self.root)!r})"

    # -- set-up ------------------------------------------------------------------------------

    def _init_marker(self) -> None:
        marker = self.root / "store.json"
        try:
            info = json.loads(marker.read_bytes())
            schema = info.get("schema") if isinstance(info, dict) else None
        except FileNotFoundError:
            schema = None
        except (OSError, ValueError):
            warnings.warn(
                f"{marker} is damaged; rewriting it (the samples are not affected)",
                DamagedSampleWarning,
                stacklevel=3,
            )
            schema = None
        if type(schema) is int and schema > SCHEMA:
            raise StoreError(
                f"the correction store at {self.root} has schema {schema}, written by a newer "
                "napari-vlsm; upgrade napari-vlsm or choose another store folder"
            )
        if type(schema) is int and schema == SCHEMA:
            return
        data = json.dumps(
            {"schema": SCHEMA, "kind": "napari-vlsm correction store"}, indent=1
        ).encode()
        try:
            _write_atomic(marker, data)
        except OSError as err:
            raise StoreError(
                f"cannot write to the correction store at {self.root}: "
                f"{err.strerror or err}; {_os_error_message(err)}"
            ) from err

    def _clean_leftovers(self) -> None:
        """Delete .trash- dirs (already removed logically) and .tmp- dirs of dead writers."""
        now = time.time()
        try:
            entries = list(os.scandir(self.samples_dir))
        except OSError:
            return
        for entry in entries:
            stale_tmp = False
            if entry.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):
                    stale_tmp = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_S
            if entry.name.startswith(".trash-") or stale_tmp:
                shutil.rmtree(entry.path, ignore_errors=True)

    # -- reading -----------------------------------------------------------------------------

    def _read_metas(self) -> list[tuple[Path, dict]]:
        """Every readable sample's validated meta, newest last; damaged ones warned about."""
        out = []
        try:
            names = sorted(os.listdir(self.samples_dir))
        except OSError as err:
            raise StoreError(
                f"cannot read the correction store at {self.samples_dir}: {err.strerror or err}"
            ) from err
        for name in names:
            if name.startswith("."):
                continue  # .tmp- (uncommitted), .trash- (removed), .DS_Store, ...
            path = self.samples_dir / name
            if not _ID_RE.match(name):
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
                self._warn_damaged(path, "meta.json is missing")
                continue
            except OSError as err:
                self._warn_damaged(path, f"meta.json cannot be read ({err})")
                continue
            try:
                meta = _check_meta(json.loads(raw), name)
                for fname in ("image.tif", "mask.png") + (("proposal.png",) if meta["proposal"] else ()):
                    if not (path / fname).is_file():
                        raise _Damaged(f"{fname} is missing")
            except Exception as err:  # bad JSON or bad values: skip the sample, never crash
                if path.exists():
                    reason = str(err) if isinstance(err, _Damaged) else f"{type(err).__name__}: {err}"
                    self._warn_damaged(path, reason)
                continue
            out.append((path, meta))
        return out

    @staticmethod
    def _warn_damaged(path: Path, reason: str) -> None:
        warnings.warn(
            f"skipping damaged correction sample {path}: {reason}. It is left on disk; move it "
            "away or delete it once you have checked it",
            DamagedSampleWarning,
            stacklevel=4,
        )

    @staticmethod
    def _newest_per_key(metas: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
        """Drop samples shadowed by a newer one with the same key (a replace cut by a crash)."""
        newest: dict = {}
        for path, meta in metas:  # sorted by id = by time
            k = _key(meta)
            if k is not None:
                newest[k] = meta["id"]
        return [(p, m) for p, m in metas if _key(m) is None or newest[_key(m)] == m["id"]]

    def _live_metas(self) -> list[tuple[Path, dict]]:
        return self._newest_per_key(self._read_metas())

    def _load(self, path: Path, meta: dict) -> Sample:
        import tifffile

        shape = tuple(meta["image_shape"])
        image = np.asarray(tifffile.imread(path / "image.tif"))
        if image.shape != shape or image.dtype != np.dtype(meta["image_dtype"]):
            raise _Damaged(
                f"image.tif is {image.dtype} {image.shape}, meta.json says "
                f"{meta['image_dtype']} {shape}"
            )
        mask = _read_png_mask(path / "mask.png", shape[:2])
        proposal = _read_png_mask(path / "proposal.png", shape[:2]) if meta["proposal"] else None
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

    def samples(self, target: str | None = None, split: str | None = None) -> list[Sample]:
        """All readable samples (optionally of one target and/or split), sorted by id (= time).

        Damaged samples are skipped with a :class:`DamagedSampleWarning`."""
        if split is not None and split not in SPLITS:
            raise StoreError(f"split must be 'train', 'val' or None; got {split!r}")
        want = None if target is None else normalize_target(target)
        out = []
        for path, meta in self._live_metas():
            if (want is not None and meta["target"] != want) or (split is not None and meta["split"] != split):
                continue
            try:
                out.append(self._load(path, meta))
            except FileNotFoundError:
                if path.exists():
                    self._warn_damaged(path, "a file is missing")
            except Exception as err:  # any decoder error on a damaged file: skip, never crash
                self._warn_damaged(path, f"{type(err).__name__}: {err}")
        return out

    def counts(self, target: str | None = None) -> dict[str, int]:
        """``{"train": n, "val": m}`` over all targets or one (reads metadata only)."""
        want = None if target is None else normalize_target(target)
        counts = {"train": 0, "val": 0}
        for _, meta in self._live_metas():
            if want is None or meta["target"] == want:
                counts[meta["split"]] += 1
        return counts

    def targets(self) -> list[str]:
        """The targets that have at least one sample, sorted."""
        return sorted({meta["target"] for _, meta in self._live_metas()})

    # -- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, action: str) -> Iterator[None]:
        try:
            lock = _exclusive_lock(self.root / ".lock")
            lock.__enter__()
        except OSError as err:
            raise StoreError(
                f"cannot {action}: the correction store at {self.root} cannot be locked "
                f"({err.strerror or err}); {_os_error_message(err)}"
            ) from err
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    @staticmethod
    def _new_id(now: datetime, committed: list[str]) -> str:
        """A sortable unique id, later than every committed one even if the clock went back
        (so that "newest wins" on a replace cut by a crash always picks the replacement)."""
        stamp = now.strftime(_STAMP)
        latest = max((m.group(1) for n in committed if (m := _ID_RE.match(n))), default="")
        if stamp <= latest:
            stamp = (datetime.strptime(latest, _STAMP) + timedelta(microseconds=1)).strftime(_STAMP)
        return f"{stamp}-{uuid.uuid4().hex[:8]}"

    def add(
        self,
        image,
        mask,
        prompts,
        proposal=None,
        source: str = "",
        slice_index=None,
        window=None,
    ) -> Sample:
        """Save one correction; returns once it is durable on disk (after the commit rename).

        ``source`` (file path or layer name) and ``slice_index`` identify where the slice came
        from: a second correction of the same target on the same slice replaces the first (and
        keeps its split). ``window`` is the intensity window the prediction used, if fixed (e.g.
        one window per volume), so training can normalise the slice the same way.
        """
        # Validate and encode everything before touching the disk.
        img = np.array(as_2d_image(image), copy=True, order="C")
        msk = as_binary_mask(mask, shape=img.shape[:2])
        prop = None if proposal is None else as_binary_mask(proposal, shape=img.shape[:2])
        clean_prompts = _clean_prompts(prompts)
        target = normalize_target(clean_prompts[0])
        source = _clean_source(source)
        si = _clean_slice_index(slice_index)
        win = _clean_window(window)
        files = {"image.tif": _encode_tif(img), "mask.png": _encode_png(msk)}
        if prop is not None:
            files["proposal.png"] = _encode_png(prop)

        with self._locked("save the correction"):
            self._clean_leftovers()
            metas = self._read_metas()
            key = _key({"target": target, "source": source, "slice_index": si})
            replaced = [(p, m) for p, m in metas if key is not None and _key(m) == key]
            if replaced:
                split = replaced[-1][1]["split"]  # the newest of them is the live one
            else:
                live = [m for _, m in self._newest_per_key(metas) if m["target"] == target]
                split = decide_split(len(live), sum(m["split"] == "val" for m in live))
            now = datetime.now(timezone.utc)
            try:
                committed = os.listdir(self.samples_dir)
            except OSError as err:
                raise StoreError(f"cannot read the correction store at {self.samples_dir}: {err}") from err
            sid = self._new_id(now, committed)
            meta = {
                "schema": SCHEMA,
                "id": sid,
                "prompts": list(clean_prompts),
                "target": target,
                "source": source,
                "slice_index": None if si is None else list(si),
                "split": split,
                "created": now.isoformat(),
                "image_shape": list(img.shape),
                "image_dtype": img.dtype.name,  # native byte order (as_2d_image)
                "proposal": prop is not None,
                "window": None if win is None else list(win),
            }
            files["meta.json"] = json.dumps(meta, indent=1).encode()
            self._commit(sid, files)
            for path, _ in replaced:
                self._discard(path, quiet=True)
        return Sample(
            id=sid,
            image=img,
            mask=msk,
            proposal=prop,
            prompts=clean_prompts,
            target=target,
            source=source,
            slice_index=si,
            split=split,
            created=meta["created"],
            window=win,
        )

    def _commit(self, sid: str, files: dict[str, bytes]) -> None:
        tmp = self.samples_dir / f".tmp-{sid}"
        final = self.samples_dir / sid
        renamed = False
        try:
            os.mkdir(tmp)
            for name, data in files.items():
                _write_durable(tmp / name, data)
            fsync_dir(tmp)
            os.rename(tmp, final)  # the commit point
            renamed = True
            fsync_dir(self.samples_dir)
        except OSError as err:
            if not renamed:
                shutil.rmtree(tmp, ignore_errors=True)
            state = (
                "it is on disk but may not survive a power cut"
                if renamed
                else "nothing was saved and no earlier correction was changed"
            )
            raise StoreError(
                f"could not save the correction to {self.root}: {err.strerror or err}; "
                f"{_os_error_message(err)}, then save again ({state})"
            ) from err

    def _discard(self, path: Path, quiet: bool = False) -> None:
        """Remove one sample dir atomically: rename to .trash- (the commit), then delete."""
        trash = path.with_name(f".trash-{path.name}")
        try:
            os.rename(path, trash)
            fsync_dir(path.parent)
        except OSError as err:
            if quiet:  # a replaced sample left behind is shadowed by the newer one: harmless
                warnings.warn(f"could not remove the replaced sample {path}: {err}", stacklevel=3)
                return
            raise StoreError(
                f"could not remove {path.name} from {self.root}: {err.strerror or err}; "
                f"{_os_error_message(err)}"
            ) from err
        shutil.rmtree(trash, ignore_errors=True)

    def remove(self, sample_id: str) -> None:
        """Delete one sample (and any older copy it shadowed after an interrupted replace)."""
        if not isinstance(sample_id, str) or not _ID_RE.match(sample_id):
            raise StoreError(
                f"{sample_id!r} is not a sample id (like '20250101T120000000000-0123abcd'); "
                "take ids from store.samples()"
            )
        with self._locked("remove the correction"):
            metas = self._read_metas()
            mine = [(p, m) for p, m in metas if m["id"] == sample_id]
            path = self.samples_dir / sample_id
            if not path.is_dir():
                raise StoreError(f"no sample {sample_id} in the correction store at {self.root}")
            shadowed = []
            if mine and _key(mine[0][1]) is not None:
                k = _key(mine[0][1])
                shadowed = [p for p, m in metas if _key(m) == k and m["id"] < sample_id]
            self._discard(path)
            for p in shadowed:
                self._discard(p, quiet=True)

    def __len__(self) -> int:
        return len(self._live_metas())
