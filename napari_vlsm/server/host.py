"""What the server holds: one loaded model on its device, engines per adapter, and the projects.

A project is a folder under ``--project-root``: ``corrections/`` (a :class:`CorrectionStore`, the
same crash-safe store the dock uses; the server is its only writer), ``adapters/`` (finetuned
adapter files, written atomically by the trainer) and ``jobs/`` (one JSON record per finetune, so a
restart can tell a client that its job was interrupted), plus ``audit.jsonl`` (``audit.py``).
``redact`` keeps the server's absolute paths out of every answer.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path

from ..core.errors import VLSMError
from ..core.project_names import check_project_name as check_project
from .audit import AuditLog
from .limits import ModelLock

ADAPTER_RE = re.compile(r"^adapter-[A-Za-z0-9._-]{1,80}\.safetensors$")
ENGINES_KEPT = 4  # engines (each with its own feature cache) for recently used adapters


class NotFound(VLSMError):
    """An unknown project, adapter, session, sample or job: answered 404."""


class ModelHost:
    def __init__(self, model: str, *, adapter=None, device="auto", precision="auto", project_root=None,
                 max_waiting: int = 16):
        from ..core.engine import Segmenter
        from ..core.loading import load_model

        self.loaded = load_model(model, device=device, precision=precision)
        self.base = Segmenter(loaded=self.loaded, adapter=adapter)
        self.model_lock = ModelLock(max_waiting)
        self.project_root = Path(project_root).expanduser() if project_root else default_project_root()
        self.project_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.audit = AuditLog(self.project_root)
        self._engines: OrderedDict[tuple, object] = OrderedDict()
        self._stores: dict[str, object] = {}
        self._lock = threading.Lock()
        self.store_locks: dict[str, threading.Lock] = {}

    # ------------------------------------------------------------------ what clients see
    def redact(self, text: str) -> str:
        """``text`` without the server's absolute paths (project root, model folder)."""
        text = str(text)
        for path, name in ((self.project_root, "<project-root>"), (self.loaded.folder, "<model>")):
            for form in {str(path), str(Path(path).resolve())}:
                if form and form != ".":
                    text = text.replace(form, name)
        return text

    def public_info(self) -> dict:
        """The engine's info with paths cut to names: a client needs no map of the server's disk."""
        info = dict(self.base.info())
        for key in ("source", "adapter_path"):
            if info.get(key) and Path(str(info[key])).is_absolute():
                info[key] = Path(str(info[key])).name
        info.pop("folder", None)
        return info

    def public_provenance(self, engine) -> dict:
        """An engine's provenance with the model folder and adapter path cut to their names."""
        prov = dict(engine.provenance())
        for key in ("model_source", "adapter_path"):
            if prov.get(key) and Path(str(prov[key])).is_absolute():
                prov[key] = Path(str(prov[key])).name
        return prov

    def check_prompts(self, prompts, error=VLSMError) -> tuple[str, ...]:
        """The core's prompt rules with this model's tokenizer: a prompt the text model would cut is refused."""
        from ..core.model_input import token_limit
        from ..core.validation import check_prompt_tokens, clean_prompts

        prompts = clean_prompts(prompts, error=error)
        tokenizer = self.loaded.tokenizer
        return check_prompt_tokens(prompts, lambda p: len(tokenizer(p).input_ids), token_limit(self.loaded), error)

    # -------------------------------------------------------------------------- projects
    def project_dir(self, project: str) -> Path:
        return self.project_root / check_project(project)

    def store(self, project: str):
        from ..core.store import CorrectionStore

        with self._lock:
            if project not in self._stores:
                self._stores[project] = CorrectionStore(self.project_dir(project) / "corrections")
                self.store_locks[project] = threading.Lock()
            return self._stores[project]

    def adapters_dir(self, project: str) -> Path:
        return self.project_dir(project) / "adapters"

    def adapter_path(self, project: str, name: str) -> Path:
        if not ADAPTER_RE.match(name or ""):
            raise NotFound(f"{name!r} is not an adapter name; take names from GET /v1/projects/{project}/adapters")
        path = self.adapters_dir(project) / name
        if not path.is_file():
            raise NotFound(f"project {project} has no adapter {name}")
        return path

    def adapter_files(self, project: str) -> list[Path]:
        """Finished adapter files, oldest first (an interrupted write leaves only a dot-tmp file)."""
        folder = self.adapters_dir(project)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and ADAPTER_RE.match(p.name))

    # --------------------------------------------------------------------------- engines
    def engine(self, project: str | None = None, adapter: str | None = None):
        """The Segmenter for one project's adapter ('latest' = its newest), or the server's default."""
        from ..core.engine import Segmenter

        if not project:
            if adapter:
                raise VLSMError("an adapter is named by its project: pass project=NAME too")
            return self.base
        if not adapter:
            return self.base
        if adapter == "latest":
            found = self.adapter_files(project)
            if not found:
                raise NotFound(f"project {project} has no adapter yet; finetune first")
            path = found[-1]
        else:
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
