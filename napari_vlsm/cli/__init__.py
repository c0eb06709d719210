"""``napari-vlsm``: subcommands over the core engine.

Protocol of a subcommand module ``napari_vlsm.cli.<name>``: ``add_parser(subparsers)`` registers it
(and sets ``func=run`` as a default), ``run(args) -> int`` does the work. Modules are imported when
the parser is built, so they must not import torch at module level: ``--help`` stays instant.

Exit codes: 0 success; 1 some inputs failed (each reported on its own line); 2 a user error
(``VLSMError``: one line ``napari-vlsm: error: <message>``, never a traceback), a usage error, or
``predict`` could read none of its inputs; 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .. import __version__
from ..core.errors import VLSMError
from .common import PROG, error

# finetune and evaluate come from the trainer's modules, registered when they are present.
SUBCOMMANDS = ("info", "predict", "finetune", "evaluate", "serve", "worklist")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Text-prompted medical image segmentation (CLIPSeg + VLSM adapters).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module_name = f"{__name__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # not written (yet): leave the command out
                continue
            raise
        module.add_parser(subparsers)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # A user reads "napari-vlsm: warning: ...", not a source path and line number.
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, usage errors (argparse printed them)
        return int(stop.code or 0) if not isinstance(stop.code, str) else 2
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        # Library deprecation notices are for developers, not for someone segmenting images.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        try:
            return int(args.func(args) or 0)
        except VLSMError as err:
            error(err)
            return 2
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
