"""The worker side of ``predict --cluster/--scheduler``: the model per worker, and the tasks.

``ModelPlugin`` is a dask ``WorkerPlugin``: each worker process loads the model and adapter ONCE
when it joins (also workers that join during the run), and every task reuses that engine. The
driver unregisters it when the run ends (``teardown`` drops the engine), so a shared cluster's
later workers never load a model nobody uses. Without a cluster
(``--jobs`` alone) the same tasks run in this process on one cached engine.

Tasks never import napari; they read inputs with the CLI's own reader and write with its atomic
writers, so outputs are byte-identical to ``napari-vlsm predict`` run in-process.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

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

    def teardown(self, worker):
        self.segmenter = None  # the run is over: the worker's memory is the cluster's again


def _load(spec):
    from ..core.engine import Segmenter

    model, adapter, device, precision = spec
    return Segmenter(model, adapter=adapter, device=device, precision=precision)


def segmenter(spec):
    """This worker's engine (loaded once by the plugin), or this process's cached one."""
    from ..core.torch_threads import prepare_thread

    prepare_thread()  # per thread; tasks run in the worker's threads
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


_READ: dict[tuple, object] = {}  # the last input read in this process (a volume's tasks share it)
_READ_LOCK = threading.Lock()


def read_cached(path: str):
    """``read_input`` of ``path`` (an image array, or a MedicalVolume), kept for the next task.

    A split volume's plan, parts and write task often land on one worker: a ``.nii.gz`` or a DICOM
    series is then decoded once there, not once per task. One entry: memory holds one volume."""
    import os

    from .common import read_input

    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    with _READ_LOCK:  # a worker may run several tasks at once (threads)
        data = _READ.get(key)
    if data is None:
        data = read_input(Path(path))
        with _READ_LOCK:
            _READ.clear()
            _READ[key] = data
    return data


def _array(data):
    return data.array if hasattr(data, "geometry") else data


def _window_of(data, choice):
    """The window in-process ``predict`` uses for this input (``--window``; auto over the whole volume)."""
    from ..core.medical.windows import window_for

    if hasattr(data, "geometry"):  # a medical volume: its modality, and its last axis is x, not colour
        return window_for(choice, data.array, data.modality, rgb=False)
    return window_for(choice, data)


def window_task(path: str, choice="auto"):
    """One intensity window for a whole stack or volume, read the way the in-process predict reads it."""
    return _window_of(read_cached(path), choice)


def plan_task(path: str, choice="auto") -> dict:
    """A medical volume's canonical slice count and its window (the driver splits it with them)."""
    data = read_cached(path)
    return {"slices": int(data.shape[0]), "window": _window_of(data, choice)}


def part_task(spec, path, prompts, threshold, window, start, stop, batch_size, multilabel=False):
    """Slices [start, stop) of a stack or volume: masks (P, n, H, W) uint8 (0/255 for TIFF stacks,
    0/1 for medical volumes, as ``predict`` writes them) or, with ``multilabel``, the composed label
    map (n, H, W) (``core.labelmap.compose`` per slice, as ``predict --multilabel`` does)."""
    from ..core.stack_arrays import stack_arrays

    data = read_cached(path)
    on = 1 if hasattr(data, "geometry") else 255
    rgb = False if hasattr(data, "geometry") else None  # a volume's last axis is x, even at 3 or 4 voxels
    results = segmenter(spec).predict_stack(_array(data), prompts, threshold=threshold, batch_size=batch_size,
                                            window=window, indices=range(start, stop), rgb=rgb)
    arrays = stack_arrays(results, (stop - start,), len(prompts), mask_value=on, start=start,
                          label_threshold=threshold if multilabel else None)
    return arrays.labels if multilabel else arrays.masks


def _args(job: dict, batch_size: int = 1):
    """The in-process predict's settings for one job (no probability maps in batch: refused there),
    its clean-up and --statistics included (``batch.build_jobs``: ``job["finish"]``)."""
    finish = job.get("finish") or {}
    return SimpleNamespace(threshold=job["threshold"], batch_size=batch_size, save_prob=False, out=job["out"],
                           window=job.get("window", "auto"), multilabel=job.get("multilabel", False),
                           keep_largest=finish.get("keep_largest", False), fill_holes=finish.get("fill_holes", False),
                           min_size_mm3=finish.get("min_size_mm3", 0.0), statistics=finish.get("statistics", False))


