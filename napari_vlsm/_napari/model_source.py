"""Can the model source be had right now? A check that takes milliseconds and never waits on the
network (no torch, no download): a local folder must hold the model's files; a hub id must be in
the local Hugging Face cache, else it needs the internet at the first Segment (or fails at once
with HF_HUB_OFFLINE). The dock shows the answer with what to do about it. Folder or hub id: the
loader's own rule (``core.model_source.is_hub_id``).
"""

from __future__ import annotations

from pathlib import Path

from ..core.model_source import MODEL_FILES as NEEDED
from ..core.model_source import hub_offline, in_hub_cache, is_hub_id


def problem(source: str) -> str | None:
    """None when the source can be loaded offline; else one sentence saying why not."""
    source = str(source).strip()
    if not is_hub_id(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            return f"Model folder {folder} does not exist."
        missing = [n for n in NEEDED if not (folder / n).is_file()]
        if missing:
            return f"Model folder {folder} has no {' or '.join(missing)}."
        return None
    if in_hub_cache(source):
        return None
    if hub_offline():
        return f"Model {source} is not on this computer and HF_HUB_OFFLINE is set."
    return f"Model {source} is not on this computer: the first Segment downloads it (internet needed)."


def advice(source: str) -> str:
    """What to do, for the dock's notice (after :func:`problem`'s sentence)."""
    hub = source if is_hub_id(source) else "CIDAS/clipseg-rd64-refined"
    return (f"Offline? Choose a model folder, or on a connected machine run "
            f"<code>hf download {hub} --local-dir clipseg</code> and choose that folder. "
            "Or try the loop with the untrained demo model.")
