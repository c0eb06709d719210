"""``finetune --project``: the folder's samples become corrections of a project, which trains on them.

The project is a folder here (``--project DIR``) or, with ``--server URL``, a server project
(``--project NAME``, by default named after the --data folder). Both are driven the same way
(``core/project``'s protocol): upload the corrections (the same source + slice again replaces a
correction, so uploading the folder twice never duplicates), train on the project's persisted
split, copy the adapter to ``--out``. "latest" moves only when held-out Dice improved, as in the dock.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import PROG
from .training_report import Interrupt, check_out, drive, report


def open_project(args, data_name: str):
    """The project the arguments name: a server's (``--server``) or a folder here."""
    from ..core.project.names import project_name_for

    if args.server:
        from ..client.project import RemoteProject
        from .server_options import client_for

        args.project = args.project or project_name_for(data_name)
        return RemoteProject(client_for(args), args.project)
    from ..core.loading import load_model
    from ..core.project import Project

    loaded = {}

    def model():  # loaded when training starts (after the uploads: usage errors first)
        if "model" not in loaded:
            loaded["model"] = load_model(args.model, device=args.device, precision=args.precision)
        return loaded["model"]

    return Project(args.project, model=model)


def corrections(samples):
    """The folder's samples as corrections: a 2D pair as one (source = its name, slice 0), a volume
    pair as the training slices a folder run uses (``expand_slices``), each with its slice index and
    its volume's window, as the dock stores corrected slices of a volume."""
    import numpy as np

    from ..core.volume_datasets import expand_slices

    for sample in samples:
        if getattr(sample, "is_volume", False):
            for part in expand_slices([sample]):
                yield (part.image, part.mask, list(part.prompts), sample.name, part.slice_index,
                       tuple(float(v) for v in part.window))
        else:
            yield sample.image, np.asarray(sample.mask), list(sample.prompts), sample.name, 0, None


def request_for(args):
    from ..core.project import FinetuneRequest

    limits = {"max_steps": args.steps, "epochs": args.epochs, "budget_s": args.budget}
    if args.steps is None and args.epochs is None and args.budget is None:
        limits["epochs"] = 200  # the paper's recipe, as a folder run
    extra = {"variant": args.variant} if args.variant else {}
    request = FinetuneRequest(batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                              init_adapter=args.init_adapter, **limits, **extra)
    request.config()  # a bad setting is reported before anything is uploaded or loaded
    return request


def run_on_project(args) -> int:
    from ..core.datasets import read_folder
    from ..core.medical.windows import parse_window

    parse_window(args.window)
    samples = read_folder(args.data, prompts=args.prompt, ann=args.ann, window=args.window)
    out = check_out(Path(args.out).expanduser())
    request = request_for(args)
    project = open_project(args, Path(args.data).expanduser().resolve().name)
    uploads = 0
    for image, mask, prompts, source, index, window in corrections(samples):
        project.add_correction(image, mask, prompts, source=source, slice_index=index, window=window)
        uploads += 1
    print(f"{PROG}: finetune in {project.name} ({uploads} samples)", file=sys.stderr)
    with Interrupt() as interrupt:  # Ctrl+C: stop after this step; a local project keeps the best so far
        result = drive(project.train(request, interrupt.event, interrupt.event))
    result.adapter_path = project.fetch_adapter(result.adapter, out) if result.adapter else None
    report(result, args)
    return 130 if result.cancelled else 0
