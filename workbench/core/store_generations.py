"""The store's generation tables: prompt templates, teacher generations (append-only), edits with history, and
claims on examples being answered.

Mixed into :class:`~workbench.core.store.Store`; every write is one transaction.

Claims: a generating process claims the examples of a batch before it asks the teacher (one transaction: what
is answered or claimed by a live process is skipped), and releases them in the transaction that stores the
answers. A claim lives as long as its owner's lock (:mod:`workbench.core.locks`): when the owner dies, however
it dies, the next claimer drops its claims. So two processes on the same task and teacher never ask about the
same example, and a killed one blocks nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.core.errors import UnknownNameError
from workbench.core.locks import is_held
from workbench.core.store_records import Generation, dumps, generation_from_row, loads

EDIT_STATUSES = ("accepted", "rejected", "unreviewed")


def _work_key(task: str, teacher: str, template_hash: str, settings_key: str) -> str:
    """One short key for what is being generated (task, teacher, template, settings), for the claims table."""
    return hashlib.sha256("\0".join((task, teacher, template_hash, settings_key)).encode()).hexdigest()[:16]


class GenerationTables:
    """Templates, generations and edits (needs ``conn`` and ``transaction`` from the store)."""

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
                     g.error, dumps(g.label_dist) if g.label_dist is not None else None, dumps(g.settings),
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

    # -- claims on work in progress -------------------------------------------------------------------------------
    # A claim row is small (one page holds ~100): claiming a batch costs a few pages of the WAL, so a nearly full
    # disk still takes whole batches.
    def owner_lock_path(self, owner: str) -> Path:
        """The lock file whose holder is claim owner ``owner`` (``<workspace>/locks/<owner>.lock``)."""
        return self.workspace / "locks" / f"{owner}.lock"

    def claim_examples(self, task: str, teacher: str, template_hash: str, settings_key: str,
                       example_ids: Iterable[str], owner: str) -> list[str]:
        """Claim, in one transaction, those of ``example_ids`` that have no successful generation for this
        teacher, template and settings and no claim by a live owner; returns them (in the order given)."""
        work = _work_key(task, teacher, template_hash, settings_key)
        wanted = list(dict.fromkeys(example_ids))
        with self.transaction() as conn:
            others = [r[0] for r in conn.execute("SELECT DISTINCT owner FROM claims WHERE owner != ?", (owner,))]
            for dead in (o for o in others if not is_held(self.owner_lock_path(o))):
                conn.execute("DELETE FROM claims WHERE owner = ?", (dead,))
                with contextlib.suppress(OSError):
                    self.owner_lock_path(dead).unlink()
            taken = {r[0] for r in conn.execute("SELECT example_id FROM claims WHERE work = ?", (work,))}
            taken |= self.done_example_ids(task, teacher, template_hash, settings_key)
            mine = [e for e in wanted if e not in taken]
            conn.executemany("INSERT INTO claims(work, example_id, owner) VALUES (?,?,?)",
                             [(work, e, owner) for e in mine])
        return mine

    def release_claims(self, owner: str, example_ids: Iterable[str] | None = None) -> None:
        """Drop ``owner``'s claims (all, or those on ``example_ids``); joins the caller's transaction if any."""
        with self.transaction() as conn:
            if example_ids is None:
                conn.execute("DELETE FROM claims WHERE owner = ?", (owner,))
            else:
                conn.executemany("DELETE FROM claims WHERE owner = ? AND example_id = ?",
                                 [(owner, e) for e in example_ids])

    def claimed_example_ids(self, task: str, teacher: str, template_hash: str, settings_key: str) -> dict[str, str]:
        """Example id → owner of the live claims on this teacher, template and settings (for tests and views)."""
        rows = self.conn.execute("SELECT example_id, owner FROM claims WHERE work = ?",
                                 (_work_key(task, teacher, template_hash, settings_key),)).fetchall()
        return {r[0]: r[1] for r in rows if is_held(self.owner_lock_path(r[1]))}

    def generation(self, generation_id: int) -> Generation:
        if not isinstance(generation_id, int) or not 0 < generation_id < 2**63:  # SQLite's INTEGER range
            raise UnknownNameError("generation", str(generation_id))
        row = self.conn.execute("SELECT * FROM generations WHERE id = ?", (generation_id,)).fetchone()
        if row is None:
            raise UnknownNameError("generation", str(generation_id))
        return generation_from_row(row)

    def teachers_of(self, task: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT teacher, template_hash, COUNT(*) AS n, SUM(parse_error IS NOT NULL) AS parse_errors, "
            "SUM(error IS NOT NULL) AS errors, MAX(created) AS last FROM generations WHERE task = ? "
            "GROUP BY teacher, template_hash ORDER BY last DESC", (task,)
        ).fetchall()
        return [dict(r) for r in rows]

    def latest_generations(self, task: str, teacher: str, template_hash: str | None = None,
                           split: str | None = None, unless_template_has: str | None = None) -> list[dict]:
        """Per example: the example joined with the teacher's latest generation and the latest edit.

        ``unless_template_has``: only generations whose prompt template does not contain this text (the gold
        answer's placeholder: answers written with the answer in view are never a teacher's accuracy)."""
        sql = """
        WITH g AS (
            SELECT * FROM generations WHERE id IN (
                SELECT MAX(id) FROM generations WHERE task = :task AND teacher = :teacher
                AND (:hash IS NULL OR template_hash = :hash) AND error IS NULL
                AND (:hidden IS NULL OR template_hash NOT IN (
                    SELECT hash FROM templates WHERE instr(text, :hidden) > 0))
                GROUP BY example_id)),
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
        rows = self.conn.execute(sql, {"task": task, "teacher": teacher, "hash": template_hash, "split": split,
                                       "hidden": unless_template_has})
        out = []
        for r in rows:
            d = dict(r)
            d["fields"] = loads(d["fields"])
            d["label_dist"] = loads(d["label_dist"]) if d["label_dist"] else None
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
