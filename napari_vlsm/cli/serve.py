"""``napari-vlsm serve``: hold one model (and its adapters) on this machine's device for clients.

Binds 127.0.0.1 unless ``--host`` says otherwise (reach it from a laptop through an SSH tunnel or
a TLS reverse proxy: docs/server.md). Every endpoint but ``GET /health`` needs a bearer token: the
``--token-file`` one (named ``owner``; generated into a 0600 file at first start when no
``--token-file`` is given) or a named one from ``napari-vlsm serve token add NAME``. The project
root is private (0700, files 0600) and served by one server at a time (server/root.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import PROG, add_model_args

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the model to napari-vlsm clients over HTTP (token required)",
        description="An HTTP server (FastAPI + uvicorn) for predict, corrections, finetune jobs and adapters. "
                    "'napari-vlsm serve token add|revoke|list' manages named tokens.")
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    p.add_argument("--token-file", metavar="FILE",
                   help="file holding the owner's bearer token (default: generated once into the user config "
                        "folder); it must exist unless --new-token")
    p.add_argument("--new-token", action="store_true", help="generate a new token into --token-file if it is missing")
    p.add_argument("--project-root", metavar="DIR", help="folder of the projects' corrections and adapters")
    p.add_argument("--max-upload-mb", type=float, default=512, help="largest request body (default 512)")
    p.add_argument("--max-array-mb", type=float, default=2048,
                   help="largest decoded array (default 2048: a 1024 x 1024 x 512 float32 volume)")
    p.add_argument("--max-side", type=int, default=16384, help="largest size of any array axis (default 16384)")
    p.add_argument("--max-sessions", type=int, default=8, help="open sessions at most; more get 503 (default 8)")
    p.add_argument("--session-idle", type=float, default=600, metavar="SECONDS",
                   help="close sessions idle this long (default 600)")
    p.add_argument("--max-waiting", type=int, default=16, help="requests queued for the model before 503")
    p.add_argument("--read-timeout", type=float, default=30, metavar="SECONDS",
                   help="an upload that sends nothing for this long is cut with 408 (default 30)")
    p.add_argument("--max-uploads-per-token", type=int, default=8,
                   help="request bodies in flight per token; more get 503 (default 8)")
    p.add_argument("--max-connections", type=int, default=128,
                   help="open connections at most (uvicorn's limit_concurrency; default 128)")
    p.set_defaults(func=run)
    tokens = p.add_subparsers(title="token management", metavar="token")
    t = tokens.add_parser("token", help="add, revoke or list the server's named tokens")
    t.add_argument("action", choices=("add", "revoke", "list"))
    t.add_argument("name", nargs="?", help="the token's name: one per annotator or laptop")
    t.add_argument("--project-root", metavar="DIR", help="the server's project root (its tokens live there)")
    t.add_argument("--out", metavar="FILE", help="add: write the new token into FILE (0600) instead of printing it")
    t.set_defaults(func=run_token)


def _root(args) -> Path:
    from ..server.host import default_project_root

    return Path(args.project_root).expanduser() if args.project_root else default_project_root()


def run_token(args) -> int:
    import os

    from ..core.errors import VLSMError
    from ..server import tokens
    from ..server.audit import AuditLog

    os.umask(0o077)
    root = _root(args)
    path = tokens.tokens_file(root)
    if args.action == "list":
        for entry in tokens.read_entries(path):
            print(f"{entry.get('name')}\tcreated {entry.get('created')}")
        return 0
    if not args.name:
        raise VLSMError(f"serve token {args.action} needs a NAME")
    if args.action == "revoke":
        tokens.revoke(path, args.name)
        AuditLog(root).record("cli", "token.revoked", name=args.name)
        print(f"{PROG} serve: token {args.name!r} revoked (its next request gets 401)", file=sys.stderr)
        return 0
    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.exists():
        raise VLSMError(f"{out} exists; choose a new file for the token")
    token = tokens.add(path, args.name)
    AuditLog(root).record("cli", "token.added", name=args.name)
    if out is None:
        print(token)
        print(f"{PROG} serve: token {args.name!r} added; it is shown once: give it to its user "
              "(chmod 600 on their copy)", file=sys.stderr)
        return 0
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    print(f"{PROG} serve: token {args.name!r} added and written to {out}", file=sys.stderr)
    return 0


def _logging() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG} serve: %(levelname)s %(message)s"))
    log = logging.getLogger("napari_vlsm.server")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run(args) -> int:
    from .remote import needs

    needs("server", "fastapi", "uvicorn", "httpx", "zstandard")
    import uvicorn

    from ..core.errors import VLSMError
    from ..core.validation import check_positive_int
    from ..server import tokens
    from ..server.app import ServerConfig, create_app
    from ..server.auth import load_or_create_token
    from ..server.host import ModelHost
    from ..server.root import open_root

    for name in ("max_sessions", "max_side", "max_waiting", "max_uploads_per_token", "max_connections"):
        check_positive_int(getattr(args, name), f"--{name.replace('_', '-')}", VLSMError)
    if args.port < 0:  # 0: any free port
        raise VLSMError(f"--port must be 0 (any free port) or a port number; got {args.port}")
    if not args.read_timeout > 0:
        raise VLSMError(f"--read-timeout must be a positive number of seconds; got {args.read_timeout}")
    _check_port_free(args.host, args.port)  # before the (slow) model load, one clear line
    root = _root(args)
    lock = open_root(root)  # 0700, not writable by others, one server per root: before the model loads
    token, token_file, created = load_or_create_token(args.token_file, create=args.new_token)
    print(f"{PROG} serve: token {'written to' if created else 'read from'} {token_file}", flush=True)
    host = ModelHost(args.model, adapter=args.adapter, device=args.device, precision=args.precision,
                     project_root=root, max_waiting=args.max_waiting)
    config = ServerConfig(token=token, tokens_file=tokens.tokens_file(root),
                          max_upload_bytes=int(args.max_upload_mb * 2**20),
                          max_array_bytes=int(args.max_array_mb * 2**20), max_side=args.max_side,
                          max_sessions=args.max_sessions, session_idle_s=args.session_idle,
                          max_waiting=args.max_waiting, read_timeout_s=args.read_timeout,
                          max_uploads_per_token=args.max_uploads_per_token)
    app = create_app(config, host)
    if args.host not in LOOPBACK:
        print(f"{PROG} serve: warning: listening on {args.host} without TLS; put a TLS reverse proxy in front "
              "or use an SSH tunnel (docs/server.md)", file=sys.stderr, flush=True)
    print(f"{PROG} serve: model {host.loaded.fingerprint} on {host.loaded.device}, projects in {host.project_root}",
          flush=True)
    print(f"{PROG} serve: listening on http://{args.host}:{args.port}", flush=True)
    _logging()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5,
                    timeout_keep_alive=5, limit_concurrency=args.max_connections,
                    h11_max_incomplete_event_size=16 * 1024)  # request line + headers at most
    finally:
        lock.release()
    return 0


def _check_port_free(host: str, port: int) -> None:
    import socket

    from ..core.errors import VLSMError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as err:
            raise VLSMError(f"cannot listen on {host}:{port}: {err.strerror or err}; pass another --port "
                            "or stop the program that uses it") from None
