"""Finetune jobs: one thread each, progress events kept for replay, cancel, a JSON record on disk.

A job runs ``Project.train`` (``core/project``: the snapshot, the trainer, the save and the rule for
"latest", the same as the dock's and the CLI's), a generator that the job drives one event at a
time, each ``next()`` under the server's model lock, so predictions from other clients interleave
with training steps instead of waiting minutes. The trainer saves the adapter atomically (a crash
leaves the old files and at most a dot-tmp file, never half an adapter). ``jobs/<id>.json`` is
written when a job starts and ends; a server that restarts marks records still "running" as
"interrupted", with a ``finetune.interrupted`` line in the project's audit log.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict

from ..core.atomic import write_bytes_atomic
from ..core.errors import TrainingError, VLSMError
from ..core.project import FinetuneRequest, new_run_id
from .host import ModelHost

FINISHED = ("done", "cancelled", "failed", "interrupted")
JOBS_KEPT = 32  # finished jobs kept in memory for status and replay
AUDIT_WHO = "server"  # who marks a job interrupted: the restarted server (the finetune.started line names the user)


class Job:
    def __init__(self, project: str, settings: dict, who: str = "owner"):
        self.who = who  # the token's name that started it (audit log)
        self.id = new_run_id()  # also the adapter's name: adapter-<job id>.safetensors
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
        return self.host.project(project).layout.jobs / f"{job_id}.json"

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
                # the audit line first: a crash between the two writes repeats it at the next start
                # rather than losing it (the record, once "interrupted", is not looked at again)
                self.host.audit.record(AUDIT_WHO, "finetune.interrupted", path.parent.parent.name,
                                       job=record.get("id", path.stem), error=record["error"])
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
        request = FinetuneRequest(**settings)
        request.config()  # a bad setting is a 422 now, not a failed job later
        owner = self.host.project(project)
        if owner.counts()["train"] == 0:
            raise TrainingError(f"project {project} has no training corrections yet; add corrections first")
        if request.init_adapter:
            self.host.adapter_path(project, request.init_adapter)  # a name of this project (404 otherwise)
        with self._lock:
            if any(j.state == "running" for j in self._jobs.values()):
                raise JobConflict("a finetune is already running on this server; wait for it or cancel it")
            job = Job(project, settings, who)
            self._jobs[job.id] = job
            self._forget_old()
        self._write_record(job)
        self.host.audit.record(who, "finetune.started", project, job=job.id, settings=settings,
                               train=owner.counts()["train"])
        job.thread = threading.Thread(target=self._run, args=(job, owner, request),
                                      name=f"finetune-{job.id}", daemon=True)
        job.thread.start()
        return job

    def _forget_old(self) -> None:
        done = [k for k, j in self._jobs.items() if j.state in FINISHED]
        for key in done[: max(0, len(self._jobs) - JOBS_KEPT)]:
            del self._jobs[key]

    # ------------------------------------------------------------------------ the thread
    def _run(self, job: Job, project, request) -> None:
        from ..core.torch_threads import prepare_thread

        prepare_thread()  # a thread of its own, ended with the job (see core/torch_threads.py)
        host = self.host
        try:
            gen = project.train(request, job.cancel, run_id=job.id,
                                extra_metadata={"server_job": job.id, "project": job.project})
            while True:
                with self.host.model_lock.lock:
                    try:
                        event = next(gen)
                    except StopIteration as stop:
                        result = stop.value
                        break
                job.publish({"type": "progress", **asdict(event)})
            job.result = {**result.to_json(), "finished": time.time()}
            job.state = "cancelled" if result.cancelled else "done"
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


class JobConflict(VLSMError):
    """Answered 409."""
