"""Project names: the one rule for what a project may be called, and how to make one from any text.

A project name is a folder name on the server (``<project-root>/<name>``) and in the dock's outbox,
and it travels in URLs: 1-64 ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter
or digit. The server checks it (``check_project_name``); the CLI, when ``--project`` is not given,
makes one from the data folder's name (``project_slug``) that the server accepts, e.g. ``Lebér`` ->
``leber``. Torch-free: the client, the server and the dock all import it.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import VLSMError

PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FALLBACK = "project"  # the name of a folder whose name has no letter or digit left


def is_project_name(name) -> bool:
    return isinstance(name, str) and bool(PROJECT_NAME.match(name))


def check_project_name(name, error: type[VLSMError] = VLSMError) -> str:
    """``name`` when it is a valid project name, else ``error`` saying what one looks like."""
    if not is_project_name(name):
        raise error(f"project name {name!r} is not valid; use 1-64 letters, digits, '.', '_' or '-' "
                    "starting with a letter or digit")
    return name


def project_slug(text: str) -> str:
    """A valid project name made from ``text``: accents dropped (é -> e), lower case, every other
    run of characters outside the allowed set -> ``-``, at most 64 characters."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^a-z0-9._-]+", "-", ascii_text.lower())
    name = re.sub(r"^[^a-z0-9]+", "", name)[:64].rstrip("-._")
    return name or FALLBACK
