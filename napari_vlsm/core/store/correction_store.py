"""CorrectionStore: the folder of correction samples, added, replaced, listed and removed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from ..atomic import fsync_dir
from ..errors import StoreError
from ..images import as_2d_image  # torch-free (preprocess reaches torch): the client keeps an outbox
from ..masks import as_binary_mask
from . import files
from .reading import load_sample, newest_per_key, read_metas, warn_damaged
from .records import (
    ID_RE,
    SCHEMA,
    SPLITS,
    STAMP,
    DamagedSampleWarning,
    Sample,
    SampleInfo,
    clean_prompts,
    clean_slice_index,
    clean_source,
    clean_window,
    decide_split,
    normalize_target,
    replace_key,
)

STALE_TMP_S = 3600  # a .tmp- dir this old belongs to a writer that died


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-vlsm")) / "projects" / "default"


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
                f"{files.os_error_message(err)}"
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
            files.write_atomic(marker, data)
        except OSError as err:
            raise StoreError(
                f"cannot write to the correction store at {self.root}: "
                f"{err.strerror or err}; {files.os_error_message(err)}"
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

    def _live_metas(self) -> list[tuple[Path, dict]]:
        return newest_per_key(read_metas(self.samples_dir))

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
                out.append(load_sample(path, meta))
            except FileNotFoundError:
                if path.exists():
                    warn_damaged(path, "a file is missing")
            except Exception as err:  # any decoder error on a damaged file: skip, never crash
                warn_damaged(path, f"{type(err).__name__}: {err}")
        return out

    def infos(self, target: str | None = None, split: str | None = None) -> list[SampleInfo]:
        """What ``samples`` lists, from meta.json alone: no image is decoded (lists, counts)."""
        if split is not None and split not in SPLITS:
            raise StoreError(f"split must be 'train', 'val' or None; got {split!r}")
        want = None if target is None else normalize_target(target)
        return [SampleInfo.from_meta(meta) for _, meta in self._live_metas()
                if (want is None or meta["target"] == want) and (split is None or meta["split"] == split)]

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
            lock = files.exclusive_lock(self.root / ".lock")
            lock.__enter__()
        except OSError as err:
            raise StoreError(
                f"cannot {action}: the correction store at {self.root} cannot be locked "
                f"({err.strerror or err}); {files.os_error_message(err)}"
            ) from err
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    @staticmethod
    def _new_id(now: datetime, committed: list[str]) -> str:
        """A sortable unique id, later than every committed one even if the clock went back
        (so that "newest wins" on a replace cut by a crash always picks the replacement)."""
        stamp = now.strftime(STAMP)
        latest = max((m.group(1) for n in committed if (m := ID_RE.match(n))), default="")
        if stamp <= latest:
            stamp = (datetime.strptime(latest, STAMP) + timedelta(microseconds=1)).strftime(STAMP)
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
        phrasings = clean_prompts(prompts)
        target = normalize_target(phrasings[0])
        source = clean_source(source)
        si = clean_slice_index(slice_index)
        win = clean_window(window)
        payload = {"image.tif": files.encode_tif(img), "mask.png": files.encode_png(msk)}
        if prop is not None:
            payload["proposal.png"] = files.encode_png(prop)

        with self._locked("save the correction"):
            self._clean_leftovers()
            metas = read_metas(self.samples_dir)
            key = replace_key({"target": target, "source": source, "slice_index": si})
            replaced = [(p, m) for p, m in metas if key is not None and replace_key(m) == key]
            if replaced:
                split = replaced[-1][1]["split"]  # the newest of them is the live one
            else:
                live = [m for _, m in newest_per_key(metas) if m["target"] == target]
                split = decide_split(len(live), sum(m["split"] == "val" for m in live))
            now = datetime.now(UTC)
            try:
                committed = os.listdir(self.samples_dir)
            except OSError as err:
                raise StoreError(f"cannot read the correction store at {self.samples_dir}: {err}") from err
            sid = self._new_id(now, committed)
            meta = {
                "schema": SCHEMA,
                "id": sid,
                "prompts": list(phrasings),
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
            payload["meta.json"] = json.dumps(meta, indent=1).encode()
            self._commit(sid, payload)
            for path, _ in replaced:
                self._discard(path, quiet=True)
        return Sample(
            id=sid,
            image=img,
            mask=msk,
            proposal=prop,
            prompts=phrasings,
            target=target,
            source=source,
            slice_index=si,
            split=split,
            created=meta["created"],
            window=win,
        )

    def _commit(self, sid: str, payload: dict[str, bytes]) -> None:
        tmp = self.samples_dir / f".tmp-{sid}"
        final = self.samples_dir / sid
        renamed = False
        try:
            os.mkdir(tmp)
            for name, data in payload.items():
                files.write_durable(tmp / name, data)
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
                f"{files.os_error_message(err)}, then save again ({state})"
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
                f"{files.os_error_message(err)}"
            ) from err
        shutil.rmtree(trash, ignore_errors=True)

    def remove(self, sample_id: str) -> None:
        """Delete one sample (and any older copy it shadowed after an interrupted replace)."""
        if not isinstance(sample_id, str) or not ID_RE.match(sample_id):
            raise StoreError(
                f"{sample_id!r} is not a sample id (like '20250101T120000000000-0123abcd'); "
                "take ids from store.samples()"
            )
        with self._locked("remove the correction"):
            metas = read_metas(self.samples_dir)
            mine = [(p, m) for p, m in metas if m["id"] == sample_id]
            path = self.samples_dir / sample_id
            if not path.is_dir():
                raise StoreError(f"no sample {sample_id} in the correction store at {self.root}")
            shadowed = []
            if mine and replace_key(mine[0][1]) is not None:
                k = replace_key(mine[0][1])
                shadowed = [p for p, m in metas if replace_key(m) == k and m["id"] < sample_id]
            self._discard(path)
            for p in shadowed:
                self._discard(p, quiet=True)

    def __len__(self) -> int:
        return len(self._live_metas())
