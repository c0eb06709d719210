"""Finetune jobs: one thread each, progress events kept for replay, cancel, a JSON record on disk.

The trainer (``core.training.finetune``) is a generator; a job drives it one event at a time, each
``next()`` under the server's model lock, so predictions from other clients interleave with
training steps instead of waiting minutes. The trainer saves the adapter atomically (a crash leaves
the old files and at most a dot-tmp file, never half an adapter). ``jobs/<id>.json`` is written when
a job starts and ends; a server that restarts marks records still "running" as "interrupted".
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime

from ..core.atomic import write_bytes_atomic
from ..core.errors import TrainingError, VLSMError
from .host import ModelHost

FINISHED = ("done", "cancelled", "failed", "interrupted")
JOBS_KEPT = 32  # finished jobs kept in memory for status and replay


class Job:
    def __init__(self, project: str, settings: dict, who: str = "owner"):
        self.who = who  # the token's name that started it (audit log)
        self.id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)
        self.project, self.settings = project, settings
        self.state, self.error, self.result = "running", None, None
        self.events: list[dict] = []
        self.cancel = threading.Event()
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None

    def publish(self, event: dict) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def status(self) -> dict:
        return {"id": self.id, "project": self.project, "state": self.state, "error": self.error,
                "result": self.result, "events": len(self.events), "settings": self.settings}


class Jobs:
    def __init__(self, host: ModelHost):
        self.host = host
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._mark_interrupted()

    # --------------------------------------------------------------------------- records
    def _record_path(self, project: str, job_id: str):
        return self.host.project_dir(project) / "jobs" / f"{job_id}.json"

    def _write_record(self, job: Job) -> None:
        write_bytes_atomic(self._record_path(job.project, job.id), json.dumps(job.status(), indent=1).encode())

    def _mark_interrupted(self) -> None:
        for tmp in self.host.project_root.glob("*/adapters/.adapter-*.tmp"):  # a save cut by a crash
            tmp.unlink(missing_ok=True)
        for path in self.host.project_root.glob("*/jobs/*.json"):
            try:
                record = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if record.get("state") == "running":
                record["state"] = "interrupted"
                record["error"] = ("the server stopped during this finetune; no adapter was saved by it, "
                                   "the corrections are kept: finetune again")
                write_bytes_atomic(path, json.dumps(record, indent=1).encode())

    # ------------------------------------------------------------------------------- api
    def get(self, job_id: str) -> Job | dict | None:
        """A live job, or the JSON record of one from before a restart, or None."""
        with self._lock:
            if job_id in self._jobs:
                return self._jobs[job_id]
        if not job_id.replace("-", "").replace("T", "").isalnum():
            return None
        for path in self.host.project_root.glob(f"*/jobs/{job_id}.json"):
            try:
                return json.loads(path.read_bytes())
            except (OSError, ValueError):
                return None
        return None

    def running(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.state == "running"]

    def start(self, project: str, settings: dict, who: str = "owner") -> Job:
        from ..core.training import TrainConfig

        store = self.host.store(project)
        config = TrainConfig(**{k: v for k, v in settings.items() if k != "init_adapter"})
        config.validate()  # a bad setting is a 422 now, not a failed job later
        if store.counts()["train"] == 0:
            raise TrainingError(f"project {project} has no training corrections yet; add corrections first")
        init_path = None
        if settings.get("init_adapter"):
            init_path = self.host.engine(project, settings["init_adapter"]).adapter_path
        with self._lock:
            if any(j.state == "running" for j in self._jobs.values()):
                raise JobConflict("a finetune is already running on this server; wait for it or cancel it")
            job = Job(project, settings, who)
            self._jobs[job.id] = job
            self._forget_old()
        self._write_record(job)
        self.host.audit.record(who, "finetune.started", project, job=job.id, settings=settings,
                               train=store.counts()["train"])
        job.thread = threading.Thread(target=self._run, args=(job, store, config, init_path),
                                      name=f"finetune-{job.id}", daemon=True)
        job.thread.start()
        return job

    def _forget_old(self) -> None:
        done = [k for k, j in self._jobs.items() if j.state in FINISHED]
        for key in done[: max(0, len(self._jobs) - JOBS_KEPT)]:
            del self._jobs[key]

    # ------------------------------------------------------------------------ the thread
    def _run(self, job: Job, store, config, init_path) -> None:
        from ..core.adapters.checkpoint import load_adapter
        from ..core.torch_threads import prepare_thread
        from ..core.training import finetune

        prepare_thread()  # a thread of its own, ended with the job (see core/torch_threads.py)
        host = self.host
        try:
            init, init_meta = load_adapter(init_path, host.loaded) if init_path else (None, None)
            train, val = store.samples(split="train"), store.samples(split="val")  # the snapshot
            out = host.adapters_dir(job.project) / f"adapter-{job.id}.safetensors"
            gen = finetune(host.loaded, train, val, config, init_adapters=init, out_path=out, cancel=job.cancel,
                           base_metadata=init_meta, extra_metadata={"server_job": job.id, "project": job.project})
            result = None
            while True:
                with host.model_lock.lock:
                    try:
                        event = next(gen)
                    except StopIteration as stop:
                        result = stop.value
                        break
                job.publish({"type": "progress", **asdict(event)})
                if job.cancel.is_set() and event.kind in ("start", "prepare"):  # the loop checks between steps
                    gen.close()
                    break
            job.result = _summary(result)
            job.state = "cancelled" if result is None or result.cancelled else "done"
        except VLSMError as err:
            job.state, job.error = "failed", host.redact(str(err))
        except Exception as err:  # noqa: BLE001 (a bug: the job fails, the server keeps serving)
            job.state, job.error = "failed", host.redact(f"{type(err).__name__}: {err}")
        finally:
            try:
                host.audit.record(job.who, f"finetune.{job.state}", job.project, job=job.id, error=job.error,
                                  adapter=(job.result or {}).get("adapter"))
            except OSError:
                pass
            job.publish({"type": "end", **job.status()})
            try:
                self._write_record(job)
            except OSError:
                pass


def _summary(result) -> dict | None:
    if result is None:
        return None
    path = result.adapter_path
    return {"adapter": path.name if path else None, "before": result.before, "after": result.after,
            "steps": result.steps, "best_step": result.best_step, "stopped": result.stopped,
            "cancelled": result.cancelled, "heldout": result.heldout, "improved": result.improved,
            "message": result.message, "finished": time.time()}


class JobConflict(VLSMError):
    """Answered 409."""
