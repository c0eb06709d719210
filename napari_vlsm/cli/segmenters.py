"""The engine a subcommand runs: a local Segmenter, or with ``--server URL`` the server's."""

from __future__ import annotations


def make_segmenter(args, variant: str = "none"):
    if getattr(args, "server", None):  # --server URL: the engine runs there (cli/server_options.py)
        from .server_options import remote_segmenter

        return remote_segmenter(args)
    from ..core.engine import Segmenter

    return Segmenter(args.model, adapter=getattr(args, "adapter", None), variant=variant,
                     device=args.device, precision=args.precision)
