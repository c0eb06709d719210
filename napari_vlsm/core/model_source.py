"""Where a model comes from: a local folder or a Hugging Face hub id. One rule, read by the loader
(``loading.resolve_folder``) and by the dock's first-run notice, so the two never disagree about
a source (a bare ``clipseg`` is a hub id unless such a folder exists, for both).

Torch-free and offline: the answers take milliseconds and never wait on the network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# "name" or "org/name" (the hub's forms); "./x", "/x", "~/x", "a/b/c" can only be folders
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
MODEL_FILES = ("config.json", "model.safetensors")  # what a model folder must hold


def is_hub_id(source) -> bool:
    """True when ``source`` names a hub model: it has a hub id's form and no such path exists here."""
    source = str(source)
    return not Path(source).expanduser().exists() and bool(HUB_ID.match(source))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE set: a hub id must already be in the local cache."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def in_hub_cache(repo_id: str) -> bool:
    """The model's files are in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for name in MODEL_FILES:
        try:
            found = try_to_load_from_cache(repo_id, name)
        except Exception:  # a malformed id: not in the cache
            return False
        if not isinstance(found, str):
            return False
    return True
