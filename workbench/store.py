"""The workspace store: one SQLite file (WAL, foreign keys) for tasks, examples, templates, generations, edits,
the run index and jobs.

Every write is one transaction, so a process killed at any point leaves the store consistent and loses at most
the rows of the transaction in flight. Generations and edits are append-only: a new answer or a new edit is a new
row, and the latest one wins when a training set is built.

>>> store = Store.open("workspace")          # doctest: +SKIP
>>> store.list_tasks()                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StoreError, UnknownNameError

SCHEMA_VERSION = 1
DB_NAME = "workbench.sqlite"
EDIT_STATUSES = ("accepted", "rejected", "unreviewed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY, source TEXT NOT NULL, answer_kind TEXT NOT NULL, labels TEXT,
    template TEXT NOT NULL, spec TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS examples (
    task TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE, id TEXT NOT NULL, split TEXT NOT NULL,
    idx INTEGER NOT NULL, input TEXT NOT NULL, label TEXT, fields TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (task, id));
CREATE INDEX IF NOT EXISTS examples_split ON examples(task, split, idx);
CREATE TABLE IF NOT EXISTS templates (
    hash TEXT PRIMARY KEY, name TEXT NOT NULL, parser TEXT NOT NULL, text TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, example_id TEXT NOT NULL,
    teacher TEXT NOT NULL, template_hash TEXT NOT NULL REFERENCES templates(hash),
    raw TEXT, rationale TEXT, label TEXT, parse_error TEXT, error TEXT, label_dist TEXT,
    settings TEXT NOT NULL DEFAULT '{}', seconds REAL, created REAL NOT NULL,
    FOREIGN KEY (task, example_id) REFERENCES examples(task, id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS generations_lookup ON generations(task, teacher, template_hash, example_id);
CREATE TABLE IF NOT EXISTS edits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected', 'unreviewed')),
    rationale TEXT, label TEXT, author TEXT NOT NULL DEFAULT '', created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS edits_generation ON edits(generation_id, id);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY, task TEXT NOT NULL, method TEXT NOT NULL, student TEXT NOT NULL,
    status TEXT NOT NULL, run_dir TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL, pid INTEGER,
    progress TEXT NOT NULL DEFAULT '{}', error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
"""


@dataclass(frozen=True)
class Example:
    """One row of a task split. ``fields`` keeps the source's own columns (the built-in teacher reads them)."""

    id: str
    split: str
    input: str
    label: str | None
    fields: dict = field(default_factory=dict)


@dataclass
class Generation:
    """One teacher answer for one example. ``parse_error`` is the model's mistake; ``error`` a failed request."""

    task: str
    example_id: str
    teacher: str
    template_hash: str
    raw: str | None
    rationale: str | None = None
    label: str | None = None
    parse_error: str | None = None
    error: str | None = None
    label_dist: dict | None = None
    settings: dict = field(default_factory=dict)
    seconds: float | None = None
    id: int | None = None
    created: float | None = None


