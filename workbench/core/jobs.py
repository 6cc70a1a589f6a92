"""Background jobs: generation, training or evaluation in a separate process, keyed by an id.

A job survives the browser tab (and the app) that started it: it is a detached process that writes its status and
progress to the workspace store, and its log to ``<workspace>/jobs/<id>/log.txt``. Cancel sets a flag the job
polls (and sends SIGTERM); a job whose process died without saying so (``kill -9``) reads as ``interrupted``.

Job kinds are a registry (:data:`JOB_KINDS`, entry-point group ``workbench.jobs``): ``generate`` lives with
generation, ``train`` with the runs, and this module imports neither.

Heavy jobs queue: on a CPU machine two trainings side by side each run at a fraction of their speed and neither
finishes when it said it would, so jobs that compute (training, sweeps, generation with a local model) take the
workspace's one *slot* in turn, oldest first; a job kind says whether a job is heavy (its function's ``heavy``
attribute: a bool, or a function of the store and the job's spec). Jobs that only wait on an endpoint or read
released answers run beside them. ``$WORKBENCH_HEAVY_JOBS`` sets the number of slots (1; more on a machine whose
GPU has room).

>>> job_id = start_job(store, "generate", {"task": "wordproblems", "teacher": "builtin", "limit": 100})
>>> job_status(store, job_id)["status"] in ("queued", "running", "done")     # it runs in its own process
True
>>> wait_job(store, job_id)["status"]
'done'

Run a job in the foreground (what the detached process does): ``python -m workbench.core.jobs --workspace W JOB_ID``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.core.errors import WorkbenchError
from workbench.core.events import Event, Phase
from workbench.core.paths import inside
from workbench.core.registry import Registry
from workbench.core.store import Store

ACTIVE = ("queued", "running", "cancelling")
FINAL = ("done", "failed", "cancelled", "interrupted")

JobFn = Callable[[Store, dict, "JobContext"], dict]
# A kind's module is imported only when such a job runs: a generation job does not load torch.
JOB_KINDS: Registry[JobFn] = Registry("job kind", group="workbench.jobs")


def register_job_kind(kind: str) -> Callable[[JobFn], JobFn]:
    return JOB_KINDS.register(kind)


@dataclass
class JobContext:
    """Handed to a job function: report progress, log lines, and ask whether to stop.

    A job sets ``state`` (a :class:`~workbench.core.events.TrainingState` or a ``GenerationProgress``) and reports
    typed events with :meth:`progress`; the folded state is what the job row's ``progress`` holds.
    """

    store: Store
    job_id: str
    dir: Path
    state: object | None = None
    _stop: bool = False
    _last_check: float = 0.0
    _last_progress: float = 0.0
    _pending: dict | None = field(default=None, repr=False)

    def progress(self, event: Event, force: bool = False) -> None:
        """Fold an event into the state; writes to the store at most twice a second unless ``force``."""
        if self.state is not None:
            self.state = self.state.apply(event)
        line = event.line()
        if line:  # the job's log tells the story too: steps, evaluations, checkpoints, the end
            self.log(line)
        data = self.state.to_dict() if self.state is not None else event.to_dict()
        now = time.monotonic()
        self._pending = data
        if force or now - self._last_progress >= 0.5:
            self._last_progress = now
            self._write_progress(data)

    def _write_progress(self, data: dict) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE jobs SET progress = ?, updated = ? WHERE id = ?",
                         (json.dumps(data, default=str), time.time(), self.job_id))
        self._pending = None

    def flush(self) -> None:
        if self._pending is not None:
            self._write_progress(self._pending)

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def should_stop(self) -> bool:
        """True once cancel was asked for (polled from the store at most once a second)."""
        now = time.monotonic()
        if not self._stop and now - self._last_check >= 1.0:
            self._last_check = now
            row = self.store.conn.execute("SELECT status FROM jobs WHERE id = ?", (self.job_id,)).fetchone()
            self._stop = row is not None and row[0] == "cancelling"
        return self._stop

    def request_stop(self) -> None:
        self._stop = True


def job_dir(store: Store, job_id: str) -> Path:
    return inside(store.workspace / "jobs", job_id, "job")


def start_job(store: Store, kind: str, spec: dict, *, job_id: str | None = None, detach: bool = True) -> str:
    """Queue a job and start its process. ``detach=False`` runs it in this process (tests, notebooks)."""
    if kind not in JOB_KINDS:
        JOB_KINDS[kind]  # raises UnknownNameError with the known kinds
    job_id = job_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    json.dumps(spec)  # a spec must be plain JSON: it crosses a process boundary
    store.upsert_job(job_id, kind=kind, status="queued", spec=spec)
    folder = job_dir(store, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    if not detach:
        run_job(store, job_id)
        return job_id
    log = open(folder / "log.txt", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.core.jobs", "--workspace", str(store.workspace), job_id],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        # No progress bars in the log (saving a model draws one per shard); its lines are the job's events.
        env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_VERBOSITY": "warning"},
    )
    log.close()
    store.upsert_job(job_id, kind=kind, status="queued", pid=proc.pid)
    return job_id


def is_heavy(store: Store, kind: str, spec: dict) -> bool:
    """Whether a job computes (and so queues for the slot): its kind's ``heavy`` attribute, True by default."""
    heavy = getattr(JOB_KINDS[kind], "heavy", True)
    return bool(heavy(store, spec)) if callable(heavy) else bool(heavy)


