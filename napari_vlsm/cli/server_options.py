"""``--server URL``: the options that make predict, evaluate and finetune run on a napari-vlsm server.

The token comes from ``--token-file`` or ``$NAPARI_VLSM_TOKEN``. predict/evaluate swap the local
engine for a :class:`~napari_vlsm.client.remote.RemoteSegmenter` (same masks, same output files,
``cli/segmenters.py``); finetune trains in a server project (``cli/project_finetune.py``).
"""

from __future__ import annotations


def add_server_args(parser, project_help: str | None = None) -> None:
    group = parser.add_argument_group("server (docs/server.md)")
    group.add_argument("--server", metavar="URL", help="run on a napari-vlsm server, e.g. http://127.0.0.1:8765")
    group.add_argument("--token-file", metavar="FILE", help="the server's token file (else $NAPARI_VLSM_TOKEN)")
    group.add_argument("--project", metavar="NAME",
                       help=project_help or "server project whose adapters --server-adapter names")
    group.add_argument("--server-adapter", metavar="NAME",
                       help="an adapter of --project on the server ('latest' = the last finetune that improved "
                            "held-out Dice)")


def needs(extra: str, *modules: str) -> None:
    """A missing optional dependency is one line naming the pip extra, not a traceback."""
    import importlib.util

    from ..core.errors import VLSMError

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise VLSMError(f"{', '.join(missing)} is not installed; run: pip install \"napari-vlsm[{extra}]\"")


def client_for(args):
    needs("client", "httpx", "zstandard")
    from ..client import VLSMClient, read_token

    return VLSMClient(args.server, read_token(args.token_file))


def remote_segmenter(args):
    from ..client.remote import RemoteSegmenter
    from ..core.errors import VLSMError

    if getattr(args, "adapter", None):
        raise VLSMError("--adapter is a local file; with --server pass --project NAME --server-adapter NAME")
    seg = RemoteSegmenter(client_for(args), project=args.project, adapter=args.server_adapter)
    seg.info()  # a wrong URL or token fails now, with one line, before any file is read
    return seg
