"""A project's finetune: snapshot, the trainer, save, and the one rule for "latest".

Kept apart from ``project.py`` because it is the only part that needs torch (through the trainer).
"""

from __future__ import annotations

from ..errors import TrainingError
from .results import FinetuneResult


def run(project, request, cancel, keep, run_id: str, extra_metadata):
    """The body of ``Project.train`` (a generator of ProgressEvents returning a FinetuneResult)."""
    from .. import training  # training.finetune is looked up at call time (tests replace it)
    from ..adapters.checkpoint import load_adapter, save_adapter

    model = project.model() if callable(project.model) else project.model
    if model is None:
        raise TrainingError(f"project {project.name} was opened without a model: load one to finetune")
    config = request.config()
    init_path = project.resolve_init(request.init_adapter)
    init, init_meta = load_adapter(init_path, model) if init_path is not None else (None, None)
    train, val = project.store.samples(split="train"), project.store.samples(split="val")  # the snapshot
    out = project.layout.adapter_file(run_id)
    gen = training.finetune(model, train, val, config, init_adapters=init, out_path=out, cancel=cancel,
                            base_metadata=init_meta, extra_metadata=extra_metadata)
    result = yield from gen
    if (result.cancelled and keep is not None and keep.is_set() and result.adapters is not None
            and result.adapter_path is None):
        # stopped but kept (the dock was closed, Ctrl+C on the CLI): its best adapter, like a finished one
        result.adapter_path = save_adapter(out, result.adapters, result.metadata)
    latest = result.adapter_path is not None and result.improved
    if latest:
        project.layout.write_latest(result.adapter_path)
    return from_train_result(result, latest)


def from_train_result(result, latest: bool) -> FinetuneResult:
    path = result.adapter_path
    return FinetuneResult(
        adapter=path.name if path is not None else None, before=result.before or {}, after=result.after or {},
        heldout=result.heldout, improved=result.improved, latest=latest, cancelled=result.cancelled,
        stopped=result.stopped, steps=result.steps, best_step=result.best_step, message=result.message,
        history=list(result.history), variant=(result.metadata.get("adapter_config") or {}).get("variant"),
        adapter_path=path, adapters=result.adapters, metadata=result.metadata)
