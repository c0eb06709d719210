"""The bearer token: read from ``--token-file`` or generated at first start into a 0600 file.

Every endpoint but ``GET /health`` depends on :func:`require_token`; a missing or wrong token is a
401 with ``WWW-Authenticate: Bearer``. Tokens are compared with ``hmac.compare_digest`` (constant
time), so response timing tells an attacker nothing about how many characters matched.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..core.errors import VLSMError

MIN_TOKEN_CHARS = 16


def default_token_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("napari-vlsm")) / "server-token"


def load_or_create_token(path: str | os.PathLike | None) -> tuple[str, Path, bool]:
    """-> (token, file, created). A new file is created 0600 (O_EXCL: never over another one)."""
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
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
    except OSError as err:
        raise VLSMError(f"cannot create the token file {path}: {err.strerror or err}; pass --token-file") from None
    return token, path, True


_bearer = HTTPBearer(auto_error=False)


async def require_token(request: Request) -> None:
    credentials: HTTPAuthorizationCredentials | None = await _bearer(request)
    expected: str = request.app.state.token
    given = credentials.credentials if credentials is not None else ""
    if credentials is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong token; send 'Authorization: Bearer <token>' "
                            "with the token from the server's token file",
                            headers={"WWW-Authenticate": "Bearer"})
