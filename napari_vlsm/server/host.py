"""What the server holds: one loaded model on its device, engines per adapter, and the projects.

A project is a folder under ``--project-root``, laid out and owned by a
:class:`~napari_vlsm.core.project.Project` (the dock's and the CLI's too, ``core/project/layout.py``):
``corrections/`` (the crash-safe store; the server is its only writer), ``adapters/`` (finetuned
adapter files and ``latest.json``) and ``jobs/`` (one JSON record per finetune, so a restart can
tell a client that its job was interrupted). "latest" is the project's ``latest.json``: the last
finetune that beat its starting point on held-out Dice, as in the dock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..core.errors import AdapterError, VLSMError
from ..core.project import Project
from ..core.project.names import check_project_name
from .limits import ModelLock

ENGINES_KEPT = 4  # engines (each with its own feature cache) for recently used adapters


class NotFound(VLSMError):
    """An unknown project, adapter, session, sample or job: answered 404."""


def check_project(name: str) -> str:
    return check_project_name(name)  # the rule is the project's (core/project/names.py)


class ModelHost:
    def __init__(self, model: str, *, adapter=None, device="auto", precision="auto", project_root=None,
                 max_waiting: int = 16):
        from ..core.engine import Segmenter
        from ..core.loading import load_model

        self.loaded = load_model(model, device=device, precision=precision)
        self.base = Segmenter(loaded=self.loaded, adapter=adapter)
        self.model_lock = ModelLock(max_waiting)
        self.project_root = Path(project_root).expanduser() if project_root else default_project_root()
        self.project_root.mkdir(parents=True, exist_ok=True)
        self._engines: OrderedDict[tuple, object] = OrderedDict()
        self._projects: dict[str, Project] = {}
        self._lock = threading.Lock()
        self.store_locks: dict[str, threading.Lock] = {}

    # -------------------------------------------------------------------------- projects
    def project_dir(self, project: str) -> Path:
        return self.project_root / check_project(project)

    def project(self, project: str) -> Project:
        """The named project (opened once; its store with it), trained with the server's model."""
        with self._lock:
            if project not in self._projects:
                self._projects[project] = Project(self.project_dir(project), model=self.loaded)
                self.store_locks[project] = threading.Lock()
            return self._projects[project]

    def store(self, project: str):
        return self.project(project).store

    def adapter_path(self, project: str, name: str) -> Path:
        """An adapter of the project by name, or ``latest``; NotFound (404) otherwise."""
        try:
            return self.project(project).adapter_path(name)
        except AdapterError as err:
            raise NotFound(f"{err}; take names from GET /v1/projects/{project}/adapters") from None

    # --------------------------------------------------------------------------- engines
    def engine(self, project: str | None = None, adapter: str | None = None):
        """The Segmenter for one project's adapter (a name, or 'latest'), or the server's default."""
        from ..core.engine import Segmenter

        if not project:
            if adapter:
                raise VLSMError("an adapter is named by its project: pass project=NAME too")
            return self.base
        if not adapter:
            return self.base
        path = self.adapter_path(project, adapter)
        key = (project, path.name, path.stat().st_mtime_ns)
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
        engine = Segmenter(loaded=self.loaded, adapter=path)  # AdapterError (422) on a damaged file
        with self._lock:
            self._engines[key] = engine
            while len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)
        return engine


def default_project_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-vlsm")) / "server-projects"