def heavy_slots() -> int:
    try:
        return max(1, int(os.environ.get("WORKBENCH_HEAVY_JOBS", "1")))
    except ValueError:
        return 1


def job_queue(store: Store) -> list[dict]:
    """The heavy jobs that are running or waiting, in the order they get the slot: running first, then the
    waiting ones oldest first, each with its ``position`` (0: running)."""
    active = [j for j in list_jobs(store) if j["status"] in ACTIVE and _heavy_row(store, j)]
    running = [j for j in active if j["status"] in ("running", "cancelling")]
    waiting = sorted((j for j in active if j["status"] == "queued"), key=lambda j: (j["created"], j["id"]))
    return [{**j, "position": 0} for j in running] + [{**j, "position": i + 1} for i, j in enumerate(waiting)]


def queue_line(store: Store, job: dict) -> str | None:
    """For a job waiting for its turn: ``queued (2nd in line) · behind train-…``; None for any other job."""
    from workbench.core.events import describe_phase

    if job.get("status") != "queued":
        return None
    queue = job_queue(store)
    place = next((q["position"] for q in queue if q["id"] == job["id"]), 0)
    running = [q["id"] for q in queue if q["position"] == 0]
    return describe_phase("queued", place, 0, None, f"behind {', '.join(running)}" if running else None)


def _heavy_row(store: Store, row: dict) -> bool:
    try:
        return is_heavy(store, row["kind"], row["spec"])
    except WorkbenchError:  # a kind no longer registered: it cannot run, so it holds nothing
        return False


def _take_slot(store: Store, ctx: JobContext, kind: str, poll: float = 1.0):
    """Wait for a heavy job's turn: the slot's lock, taken when this job is the oldest waiting one. Reports its
    place in the queue meanwhile; returns the held lock, or None when the job was cancelled while it waited."""
    from workbench.core.locks import LockHeld, OwnerLock

    folder = store.workspace / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    last = None
    while True:
        if ctx.should_stop():
            return None
        queue = job_queue(store)
        ahead = [j for j in queue if j["id"] != ctx.job_id and j["status"] == "queued"
                 and (j["created"], j["id"]) < _created(store, ctx.job_id)]
        if not ahead:
            for slot in range(heavy_slots()):
                try:
                    return OwnerLock.acquire(folder / f"heavy-{slot}.lock", note=ctx.job_id)
                except LockHeld:
                    continue
        running = [j["id"] for j in queue if j["status"] != "queued"]
        state = (len(ahead) + 1, tuple(running))
        if state != last:
            last = state
            note = f"behind {', '.join(running)}" if running else "waiting for the machine"
            ctx.progress(Phase(name="queued", done=len(ahead) + 1, note=note), force=True)
        time.sleep(poll)


