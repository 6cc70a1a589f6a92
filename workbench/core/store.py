"""The workspace store: one SQLite file (WAL, foreign keys) for tasks, examples, templates, generations, edits,
claims on work in progress, the run index and jobs.

Every write is one transaction, so a process killed at any point leaves the store consistent and loses at most
the rows of the transaction in flight. Generations and edits are append-only: a new answer or a new edit is a new
row, and the latest one wins when a training set is built.

>>> store = Store.open("my-workspace")       # created if missing
>>> store.list_tasks()
[]
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.core.errors import StoreError, UnknownNameError
from workbench.core.store_generations import EDIT_STATUSES, GenerationTables
from workbench.core.store_records import Example, Generation, dumps, loads
from workbench.core.store_runs_jobs import RunJobTables
from workbench.core.surrogates import printable

__all__ = ["DB_NAME", "EDIT_STATUSES", "SCHEMA_VERSION", "Example", "Generation", "Store", "is_disk_full"]

SCHEMA_VERSION = 1
DB_NAME = "workbench.sqlite"

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
CREATE TABLE IF NOT EXISTS claims (
    work TEXT NOT NULL, example_id TEXT NOT NULL, owner TEXT NOT NULL,
    PRIMARY KEY (work, example_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, spec TEXT NOT NULL, pid INTEGER,
    progress TEXT NOT NULL DEFAULT '{}', error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
"""


class Store(GenerationTables, RunJobTables):
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
        except UnicodeEncodeError as err:  # SQLite takes valid Unicode only: a lone surrogate cannot be stored
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError("cannot store text that is not valid Unicode (it holds a lone surrogate such as "
                             "\\ud800, or bytes that are not UTF-8); clean the data and retry (nothing was "
                             "written)") from err
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
            version = self._schema_version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema v{version}, newer than this workbench (v{SCHEMA_VERSION}); "
                    "upgrade the workbench package"
                )
            # Future migrations go here, one `if version < N:` block each.
            self._check_columns(conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        text = str(row[0]).strip() if row else "0"
        if not text.isascii() or not text.isdigit():
            raise StoreError(f"{self.path} is not a workbench store this version can read: its schema_version is "
                             f"{printable(text[:40])!r}, not a whole number; move the file away or choose another "
                             "--workspace")
        return int(text)

    def _check_columns(self, conn: sqlite3.Connection) -> None:
        """A table made by something else (or an older, hand-edited file) may lack columns the workbench reads:
        ``CREATE TABLE IF NOT EXISTS`` keeps it as it is, so say so now rather than fail on a later query."""
        for table, wanted in _expected_columns().items():
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in wanted if c not in have]
            if missing:
                raise StoreError(f"{self.path} is not a workbench store this version can read: table {table!r} "
                                 f"lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; move the file "
                                 "away or choose another --workspace")

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
                (name, source, answer_kind, dumps(list(labels) if labels else None), template,
                 dumps(spec or {}), time.time()),
            )
            rows = []
            for ex in examples:
                idx = counts.get(ex.split, 0)
                counts[ex.split] = idx + 1
                rows.append((name, ex.id, ex.split, idx, ex.input, ex.label, dumps(ex.fields)))
            try:
                conn.executemany(
                    "INSERT INTO examples(task, id, split, idx, input, label, fields) VALUES (?,?,?,?,?,?,?)", rows
                )
            except sqlite3.IntegrityError as err:
                raise StoreError(f"task {name!r}: duplicate example id ({err})") from err
        return counts

    def task_row(self, name: str) -> dict:
        return self._row("tasks", "name", name, ("labels", "spec"), lambda: [t["name"] for t in self.list_tasks()])

    def _row(self, table: str, key: str, value: str, json_columns: tuple[str, ...], known=lambda: ()) -> dict:
        """One row of ``table`` by its key, JSON columns decoded; an unknown key names what is known."""
        row = self.conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,)).fetchone()  # noqa: S608
        if row is None:
            raise UnknownNameError(table.rstrip("s"), value, known())
        out = dict(row)
        for column in json_columns:
            out[column] = loads(out[column])
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
        return [Example(r["id"], r["split"], r["input"], r["label"], loads(r["fields"]))
                for r in self.conn.execute(sql, args)]

    def example(self, task: str, example_id: str) -> Example:
        r = self.conn.execute(
            "SELECT id, split, input, label, fields FROM examples WHERE task = ? AND id = ?", (task, example_id)
        ).fetchone()
        if r is None:
            raise UnknownNameError("example", f"{task}/{example_id}")
        return Example(r["id"], r["split"], r["input"], r["label"], loads(r["fields"]))


@functools.cache
def _expected_columns() -> dict[str, tuple[str, ...]]:
    """Each table's columns as :data:`_SCHEMA` makes them (read from an in-memory database)."""
    conn = sqlite3.connect(":memory:")
    try:
        for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
            conn.execute(statement)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%'")]
        return {t: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        conn.close()


def is_disk_full(err: BaseException, where: str | os.PathLike | None = None) -> bool:
    """Whether an error means the disk (or a quota, or a file size limit) ran out of room. safetensors and SQLite
    say so in their own words; torch's writer only says its stream failed, so with ``where`` an I/O-looking error
    counts when the file system holding ``where`` has (almost) no room left."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(err)
    if any(s in text for s in ("No space left", "StorageFull", "code: 28", "database or disk is full",
                               "File too large", "Disk quota exceeded")):
        return True
    if where is None or not isinstance(err, (OSError, RuntimeError)):
        return False
    try:
        fs = os.statvfs(where)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < 1024 * 1024


def write_error(err: OSError, workspace: str | os.PathLike, folder: str | os.PathLike, *,
                again: str = "retry") -> StoreError:
    """A clean error for an OS error while writing into the workspace before anything was stored: a full disk
    says so (and how to go on: ``again``); anything else names the folder."""
    if is_disk_full(err):
        return StoreError(f"the disk holding {workspace} is full; free space and {again} (nothing was written)")
    return StoreError(f"cannot write to {folder} ({err.strerror or err}); choose a writable --workspace")


def _store_error(path: Path, err: sqlite3.OperationalError) -> StoreError:
    msg = str(err)
    if "readonly" in msg or "read-only" in msg:
        return StoreError(f"the workspace store {path} is read-only; choose a writable --workspace")
    if "disk" in msg and ("full" in msg or "I/O" in msg):
        return StoreError(f"the disk holding {path} is full; free space and retry (nothing was half-written)")
    return StoreError(f"workspace store {path}: {msg}")
