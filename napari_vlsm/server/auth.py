"""The ``--token-file`` token (the one named ``owner``): read, or generated at first start into a 0600 file.

A ``--token-file`` that does not exist is an error (a mistyped path must not silently start a
server with a token nobody has), unless ``--new-token`` asks for one. Without ``--token-file``, the
first start generates one into the user config folder, as before. Checking a presented token is
the guard's job (``guard.py``, before any body is read) with the names in ``tokens.py``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..core.errors import VLSMError

MIN_TOKEN_CHARS = 16


def default_token_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("napari-vlsm")) / "server-token"


def load_or_create_token(path: str | os.PathLike | None, create: bool = False) -> tuple[str, Path, bool]:
    """-> (token, file, created). A new file is created 0600 (O_EXCL: never over another one);
    a named ``path`` is only created with ``create`` (``--new-token``)."""
    named = path is not None
    path = Path(path).expanduser() if path else default_token_file()
    if path.exists():
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise VLSMError(f"cannot read the token file {path}: {err.strerror or err}") from None
        if len(token) < MIN_TOKEN_CHARS:
            raise VLSMError(f"the token in {path} is shorter than {MIN_TOKEN_CHARS} characters; "
                            "delete the file to have a strong one generated")
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise VLSMError(f"the token file {path} is readable by other users; run: chmod 600 {path}")
        return token, path, False
    if named and not create:
        raise VLSMError(f"the token file {path} does not exist; check the path, or pass --new-token to "
                        "generate a new token into it")
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
    except OSError as err:
        raise VLSMError(f"cannot create the token file {path}: {err.strerror or err}; pass --token-file") from None
    return token, path, True
