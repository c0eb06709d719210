"""``Project``: one project folder on this computer and the whole loop around the core.

Corrections are added and listed (the list reads meta.json only), a finetune trains on a snapshot
of them, saves its adapter under adapters/, and moves "latest" only when the run beat its starting
point on held-out Dice. That is the one definition of "latest": the dock's "latest" choice, the
server's ``adapter=latest`` and the CLI's ``--server-adapter latest`` all read ``latest.json``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import AdapterError
from .layout import ADAPTER_RE, ProjectLayout, new_run_id
from .results import FinetuneRequest


class Project:
    """A project folder. ``model`` (a LoadedModel, or a function returning one when asked) is needed
    only to train."""

    runs_here = True  # train() runs torch in this process

    def __init__(self, root: str | Path | None = None, model=None):
        if root is None:
            from ..store import default_root

            root = default_root()
        self.layout = ProjectLayout(root)
        self.root = self.layout.root
        self.name = str(self.root)
        self.model = model
        self._store = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Project({self.name!r})"

    @property
    def store(self):
        """The CorrectionStore, opened on first use (StoreError if the folder is unusable)."""
        with self._lock:
            if self._store is None:
                from ..store import CorrectionStore

                self._store = CorrectionStore(self.layout.corrections)
            return self._store

    # --------------------------------------------------------------------------- corrections
    def add_correction(self, image, mask, prompts, proposal=None, source: str = "", slice_index=None, window=None):
        from ..store import SampleInfo

        return SampleInfo.of(self.store.add(image, mask, prompts, proposal=proposal, source=source,
                                            slice_index=slice_index, window=window))

    def corrections(self, target: str | None = None, split: str | None = None):
        return self.store.infos(target, split)

    def counts(self, target: str | None = None) -> dict[str, int]:
        return self.store.counts(target)

    def remove_correction(self, sample_id: str) -> None:
        self.store.remove(sample_id)

    def pending(self, target: str | None = None) -> int:
        """Corrections waiting to be sent: none, they are stored here at once (as ``RemoteProject``'s)."""
        return 0

    def targets(self) -> list[str]:
        return self.store.targets()

    # ------------------------------------------------------------------------------ adapters
    def latest_path(self) -> Path | None:
        return self.layout.read_latest()

    def latest_adapter(self) -> str | None:
        path = self.latest_path()
        return path.name if path is not None else None

    def adapter_path(self, name: str) -> Path:
        """An adapter of this project by name (``"latest"`` included); AdapterError when there is none."""
        if name == "latest":
            path = self.latest_path()
            if path is None:
                raise AdapterError(f"project {self.name} has no latest adapter yet: no finetune has beaten its "
                                   "starting point; finetune first, or choose an adapter by name")
            return path
        if not ADAPTER_RE.match(name or ""):
            raise AdapterError(f"{name!r} is not an adapter name of project {self.name}")
        path = self.layout.adapters / name
        if not path.is_file():
            raise AdapterError(f"project {self.name} has no adapter {name}")
        return path

    def adapters(self) -> list[dict]:
        from .provenance import adapter_info

        latest = self.latest_adapter()
        return [{**adapter_info(path), "latest": path.name == latest} for path in self.layout.adapter_files()]

    def fetch_adapter(self, name: str, path: str | Path) -> Path:
        from ..atomic import write_bytes_atomic

        path = Path(path).expanduser()
        write_bytes_atomic(path, self.adapter_path(name).read_bytes())
        return path

    @property
    def worklist(self):
        """The series worklist of this project (``core/worklist``)."""
        from ..worklist import Worklist

        return Worklist(self.root)

    # ------------------------------------------------------------------------------ training
    def train(self, request: FinetuneRequest, cancel=None, keep=None, *, run_id: str | None = None,
              extra_metadata: dict | None = None):
        """See ``ProjectLike.train``. ``run_id`` names the adapter file (default: time + hex)."""
        from .training import run

        return (yield from run(self, request, cancel, keep, run_id or new_run_id(), extra_metadata))

    def resolve_init(self, ref: str | None) -> Path | None:
        """The adapter to continue from: None, ``latest``, a name here, or a file path."""
        if not ref:
            return None
        if ref == "latest" or ADAPTER_RE.match(ref):
            return self.adapter_path(ref)
        path = Path(ref).expanduser()
        if not path.is_file():
            raise AdapterError(f"adapter file {path} does not exist")
        return path
