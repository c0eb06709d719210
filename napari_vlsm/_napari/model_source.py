"""Can the model source be had right now? A check that takes milliseconds and never waits on the
network (no torch, no download): a local folder must hold the model's files; a hub id must be in
the local Hugging Face cache, else it needs the internet at the first Segment (or fails at once
with HF_HUB_OFFLINE). The dock shows the answer with what to do about it.
"""

from __future__ import annotations

import os
from pathlib import Path

NEEDED = ("config.json", "model.safetensors")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _is_hub_id(source: str) -> bool:
    # = core.loading._looks_like_path, without importing torch: "org/name" unless such a folder exists
    import re

    return not Path(source).expanduser().exists() and bool(re.fullmatch(r"[\w.-]+/[\w.-]+", source))


def in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for name in NEEDED:
        try:
            found = try_to_load_from_cache(repo_id, name)
        except Exception:  # a malformed id: not in the cache
            return False
        if not isinstance(found, str):
            return False
    return True


def problem(source: str) -> str | None:
    """None when the source can be loaded offline; else one sentence saying why not."""
    source = str(source).strip()
    if not _is_hub_id(source):
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
    hub = source if _is_hub_id(str(source)) else "CIDAS/clipseg-rd64-refined"
    return (f"Offline? Choose a model folder, or on a connected machine run "
            f"<code>hf download {hub} --local-dir clipseg</code> and choose that folder. "
            "Or try the loop with the untrained demo model.")
