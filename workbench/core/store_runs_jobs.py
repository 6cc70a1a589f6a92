"""The store's run and job tables: training runs and background jobs (their status, progress and summaries).

Mixed into :class:`~workbench.core.store.Store`; every write is one transaction.

A run reads ``running`` only while its training process holds the run folder's lock (``runs/<name>/.lock``,
:mod:`workbench.core.locks`): when that process was killed (``kill -9``, SIGTERM, a crash of the machine), every
reader of the index sees the run as ``interrupted``, which can be resumed.
"""

from __future__ import annotations

import time
from pathlib import Path

from workbench.core.locks import settle
from workbench.core.store_records import dumps, loads

RUN_LOCK = ".lock"  # in the run folder; held by the process training the run
INTERRUPTED_NOTE = "the training process ended without reporting (killed?); resume with `workbench train --resume {}`"


class RunJobTables:
    """The run index and the job table (needs ``conn`` and ``transaction`` from the store)."""

    def upsert_run(self, name: str, *, task: str, method: str, student: str, status: str, run_dir: str,
                   summary: dict | None = None) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs(name, task, method, student, status, run_dir, summary, created, updated) "
                "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET status = excluded.status, "
                "summary = excluded.summary, updated = excluded.updated",
                (name, task, method, student, status, run_dir, dumps(summary or {}), now, now),
            )

    def run_row(self, name: str) -> dict:
        row = self._row("runs", "name", name, ("summary",), lambda: [r["name"] for r in self.list_runs()])
        return self._settle_run(row)

    def list_runs(self, task: str | None = None) -> list[dict]:
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE (? IS NULL OR task = ?) ORDER BY created", (task, task)).fetchall()
        return [self._settle_run({**dict(r), "summary": loads(r["summary"])}) for r in rows]

    def _settle_run(self, row: dict) -> dict:
        """A ``running`` run whose training process is gone becomes ``interrupted`` (recorded while holding its
        lock, so a resume starting this very moment cannot be overwritten)."""
        if row["status"] != "running":
            return row
        with settle(Path(row["run_dir"]) / RUN_LOCK) as gone:
            if not gone:
                return row
            summary = {**(row["summary"] or {}), "note": INTERRUPTED_NOTE.format(row["name"])}
            with self.transaction() as conn:
                conn.execute("UPDATE runs SET status = 'interrupted', summary = ?, updated = ? "
                             "WHERE name = ? AND status = 'running'", (dumps(summary), time.time(), row["name"]))
            fresh = conn.execute("SELECT * FROM runs WHERE name = ?", (row["name"],)).fetchone()
        return {**dict(fresh), "summary": loads(fresh["summary"])}

    def upsert_job(self, job_id: str, *, kind: str, status: str, spec: dict | None = None, pid: int | None = None,
                   progress: dict | None = None, error: str | None = None) -> None:
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO jobs(id, kind, status, spec, pid, progress, error, created, updated) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (job_id, kind, status, dumps(spec or {}), pid, dumps(progress or {}), error, now, now))
            else:
                conn.execute(
                    "UPDATE jobs SET status = ?, pid = COALESCE(?, pid), progress = COALESCE(?, progress), "
                    "error = COALESCE(?, error), updated = ? WHERE id = ?",
                    (status, pid, dumps(progress) if progress is not None else None, error, now, job_id))

    def job(self, job_id: str) -> dict:
        return self._row("jobs", "id", job_id, ("spec", "progress"))

    def list_jobs(self, kind: str | None = None) -> list[dict]:
        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE (? IS NULL OR kind = ?) ORDER BY created DESC", (kind, kind)).fetchall()
        return [{**dict(r), "spec": loads(r["spec"]), "progress": loads(r["progress"])} for r in rows]
