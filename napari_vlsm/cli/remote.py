"""``--server URL``: predict, evaluate and finetune run on a napari-vlsm server instead of here.

The token comes from ``--token-file`` or ``$NAPARI_VLSM_TOKEN``. predict/evaluate swap the local
engine for a :class:`~napari_vlsm.client.remote_segmenter.RemoteSegmenter` (same masks, same output files);
finetune uploads the folder's samples as corrections of a server project, trains there with the
progress bar fed by the job's event stream, and downloads the adapter to ``--out``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from ..core.project_names import project_slug
from .common import PROG


def add_server_args(parser) -> None:
    group = parser.add_argument_group("server (docs/server.md)")
    group.add_argument("--server", metavar="URL", help="run on a napari-vlsm server, e.g. http://127.0.0.1:8765")
    group.add_argument("--token-file", metavar="FILE", help="the server's token file (else $NAPARI_VLSM_TOKEN)")
    group.add_argument("--ca-bundle", metavar="FILE",
                       help="certificate authority of the server's TLS proxy (else $SSL_CERT_FILE, else the system's)")
    group.add_argument("--project", metavar="NAME",
                       help="server project: its adapters for predict/evaluate (with --server-adapter), "
                            "its corrections for finetune (default: the --data folder's name)")
    group.add_argument("--server-adapter", metavar="NAME",
                       help="an adapter of --project on the server ('latest' = its newest)")


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

    return VLSMClient(args.server, read_token(args.token_file), ca_bundle=getattr(args, "ca_bundle", None))


def remote_segmenter(args):
    from ..client.remote_segmenter import RemoteSegmenter
    from ..core.errors import VLSMError

    if getattr(args, "adapter", None):
        raise VLSMError("--adapter is a local file; with --server pass --project NAME --server-adapter NAME")
    seg = RemoteSegmenter(client_for(args), project=args.project, adapter=args.server_adapter)
    seg.info()  # a wrong URL or token fails now, with one line, before any file is read
    return seg


def _settings(args) -> dict:
    settings = {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "max_steps": args.steps,
                "epochs": args.epochs, "budget_s": args.budget}
    if args.steps is None and args.epochs is None and args.budget is None:
        settings["epochs"] = 200  # the paper's recipe, as the local finetune
    if args.variant:
        settings["variant"] = args.variant
    if args.init_adapter:
        settings["init_adapter"] = args.init_adapter  # a server adapter name here
    return settings


def run_finetune(args) -> int:
    from ..client import ConnectionLost
    from ..core.datasets import read_folder
    from ..core.medical.windows import parse_window
    from .finetune import _Bar, _check_out

    parse_window(args.window)
    samples = read_folder(args.data, prompts=args.prompt, ann=args.ann, window=args.window)
    out = _check_out(Path(args.out).expanduser())
    project = args.project or project_slug(Path(args.data).expanduser().resolve().name)
    client = client_for(args)
    uploads = 0
    for image, mask, prompts, source, index, window in _corrections(samples):
        client.add_correction(project, image, mask, prompts, source=source, slice_index=index, window=window)
        uploads += 1
    job = client.finetune(project, **_settings(args))
    print(f"{PROG}: finetune job {job['id']} on {args.server}, project {project} ({uploads} samples)",
          file=sys.stderr)
    bar, end = _Bar(), None
    try:
        for event in client.events(job["id"]):
            if event["type"] == "progress":
                bar(types.SimpleNamespace(**{k: v for k, v in event.items() if k != "type"}))
            else:
                end = event
    except KeyboardInterrupt:
        client.cancel(job["id"])
        end = client.wait(job["id"], timeout=600)
    except ConnectionLost:
        bar.close()
        raise
    finally:
        bar.close()
    return _finish(client, project, end, out, args)


def _corrections(samples):
    """The folder's samples as server corrections: a 2D pair as one (source = its name, slice 0), a
    volume pair as the training slices the local finetune uses (``expand_slices``), each with its
    slice index and its volume's window, as the dock stores corrected slices of a volume. The same
    source + slice again replaces a correction: uploading the folder twice never duplicates."""
    import numpy as np

    from ..core.volume_datasets import expand_slices

    for sample in samples:
        if getattr(sample, "is_volume", False):
            for part in expand_slices([sample]):
                yield (part.image, part.mask, list(part.prompts), sample.name, part.slice_index,
                       tuple(float(v) for v in part.window))
        else:
            yield sample.image, np.asarray(sample.mask), list(sample.prompts), sample.name, 0, None


def _finish(client, project, end, out, args) -> int:
    from ..core.errors import TrainingError
    from .finetune import _report

    if end["state"] == "failed":
        raise TrainingError(f"the server's finetune failed: {end['error']}")
    result = end.get("result") or {}
    if result.get("adapter"):
        client.download_adapter(project, result["adapter"], out)
    summary = types.SimpleNamespace(
        adapter_path=out if result.get("adapter") else None, before=result.get("before") or {},
        after=result.get("after") or {}, heldout=result.get("heldout", True), steps=result.get("steps", 0),
        best_step=result.get("best_step"), stopped=result.get("stopped", end["state"]),
        cancelled=end["state"] == "cancelled", message=result.get("message", ""), history=[],
        metadata={"adapter_config": {}, "server_adapter": result.get("adapter"), "project": project})
    _report(summary, args)
    return 130 if summary.cancelled else 0