class Store:
    """Open with :meth:`open`; safe to share between threads (one connection per thread)."""

    def __init__(self, workspace: Path):
        self.workspace = Path(workspace)
        self.path = self.workspace / DB_NAME
        self._local = threading.local()

    @classmethod
    def open(cls, workspace: str | os.PathLike) -> Store:
        workspace = Path(workspace).expanduser().resolve()
        try:
            workspace.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create workspace {workspace}: {err.strerror}") from err
        store = cls(workspace)
        store._migrate()
        return store

    # -- connections and transactions ---------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA busy_timeout = 30000")
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as err:
                if not os.access(self.workspace, os.W_OK):  # WAL needs to write beside the file, even to read
                    raise StoreError(f"the workspace {self.workspace} is read-only; choose a writable "
                                     "--workspace") from err
                raise StoreError(f"cannot open the workspace store {self.path}: {err}") from err
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; any exception rolls back, so nothing is ever half-written."""
        conn = self.conn
        if conn.in_transaction:  # nested: join the outer transaction
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise _store_error(self.path, err) from err
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.OperationalError as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _store_error(self.path, err) from err
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        with self.transaction() as conn:
            # executescript() would COMMIT the open transaction first; run the statements one by one inside it.
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema v{version}, newer than this workbench (v{SCHEMA_VERSION}); "
                    "upgrade the workbench package"
                )
            # Future migrations go here, one `if version < N:` block each.
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def integrity_check(self) -> list[str]:
        """Problems found by SQLite's own checks (empty list: all good)."""
        problems = [r[0] for r in self.conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {tuple(r)}" for r in self.conn.execute("PRAGMA foreign_key_check")]
        return problems

    # -- tasks and examples -------------------------------------------------------------------------------------
    def add_task(
        self,
        name: str,
        *,
        source: str,
        answer_kind: str,
        labels: Iterable[str] | None,
        template: str,
        spec: dict | None,
        examples: Iterable[Example],
        replace: bool = False,
    ) -> dict[str, int]:
        """Store a task and its examples in one transaction. Returns the number of examples per split."""
        counts: dict[str, int] = {}
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM tasks WHERE name = ?", (name,)).fetchone():
                if not replace:
                    raise StoreError(f"task {name!r} already exists in this workspace; pick another name")
                conn.execute("DELETE FROM tasks WHERE name = ?", (name,))
            conn.execute(
                "INSERT INTO tasks(name, source, answer_kind, labels, template, spec, created) VALUES (?,?,?,?,?,?,?)",
                (name, source, answer_kind, _dumps(list(labels) if labels else None), template,
                 _dumps(spec or {}), time.time()),
            )
            rows = []
            for ex in examples:
                idx = counts.get(ex.split, 0)
                counts[ex.split] = idx + 1
                rows.append((name, ex.id, ex.split, idx, ex.input, ex.label, _dumps(ex.fields)))
            try:
                conn.executemany(
                    "INSERT INTO examples(task, id, split, idx, input, label, fields) VALUES (?,?,?,?,?,?,?)", rows
                )
            except sqlite3.IntegrityError as err:
                raise StoreError(f"task {name!r}: duplicate example id ({err})") from err
        return counts

    def task_row(self, name: str) -> dict:
        row = self.conn.execute("SELECT * FROM tasks WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownNameError("task", name, [t["name"] for t in self.list_tasks()])
        out = dict(row)
        out["labels"] = _loads(out["labels"])
        out["spec"] = _loads(out["spec"])
        return out

    def has_task(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM tasks WHERE name = ?", (name,)).fetchone() is not None

    def list_tasks(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT t.name, t.source, t.answer_kind, e.split, COUNT(e.id) AS n FROM tasks t "
            "LEFT JOIN examples e ON e.task = t.name GROUP BY t.name, e.split ORDER BY t.created, e.split"
        ).fetchall()
        tasks: dict[str, dict] = {}
        for r in rows:
            t = tasks.setdefault(r["name"], {"name": r["name"], "source": r["source"],
                                            "answer_kind": r["answer_kind"], "splits": {}})
            if r["split"] is not None:
                t["splits"][r["split"]] = r["n"]
        return list(tasks.values())

    def examples(self, task: str, split: str | None = None, limit: int | None = None) -> list[Example]:
        sql = "SELECT id, split, input, label, fields FROM examples WHERE task = ?"
        args: list[Any] = [task]
        if split is not None:
            sql += " AND split = ?"
            args.append(split)
        sql += " ORDER BY split, idx"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [Example(r["id"], r["split"], r["input"], r["label"], _loads(r["fields"]))
                for r in self.conn.execute(sql, args)]

    def example(self, task: str, example_id: str) -> Example:
        r = self.conn.execute(
            "SELECT id, split, input, label, fields FROM examples WHERE task = ? AND id = ?", (task, example_id)
        ).fetchone()
        if r is None:
            raise UnknownNameError("example", f"{task}/{example_id}")
        return Example(r["id"], r["split"], r["input"], r["label"], _loads(r["fields"]))

    # -- templates and generations ------------------------------------------------------------------------------
    def add_template(self, name: str, parser: str, text: str, hash_: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO templates(hash, name, parser, text, created) VALUES (?,?,?,?,?)",
                (hash_, name, parser, text, time.time()),
            )

    def template(self, hash_: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM templates WHERE hash = ?", (hash_,)).fetchone()
        return dict(row) if row else None

    def add_generations(self, gens: Iterable[Generation]) -> list[int]:
        """Append generations in one transaction; returns their ids."""
        ids = []
        now = time.time()
        with self.transaction() as conn:
            for g in gens:
                cur = conn.execute(
                    "INSERT INTO generations(task, example_id, teacher, template_hash, raw, rationale, label, "
                    "parse_error, error, label_dist, settings, seconds, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (g.task, g.example_id, g.teacher, g.template_hash, g.raw, g.rationale, g.label, g.parse_error,
                     g.error, _dumps(g.label_dist) if g.label_dist is not None else None, _dumps(g.settings),
                     g.seconds, now),
                )
                g.id, g.created = cur.lastrowid, now
                ids.append(cur.lastrowid)
        return ids

    def done_example_ids(self, task: str, teacher: str, template_hash: str, settings_key: str | None = None) -> set[str]:
        """Examples that already have a successful (no request ``error``) generation for this teacher/template."""
        sql = ("SELECT DISTINCT example_id FROM generations WHERE task = ? AND teacher = ? AND template_hash = ? "
               "AND error IS NULL")
        args: list[Any] = [task, teacher, template_hash]
        if settings_key is not None:
            sql += " AND json_extract(settings, '$.key') = ?"
            args.append(settings_key)
        return {r[0] for r in self.conn.execute(sql, args)}

    def generation(self, generation_id: int) -> Generation:
        row = self.conn.execute("SELECT * FROM generations WHERE id = ?", (generation_id,)).fetchone()
        if row is None:
            raise UnknownNameError("generation", str(generation_id))
        return _generation(row)

    def teachers_of(self, task: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT teacher, template_hash, COUNT(*) AS n, SUM(parse_error IS NOT NULL) AS parse_errors, "
            "SUM(error IS NOT NULL) AS errors, MAX(created) AS last FROM generations WHERE task = ? "
            "GROUP BY teacher, template_hash ORDER BY last DESC", (task,)
        ).fetchall()
        return [dict(r) for r in rows]

    def latest_generations(self, task: str, teacher: str, template_hash: str | None = None,
                           split: str | None = None) -> list[dict]:
        """Per example: the example joined with the teacher's latest generation and the latest edit."""
        sql = """
        WITH g AS (
            SELECT * FROM generations WHERE id IN (
                SELECT MAX(id) FROM generations WHERE task = :task AND teacher = :teacher
                AND (:hash IS NULL OR template_hash = :hash) AND error IS NULL GROUP BY example_id)),
        e AS (SELECT * FROM edits WHERE id IN (
                SELECT MAX(id) FROM edits WHERE generation_id IN (SELECT id FROM g) GROUP BY generation_id))
        SELECT x.id AS example_id, x.split, x.idx, x.input, x.label AS gold, x.fields,
               g.id AS generation_id, g.template_hash, g.raw, g.rationale AS teacher_rationale,
               g.label AS teacher_label, g.parse_error, g.label_dist,
               e.status, e.rationale AS edit_rationale, e.label AS edit_label, e.id AS edit_id
        FROM examples x JOIN g ON g.task = x.task AND g.example_id = x.id
        LEFT JOIN e ON e.generation_id = g.id
        WHERE x.task = :task AND (:split IS NULL OR x.split = :split)
        ORDER BY x.split, x.idx
        """
        rows = self.conn.execute(sql, {"task": task, "teacher": teacher, "hash": template_hash, "split": split})
        out = []
        for r in rows:
            d = dict(r)
            d["fields"] = _loads(d["fields"])
            d["label_dist"] = _loads(d["label_dist"]) if d["label_dist"] else None
            out.append(d)
        return out

    # -- edits --------------------------------------------------------------------------------------------------
    def add_edit(self, generation_id: int, *, status: str, rationale: str | None, label: str | None,
                 author: str = "") -> int:
        if status not in EDIT_STATUSES:
            raise ValueError(f"status must be one of {EDIT_STATUSES}, not {status!r}")
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO edits(generation_id, status, rationale, label, author, created) VALUES (?,?,?,?,?,?)",
                (generation_id, status, rationale, label, author, time.time()),
            )
            return cur.lastrowid

    def latest_edit(self, generation_id: int) -> dict | None:
        row = self.conn.execute(
            "SELECT * FROM edits WHERE generation_id = ? ORDER BY id DESC LIMIT 1", (generation_id,)
        ).fetchone()
        return dict(row) if row else None

    def edit_history(self, generation_id: int) -> list[dict]:
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM edits WHERE generation_id = ? ORDER BY id", (generation_id,))]

    # -- runs and jobs ------------------------------------------------------------------------------------------
    def upsert_run(self, name: str, *, task: str, method: str, student: str, status: str, run_dir: str,
                   summary: dict | None = None) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs(name, task, method, student, status, run_dir, summary, created, updated) "
                "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET status = excluded.status, "
                "summary = excluded.summary, updated = excluded.updated",
                (name, task, method, student, status, run_dir, _dumps(summary or {}), now, now),
            )

    def run_row(self, name: str) -> dict:
        row = self.conn.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownNameError("run", name, [r["name"] for r in self.list_runs()])
        out = dict(row)
        out["summary"] = _loads(out["summary"])
        return out

    def list_runs(self, task: str | None = None) -> list[dict]:
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE (? IS NULL OR task = ?) ORDER BY created", (task, task)).fetchall()
        return [{**dict(r), "summary": _loads(r["summary"])} for r in rows]

    def upsert_job(self, job_id: str, *, kind: str, status: str, spec: dict | None = None, pid: int | None = None,
                   progress: dict | None = None, error: str | None = None) -> None:
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO jobs(id, kind, status, spec, pid, progress, error, created, updated) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (job_id, kind, status, _dumps(spec or {}), pid, _dumps(progress or {}), error, now, now))
            else:
                conn.execute(
                    "UPDATE jobs SET status = ?, pid = COALESCE(?, pid), progress = COALESCE(?, progress), "
                    "error = COALESCE(?, error), updated = ? WHERE id = ?",
                    (status, pid, _dumps(progress) if progress is not None else None, error, now, job_id))

    def job(self, job_id: str) -> dict:
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownNameError("job", job_id)
        return {**dict(row), "spec": _loads(row["spec"]), "progress": _loads(row["progress"])}

    def list_jobs(self, kind: str | None = None) -> list[dict]:
        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE (? IS NULL OR kind = ?) ORDER BY created DESC", (kind, kind)).fetchall()
        return [{**dict(r), "spec": _loads(r["spec"]), "progress": _loads(r["progress"])} for r in rows]


def _generation(row: sqlite3.Row) -> Generation:
    d = dict(row)
    d["settings"] = _loads(d["settings"])
    d["label_dist"] = _loads(d["label_dist"]) if d["label_dist"] else None
    return Generation(**d)


def _store_error(path: Path, err: sqlite3.OperationalError) -> StoreError:
    msg = str(err)
    if "readonly" in msg or "read-only" in msg:
        return StoreError(f"the workspace store {path} is read-only; choose a writable --workspace")
    if "disk" in msg and ("full" in msg or "I/O" in msg):
        return StoreError(f"the disk holding {path} is full; free space and retry (nothing was half-written)")
    return StoreError(f"workspace store {path}: {msg}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None
