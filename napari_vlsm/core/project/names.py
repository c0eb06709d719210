"""What a server project may be called, and the name a folder gives one (one rule, server and CLI)."""

from __future__ import annotations

import re
import unicodedata

from ..errors import VLSMError

PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_project_name(name: str) -> str:
    if not PROJECT_RE.match(name or ""):
        raise VLSMError(f"project name {name!r} is not valid; use 1-64 letters, digits, '.', '_' or '-' "
                        "starting with a letter or digit")
    return name


def project_name_for(text: str) -> str:
    """A valid project name from a folder's name: accents dropped ('Lebér' -> 'leber'), anything
    else outside the rule made '-', lowercase, at most 64 characters."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text.lower()).strip("-._")[:64].rstrip("-._")
    return name or "project"
