"""Named tokens: one per annotator or laptop, added and revoked with ``napari-vlsm serve token``.

The tokens file (``<project-root>/.napari-vlsm/tokens.json``, mode 0600) holds each token's name,
creation time and SHA-256, never the token itself: it is printed once, when it is added. The server
re-reads the file when it changes (one ``stat`` per request), so a revoked token gets 401 on its
next request without a restart. The ``--token-file`` token (if any) is the one named ``owner``.
Comparisons are ``hmac.compare_digest`` of digests: timing says nothing about a near miss.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from pathlib import Path

from ..core.atomic import write_bytes_atomic
from ..core.errors import VLSMError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
OWNER = "owner"  # the --token-file token's name in the audit log


def server_dir(project_root: Path) -> Path:
    """The server's own files (tokens, audit of token changes, lock): a dot-folder is never a project."""
    return Path(project_root) / ".napari-vlsm"


def tokens_file(project_root: Path) -> Path:
    return server_dir(project_root) / "tokens.json"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise VLSMError(f"token name {name!r} is not valid; use 1-64 letters, digits, '.', '_', '@' or '-'")
    if name == OWNER:
        raise VLSMError(f"{OWNER!r} is the --token-file token's name; choose another")
    return name


def read_entries(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise VLSMError(f"cannot read the tokens file {path}: {err}") from None
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise VLSMError(f"the tokens file {path} is damaged (no 'tokens' list)")
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("sha256"), str)]


def _write_entries(path: Path, entries: list[dict]) -> None:
    old = os.umask(0o077)  # the file and its folder are the server's alone, whatever the caller's umask
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_bytes_atomic(path, json.dumps({"tokens": entries}, indent=1).encode(), mode=0o600)
    finally:
        os.umask(old)


def add(path: Path, name: str) -> str:
    """A new token named ``name`` (a name in use is refused: revoke it first); -> the token."""
    entries = read_entries(path)
    if any(e.get("name") == check_name(name) for e in entries):
        raise VLSMError(f"a token named {name!r} exists; revoke it first (napari-vlsm serve token revoke {name})")
    token = secrets.token_urlsafe(32)
    entries.append({"name": name, "sha256": digest(token), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    _write_entries(path, entries)
    return token


def revoke(path: Path, name: str) -> None:
    entries = read_entries(path)
    kept = [e for e in entries if e.get("name") != name]
    if len(kept) == len(entries):
        raise VLSMError(f"no token named {name!r} in {path}")
    _write_entries(path, kept)


class TokenBook:
    """Who a presented token belongs to (a name), or None."""

    def __init__(self, path: Path | None, owner_token: str | None = None):
        self.path = path
        self._owner = digest(owner_token) if owner_token else None
        self._entries: list[dict] = []
        self._seen = None
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except (OSError, AttributeError):
            key = None
        if key == self._seen:
            return
        with self._lock:
            try:
                self._entries = read_entries(self.path) if key else []
            except VLSMError:  # a damaged file admits no named token until it is fixed
                self._entries = []
            self._seen = key

    def who(self, token: str) -> str | None:
        if not token:
            return None
        self._refresh()
        given = digest(token)
        found = None
        if self._owner and hmac.compare_digest(given, self._owner):
            found = OWNER
        for entry in self._entries:  # every entry compared: the time does not depend on which one matched
            if hmac.compare_digest(given, entry["sha256"]):
                found = found or str(entry.get("name"))
        return found

    def names(self) -> list[str]:
        self._refresh()
        return ([OWNER] if self._owner else []) + [str(e.get("name")) for e in self._entries]
