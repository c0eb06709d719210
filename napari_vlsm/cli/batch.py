"""``napari-vlsm predict`` over a whole archive on dask.distributed, resumable.

``--cluster local[:N]`` starts a ``LocalCluster`` of N worker processes, ``--scheduler ADDRESS``
joins an existing cluster (SLURM through dask-jobqueue, a dask-gateway, ...: docs/batch.md).
Files are tasks, written by the in-process predict's own code (PNG/TIFF masks, NIfTI masks of
medical volumes on their grids, ``--multilabel`` label maps); a stack or volume with more than
``--slices-per-task`` slices is split into slice-range tasks (one window for the whole volume,
computed once) joined by a write task. A file that fails is
reported at the end; the others go on. Each output gets a provenance record; a run skips outputs
whose record matches (input size/mtime, prompt, threshold, model fingerprint, adapter hash) unless
``--overwrite``, so an interrupted run picks up where it stopped. ``--jobs FILE`` (JSON or CSV)
gives per-file prompts and output folders.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

from ..core.errors import VLSMError
from ..core.image_files import TIFF_SUFFIXES
from ..core.medical import formats
from .common import (
    collect_inputs,
    error,
    unique_slugs,
    unique_stems,
    write_bytes,
)

SUMMARY = "napari-vlsm-predict.json"


def add_batch_args(parser) -> None:
    group = parser.add_argument_group("whole archives (docs/batch.md)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--cluster", metavar="local[:N]", help="run on a LocalCluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing dask cluster, e.g. tcp://host:8786")
    group.add_argument("--jobs", metavar="FILE", help="JSON list or CSV of {input, prompts, out} per file")
    group.add_argument("--overwrite", action="store_true", help="redo outputs that a previous run finished")
    group.add_argument("--slices-per-task", type=int, default=32, metavar="N",
                       help="split volumes into tasks of N slices (default 32)")


def wanted(args) -> bool:
    return bool(args.cluster or args.scheduler or args.jobs or args.overwrite)


# ---------------------------------------------------------------------------------- the jobs
def _read_jobs_file(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise VLSMError(f"cannot read the jobs file {path}: {err.strerror or err}") from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except ValueError as err:
            raise VLSMError(f"the jobs file {path} is not valid JSON: {err}") from None
        if not isinstance(rows, list):
            raise VLSMError(f"the jobs file {path} must hold a JSON list of {{input, prompts, out}}")
    else:  # CSV: input,prompts,out with prompts separated by ';'
        rows = [{**r, "prompts": [p for p in (r.get("prompts") or "").split(";") if p.strip()]}
                for r in csv.DictReader(text.splitlines())]
    jobs = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("input"):
            raise VLSMError(f"job {n} of {path} has no 'input'")
        prompts = row.get("prompts") or []
        jobs.append({"input": str(path.parent / Path(row["input"]).expanduser()),
                     "prompts": [prompts] if isinstance(prompts, str) else list(prompts),
                     "out": row.get("out") or None, "row": n})
    return jobs


def build_jobs(args) -> list[dict]:
    from ..core.engine import check_threshold, clean_prompts
    from ..core.medical.windows import parse_window
    from . import labelmap_output

    threshold = check_threshold(args.threshold)
    window = getattr(args, "window", "auto")
    parse_window(window)
    multilabel = bool(getattr(args, "multilabel", False))
    if args.jobs:
        raw = _read_jobs_file(Path(args.jobs).expanduser())
    else:
        if not args.prompt or not args.inputs:
            raise VLSMError("pass --prompt TEXT and INPUT files or folders, or --jobs FILE")
        raw = [{"input": str(p), "prompts": args.prompt, "out": None} for p in collect_inputs(args.inputs)]
    default_out = Path(args.out).expanduser()
    jobs = []
    for job in raw:
        prompts = clean_prompts(job["prompts"] or args.prompt or [])
        labelmap_output.check(args, prompts)  # --multilabel: each structure once
        out = Path(job["out"]).expanduser() if job["out"] else default_out
        jobs.append({"input": job["input"], "prompts": prompts, "out": str(out), "threshold": threshold,
                     "slugs": unique_slugs(prompts), "window": window, "multilabel": multilabel,
                     "volume": formats.is_volume_path(Path(job["input"]))})
    by_out: dict[str, list[dict]] = {}
    for job in jobs:  # output stems are unique per output folder, as predict makes them
        by_out.setdefault(job["out"], []).append(job)
    for group in by_out.values():
        for job, stem in zip(group, unique_stems([Path(j["input"]) for j in group])):
            job["stem"] = stem
    return _one_per_series(jobs)


def _one_per_series(jobs: list[dict]) -> list[dict]:
    """Files of one DICOM series given one by one (``series/*.dcm``) are one input, named after the
    first, as in-process ``predict`` makes them: the later files' jobs are dropped."""
    import os

    from .batch_inputs import dicom_series_files

    seen: set[tuple] = set()
    kept = []
    for job in jobs:
        files = dicom_series_files(Path(job["input"])) if job["volume"] else ()
        key = (job["out"], tuple(job["prompts"]))
        if files and (*key, os.path.realpath(job["input"])) in seen:
            continue
        seen.update((*key, f) for f in files)
        kept.append(job)
    return kept


def probe_slices(path: Path) -> int:
    """Slices of a TIFF stack (0 for one 2D image) from its header, without reading pixels.
    Medical volumes are planned by a task (``batch_tasks.plan_task``): -1 here."""
    if formats.is_volume_path(path):
        return -1
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return 0
    import tifffile

    from ..core.volume import guess_rgb

    with tifffile.TiffFile(path) as tif:
        shape = tif.series[0].shape
    spatial = len(shape) - (1 if guess_rgb(shape) else 0)
    return 0 if spatial < 3 else int(shape[0]) if spatial == 3 else -1


def outputs_of(job: dict, slices: int) -> list[Path]:
    """The files in-process ``predict`` writes for a job (its resume records are kept beside them)."""
    ext = ".nii.gz" if job.get("volume") else ".tif" if slices else ".png"
    if job.get("multilabel"):
        return [Path(job["out"]) / f"{job['stem']}__labels{ext}"]
    return [Path(job["out"]) / f"{job['stem']}__{s}{ext}" for s in job["slugs"]]


# ------------------------------------------------------------------------------------ run
def _client(args, spec):
    from distributed import Client, LocalCluster

    from .batch_tasks import ModelPlugin

    if args.scheduler:
        client, threads = Client(args.scheduler), None
    else:
        text = args.cluster or "local"
        name, _, count = text.partition(":")
        if name != "local" or (count and not count.isdigit()) or count == "0":
            raise VLSMError(f"--cluster {text!r}: use local or local:N (N worker processes)")
        import os

        workers = int(count) if count else max(1, (os.cpu_count() or 2) // 2)
        threads = max(1, (os.cpu_count() or 1) // workers)
        # silence_logs: a failed file is reported once, at the end, not as a worker traceback
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
        client = Client(cluster)
    client.register_plugin(ModelPlugin(*spec, threads=threads), name="napari-vlsm-model")
    return client


def run_batch(args) -> int:
    from .server_options import needs

    needs("batch", "distributed")
    from . import batch_tasks as tasks

    if args.slices_per_task < 1 or args.batch_size < 1:
        raise VLSMError("--slices-per-task and --batch-size must be at least 1")
    if getattr(args, "server", None):
        raise VLSMError("--server and --cluster/--scheduler/--jobs do not combine; choose one")
    if getattr(args, "save_prob", False):
        raise VLSMError("--save-prob is not supported with --cluster/--scheduler/--jobs/--overwrite (its "
                        "probability maps are not resumable); run predict without them for probability maps")
    jobs = build_jobs(args)
    for out in {j["out"] for j in jobs}:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VLSMError(f"cannot create the output folder {out}: {err.strerror or err}") from None
    spec = (str(args.model), None if args.adapter is None else str(Path(args.adapter).expanduser()), args.device,
            args.precision)
    if args.cluster or args.scheduler:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # the driver's nannies and client too
        with _client(args, spec) as client:
            return _run(args, jobs, spec, _Dask(client), tasks)
    return _run(args, jobs, spec, _InProcess(), tasks)


def _run(args, jobs, spec, pool, tasks) -> int:
    from .common import progress

    provenance = pool.result(pool.submit(tasks.provenance_task, spec, jobs[0]["threshold"] if jobs else 0.5))
    records, failed, skipped, todo = [], [], 0, []
    for job in jobs:
        try:
            slices = probe_slices(Path(job["input"]))
        except Exception as err:  # noqa: BLE001 (an unreadable header: this file fails, others go on)
            failed.append({"input": job["input"], "error": f"cannot read {job['input']}: {err}"})
            continue
        done = None if args.overwrite else tasks.finished_records(job, provenance, outputs_of(job, slices))
        if done is not None:
            skipped += 1
            records += done
            continue
        # a medical volume's slice count and window come from a task that reads it (on a worker)
        todo.append((job, pool.submit(tasks.plan_task, job["input"], job["window"]) if slices < 0 else slices))
    pending = []
    for job, slices in todo:
        plan = None
        if not isinstance(slices, int):
            try:
                plan = pool.result(slices)
            except Exception as err:  # noqa: BLE001 (an unreadable volume: this file fails, others go on)
                _failed(failed, job, err)
                continue
            slices = plan["slices"]
        pending.append((job, _submit(pool, tasks, spec, job, slices, args, provenance, plan)))
    with progress(len(jobs), "predict") as bar:
        bar.update(len(jobs) - len(pending))
        for job, future in pool.as_completed(pending):
            try:
                records += pool.result(future)
            except Exception as err:  # noqa: BLE001 (reported at the end; the other files go on)
                _failed(failed, job, err)
            bar.update(1)
    summary = {"outputs": records, "failed": failed, "skipped": skipped, "provenance": provenance,
               "files": len(jobs)}
    for out in {j["out"] for j in jobs} or {args.out}:
        write_bytes(Path(out) / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False).encode())
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(f"{len(jobs) - skipped - len(failed)} file(s) segmented, {skipped} already done (skipped), "
              f"{len(failed)} failed", file=sys.stderr)
    if failed:  # as in-process predict: 2 when no input could be read (the user's error), else 1
        return 2 if len(failed) == len(jobs) else 1
    return 0


def _failed(failed: list, job: dict, err: Exception) -> None:
    message = " ".join(str(err).split()) or type(err).__name__
    message = message if job["input"] in message else f"{job['input']}: {message}"
    error(message)
    failed.append({"input": job["input"], "error": message})


def _submit(pool, tasks, spec, job, slices, args, provenance, plan=None):
    """One file task, or (more than --slices-per-task slices) slice-range tasks with the volume's
    one window, joined by a write task; ``plan``: a medical volume's slice count and window."""
    if slices <= args.slices_per_task:
        return pool.submit(tasks.file_task, spec, job, args.batch_size, provenance)
    window = plan["window"] if plan is not None else pool.submit(tasks.window_task, job["input"], job["window"])
    parts = [pool.submit(tasks.part_task, spec, job["input"], job["prompts"], job["threshold"], window, start,
                         min(start + args.slices_per_task, slices), args.batch_size, job["multilabel"])
             for start in range(0, slices, args.slices_per_task)]
    return pool.submit(tasks.assemble_task, job, provenance, window, *parts)


class _Dask:
    def __init__(self, client):
        self.client = client

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def result(self, future):
        return future.result()

    def as_completed(self, pending):
        from distributed import as_completed

        by_future = {f: job for job, f in pending}
        for future in as_completed(list(by_future)):
            yield by_future[future], future


class _InProcess:
    """The same tasks, run here one after the other (no cluster flag: the default stays in-process)."""

    def submit(self, fn, *args):
        failed = [a.error for a in args if isinstance(a, _Done) and a.error is not None]
        if failed:  # a part of this file failed: so does the file
            return _Done(None, failed[0])
        args = [a.value if isinstance(a, _Done) else a for a in args]
        try:
            return _Done(fn(*args))
        except Exception as err:  # noqa: BLE001 (kept for result(): per file, like a dask future)
            return _Done(None, err)

    def result(self, future):
        if future.error is not None:
            raise future.error
        return future.value

    def as_completed(self, pending):
        return iter(pending)


class _Done:
    def __init__(self, value, error=None):
        self.value, self.error = value, error