def _created(store: Store, job_id: str) -> tuple:
    row = store.job(job_id)
    return row["created"], row["id"]


def run_job(store: Store, job_id: str) -> dict:
    """Run a queued job in this process, recording its outcome. Returns the job's final row. A heavy job first
    waits for its turn (:func:`_take_slot`); a job cancelled while it waits ends cancelled, having run nothing."""
    row = store.job(job_id)
    ctx = JobContext(store, job_id, job_dir(store, job_id))
    ctx.dir.mkdir(parents=True, exist_ok=True)
    store.upsert_job(job_id, kind=row["kind"], status="queued", pid=os.getpid())
    previous = signal.signal(signal.SIGTERM, lambda *_: ctx.request_stop()) if _main_thread() else None
    slot = None
    try:
        if row["kind"] in JOB_KINDS and is_heavy(store, row["kind"], row["spec"]):
            slot = _take_slot(store, ctx, row["kind"])
            if slot is None:
                store.upsert_job(job_id, kind=row["kind"], status="cancelled")
                return job_status(store, job_id)
        store.upsert_job(job_id, kind=row["kind"], status="running", pid=os.getpid())
        result = JOB_KINDS[row["kind"]](store, row["spec"], ctx)
        ctx.flush()
        status = "cancelled" if ctx.should_stop() else "done"
        store.upsert_job(job_id, kind=row["kind"], status=status,
                         progress={**(store.job(job_id)["progress"] or {}), "result": result})
    except WorkbenchError as err:
        ctx.log(f"error: {err}")
        store.upsert_job(job_id, kind=row["kind"], status="failed", error=str(err))
    except Exception as err:  # a bug or a crash (OOM, NaN): the job fails with its reason, the app lives on
        ctx.log(traceback.format_exc())
        reason = f"{type(err).__name__}: {err}"
        if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch's, without torch
            reason += " — out of memory: lower the batch size or the max lengths, or pick a smaller student"
        store.upsert_job(job_id, kind=row["kind"], status="failed", error=reason)
    finally:
        if slot is not None:
            slot.release()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return job_status(store, job_id)


def cancel_job(store: Store, job_id: str) -> dict:
    row = job_status(store, job_id)
    if row["status"] not in ACTIVE:
        return row
    store.upsert_job(job_id, kind=row["kind"], status="cancelling")
    if row.get("pid") and _alive(row["pid"]) and row["pid"] != os.getpid():
        try:
            os.kill(row["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    return job_status(store, job_id)


def job_status(store: Store, job_id: str) -> dict:
    """The job's row; an active job whose process is gone is marked ``interrupted`` (it can be resumed)."""
    row = store.job(job_id)
    if row["status"] in ACTIVE and row.get("pid") and not _alive(row["pid"]):
        status = "cancelled" if row["status"] == "cancelling" else "interrupted"
        store.upsert_job(job_id, kind=row["kind"], status=status,
                         error=None if status == "cancelled" else "the job's process ended without reporting")
        row = store.job(job_id)
    return row


def list_jobs(store: Store, kind: str | None = None) -> list[dict]:
    return [job_status(store, r["id"]) for r in store.list_jobs(kind)]


def wait_job(store: Store, job_id: str, timeout: float = 600, poll: float = 0.5) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = job_status(store, job_id)
        if row["status"] in FINAL:
            return row
        time.sleep(poll)
    raise TimeoutError(f"job {job_id} still {row['status']} after {timeout:.0f} s")


def read_log(store: Store, job_id: str, tail: int = 40) -> str:
    path = job_dir(store, job_id) / "log.txt"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-tail:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.core.jobs", description="run one queued job")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("job_id")
    args = parser.parse_args(argv)
    from workbench.core import offline

    offline.apply()  # a job is an entry point too: off the hub unless whoever started it opted in
    store = Store.open(args.workspace)
    row = run_job(store, args.job_id)
    return 0 if row["status"] in ("done", "cancelled") else 1


if __name__ == "__main__":
    # Run through the real module, not this ``__main__`` copy, so job kinds register where run_job looks.
    from workbench.core.jobs import main as _main

    sys.exit(_main())
