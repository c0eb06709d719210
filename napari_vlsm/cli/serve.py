"""``napari-vlsm serve``: hold one model (and its adapters) on this machine's device for clients.

Binds 127.0.0.1 unless ``--host`` says otherwise (reach it from a laptop through an SSH tunnel or
a TLS reverse proxy: docs/server.md). Every endpoint but ``GET /health`` needs the bearer token
from ``--token-file``; without one, a token is generated into a 0600 file whose path is printed.
"""

from __future__ import annotations

import sys

from .common import PROG, add_model_args

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the model to napari-vlsm clients over HTTP (token required)",
        description="An HTTP server (FastAPI + uvicorn) for predict, corrections, finetune jobs and adapters.")
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    p.add_argument("--token-file", metavar="FILE",
                   help="file holding the bearer token (default: generated once into the user config folder)")
    p.add_argument("--project-root", metavar="DIR", help="folder of the projects' corrections and adapters")
    p.add_argument("--max-upload-mb", type=float, default=512, help="largest request body (default 512)")
    p.add_argument("--max-array-mb", type=float, default=2048,
                   help="largest decoded array (default 2048: a 1024 x 1024 x 512 float32 volume)")
    p.add_argument("--max-side", type=int, default=16384, help="largest size of any array axis (default 16384)")
    p.add_argument("--max-sessions", type=int, default=8, help="open sessions at most; more get 503 (default 8)")
    p.add_argument("--session-idle", type=float, default=600, metavar="SECONDS",
                   help="close sessions idle this long (default 600)")
    p.add_argument("--max-waiting", type=int, default=16, help="requests queued for the model before 503")
    p.set_defaults(func=run)


def run(args) -> int:
    from .server_options import needs

    needs("server", "fastapi", "uvicorn", "httpx", "zstandard")
    import uvicorn

    from ..core.errors import VLSMError
    from ..server.app import ServerConfig, create_app
    from ..server.auth import load_or_create_token
    from ..server.host import ModelHost

    for name in ("max_sessions", "max_side", "max_waiting", "port"):
        if getattr(args, name) < (0 if name == "port" else 1):
            raise VLSMError(f"--{name.replace('_', '-')} must be positive; got {getattr(args, name)}")
    _check_port_free(args.host, args.port)  # before the (slow) model load, one clear line
    token, token_file, created = load_or_create_token(args.token_file)
    print(f"{PROG} serve: token {'written to' if created else 'read from'} {token_file}", flush=True)
    host = ModelHost(args.model, adapter=args.adapter, device=args.device, precision=args.precision,
                     project_root=args.project_root, max_waiting=args.max_waiting)
    config = ServerConfig(token=token, max_upload_bytes=int(args.max_upload_mb * 2**20),
                          max_array_bytes=int(args.max_array_mb * 2**20), max_side=args.max_side,
                          max_sessions=args.max_sessions, session_idle_s=args.session_idle,
                          max_waiting=args.max_waiting)
    app = create_app(config, host)
    if args.host not in LOOPBACK:
        print(f"{PROG} serve: warning: listening on {args.host} without TLS; put a TLS reverse proxy in front "
              "or use an SSH tunnel (docs/server.md)", file=sys.stderr, flush=True)
    print(f"{PROG} serve: model {host.loaded.fingerprint} on {host.loaded.device}, projects in {host.project_root}",
          flush=True)
    print(f"{PROG} serve: listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5)
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
