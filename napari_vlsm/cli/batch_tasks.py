"""The worker side of ``predict --cluster/--scheduler``: the model per worker, and the tasks.

``ModelPlugin`` is a dask ``WorkerPlugin``: each worker process loads the model and adapter ONCE
when it joins (also workers that join later), and every task reuses that engine. Without a cluster
(``--jobs`` alone) the same tasks run in this process on one cached engine.

Tasks never import napari; they read inputs with the CLI's own reader and write with its atomic
writers, so outputs are byte-identical to ``napari-vlsm predict`` run in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

from distributed import WorkerPlugin

PLUGIN = "napari-vlsm-model"
RECORDS = ".napari-vlsm-batch"  # per output: what produced it (resume = skip when it matches)
_LOCAL: dict[tuple, object] = {}


class ModelPlugin(WorkerPlugin):
    name = PLUGIN

    def __init__(self, model, adapter, device, precision, threads: int | None = None):
        self.spec = (str(model), None if adapter is None else str(adapter), device, precision)
        self.threads = threads
        self.segmenter = None

    def setup(self, worker):
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        self.segmenter = _load(self.spec)


def _load(spec):
    from ..core.engine import Segmenter

    model, adapter, device, precision = spec
    return Segmenter(model, adapter=adapter, device=device, precision=precision)


def segmenter(spec):
    """This worker's engine (loaded once by the plugin), or this process's cached one."""
    import torch

    torch.set_flush_denormal(True)  # per thread; tasks run in the worker's threads
    try:
        from distributed import get_worker

        plugin = get_worker().plugins.get(PLUGIN)
        if plugin is not None and plugin.segmenter is not None:
            return plugin.segmenter
    except ValueError:  # not inside a dask worker
        pass
    if spec not in _LOCAL:
        _LOCAL.clear()
        _LOCAL[spec] = _load(spec)
    return _LOCAL[spec]


def provenance_task(spec, threshold) -> dict:
    return {**segmenter(spec).provenance(), "threshold": threshold}


def window_task(path: str):
    """One intensity window for a whole volume, read the way the in-process predict reads it."""
    from ..core.volume import volume_window
    from .common import read_image

    return volume_window(read_image(Path(path)))


def part_task(spec, path, prompts, threshold, window, start, stop, batch_size):
    """Masks (P, stop-start, H, W) uint8 0/255 of slices [start, stop) of a volume."""
    import numpy as np

    from .common import read_image

    data = read_image(Path(path))
    seg = segmenter(spec)
    out = None
    for index, preds in seg.predict_stack(data, prompts, threshold=threshold, batch_size=batch_size, window=window,
                                          indices=range(start, stop)):
        if out is None:
            out = np.zeros((len(prompts), stop - start, *preds[0].shape), np.uint8)
        for k, pred in enumerate(preds):
            out[k, index - start] = pred.mask * np.uint8(255)
    return out


def file_task(spec, job: dict, batch_size: int, provenance: dict) -> list[dict]:
    """Read, segment and write one input (an image or a stack small enough for one task)."""
    import argparse

    from .common import read_image
    from .predict import _segment, _write_outputs

    seg = segmenter(spec)
    args = argparse.Namespace(threshold=job["threshold"], batch_size=batch_size, save_prob=False, out=job["out"])
    is_stack, results = _segment(seg, read_image(Path(job["input"])), job["prompts"], args, _NoBar())
    records = _write_outputs(Path(job["input"]), job["stem"], job["slugs"], is_stack, results, args, provenance)
    write_records(job, records, provenance)
    return records


def assemble_task(job: dict, provenance: dict, *parts) -> list[dict]:
    """Join a volume's slice parts and write its outputs (as ``predict`` writes a stack)."""
    import argparse

    import numpy as np

    from .predict import _write_outputs

    masks = np.concatenate(parts, axis=1)
    results = {p: (masks[k], None) for k, p in enumerate(job["prompts"])}
    args = argparse.Namespace(save_prob=False, out=job["out"])
    records = _write_outputs(Path(job["input"]), job["stem"], job["slugs"], True, results, args, provenance)
    write_records(job, records, provenance)
    return records


class _NoBar:
    def set_postfix_str(self, *a, **k):
        pass


# ------------------------------------------------------------------------------- resume records
def record_key(job: dict, provenance: dict, prompt: str) -> dict:
    """Everything that decides an output: a record that matches means the output can be kept."""
    path = Path(job["input"])
    stat = path.stat()
    return {"input": str(path.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
            "prompt": prompt, "threshold": job["threshold"], "model_fingerprint": provenance.get("model_fingerprint"),
            "adapter_sha256": provenance.get("adapter_sha256"), "precision": provenance.get("precision")}


def record_path(output: Path) -> Path:
    return output.parent / RECORDS / f"{output.name}.json"


def write_records(job: dict, records: list[dict], provenance: dict) -> None:
    """Written after the outputs themselves: an interrupted run leaves no record for a half-done file."""
    from ..core.atomic import write_bytes_atomic

    for record in records:
        key = record_key(job, provenance, record["prompt"])
        write_bytes_atomic(record_path(Path(record["path"])), json.dumps({"key": key, "record": record}).encode())


def finished_records(job: dict, provenance: dict, outputs: list[Path]) -> list[dict] | None:
    """The stored records of a job whose every output exists with matching provenance, else None."""
    found = []
    for prompt, output in zip(job["prompts"], outputs):
        try:
            stored = json.loads(record_path(output).read_bytes())
        except (OSError, ValueError):
            return None
        if not output.is_file() or stored.get("key") != record_key(job, provenance, prompt):
            return None
        found.append(stored["record"])
    return found
