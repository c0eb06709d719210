"""The project: one folder (or one server project) and the loop around the core.

correction -> store -> finetune on a snapshot -> adapter -> "latest" (moved only when held-out Dice
improved) -> adopt. ``Project`` is the local folder (``layout.py`` names every file in it),
``ProjectLike`` the protocol the dock, the CLI and the server's jobs call, which
``napari_vlsm.client.project.RemoteProject`` implements over HTTP. ``FinetuneRequest`` and
``FinetuneResult`` are the one request and the one result of a finetune, local or remote.
Importing this package loads no torch (the trainer is imported when a finetune starts).
"""

from .layout import ADAPTER_RE, ProjectLayout, new_run_id
from .project import Project
from .protocol import ProjectLike
from .results import FinetuneRequest, FinetuneResult

__all__ = ["ADAPTER_RE", "FinetuneRequest", "FinetuneResult", "Project", "ProjectLayout", "ProjectLike",
           "new_run_id"]