def file_task(spec, job: dict, batch_size: int, provenance: dict) -> list[dict]:
    """Read, segment and write one input (an image, a stack or a volume small enough for one task)
    with the in-process predict's own code (``predict_input.predict_input``)."""
    from .predict_input import predict_input

    records = predict_input(segmenter(spec), Path(job["input"]), job["stem"], read_cached(job["input"]),
                            job["prompts"], job["slugs"], _args(job, batch_size), provenance, _NoBar())
    write_records(job, records, provenance)
    return records


def assemble_task(job: dict, provenance: dict, window, *parts) -> list[dict]:
    """Join a split stack's or volume's parts and write its outputs as ``predict`` writes them."""
    import numpy as np

    from . import labelmap_output, statistics_output
    from .outputs import write_outputs
    from .predict_input import label_map_statistics
    from .predict_volume import finish_label_map, write_volume_outputs

    path, args = Path(job["input"]), _args(job)
    data = read_cached(job["input"]) if job.get("volume") or args.statistics else None
    if args.multilabel:
        writer, suffix, finished = None, None, {}
        if job.get("volume"):
            from ..core.medical import write_mask

            def writer(array, target):  # cleaned as predict_input's on-grid writer cleans it
                array = finish_label_map(array, data, args, job["stem"], finished)
                write_mask(target, array, data.geometry, description="napari-vlsm label map")
            suffix = ".nii.gz"
        info = {"input": str(path), "threshold": args.threshold, "provenance": provenance}
        records = [labelmap_output.write_labelmap(Path(args.out).expanduser(), job["stem"], np.concatenate(parts),
                                                  job["prompts"], True, info, writer=writer, suffix=suffix)]
        records = label_map_statistics(records, path, job["stem"], data, job["prompts"], args,
                                       finished.get("labels"))
    else:
        masks = np.concatenate(parts, axis=1)
        results = {p: (masks[k], None) for k, p in enumerate(job["prompts"])}
        if job.get("volume"):
            records = write_volume_outputs(path, job["stem"], job["slugs"], data, results, tuple(window), args,
                                           provenance)
        else:
            records = write_outputs(path, job["stem"], job["slugs"], True, results, args, provenance)
            records = statistics_output.of_masks(records, path, job["stem"], results, args, image=data)
    write_records(job, records, provenance)
    return records


class _NoBar:
    def set_postfix_str(self, *a, **k):
        pass


# ------------------------------------------------------------------------------- resume records
def record_key(job: dict, provenance: dict, prompt) -> dict:
    """Everything that decides an output: a record that matches means the output can be kept.
    ``prompt`` is the output's prompt, or the list of prompts of a ``--multilabel`` label map."""
    path = Path(job["input"])
    stat = path.stat()
    return {"input": str(path.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
            "prompt": prompt, "threshold": job["threshold"], "window": job.get("window", "auto"),
            "multilabel": job.get("multilabel", False), "finish": job.get("finish") or {},
            "model_fingerprint": provenance.get("model_fingerprint"),
            "adapter_sha256": provenance.get("adapter_sha256"), "precision": provenance.get("precision")}


def record_path(output: Path) -> Path:
    return output.parent / RECORDS / f"{output.name}.json"


def output_prompts(job: dict) -> list:
    """What each of a job's outputs stands for: one prompt per mask, or all prompts (one label map)."""
    return [list(job["prompts"])] if job.get("multilabel") else list(job["prompts"])


def write_records(job: dict, records: list[dict], provenance: dict) -> None:
    """Written after the outputs themselves: an interrupted run leaves no record for a half-done file."""
    from ..core.atomic import write_bytes_atomic

    for record in records:
        key = record_key(job, provenance, record["prompt"] if "prompt" in record else list(record["prompts"]))
        write_bytes_atomic(record_path(Path(record["path"])), json.dumps({"key": key, "record": record}).encode())


def finished_records(job: dict, provenance: dict, outputs: list[Path]) -> list[dict] | None:
    """The stored records of a job whose every output exists with matching provenance, else None."""
    found = []
    for prompt, output in zip(output_prompts(job), outputs):
        try:
            stored = json.loads(record_path(output).read_bytes())
        except (OSError, ValueError):
            return None
        if not output.is_file() or stored.get("key") != record_key(job, provenance, prompt):
            return None
        found.append(stored["record"])
    return found
