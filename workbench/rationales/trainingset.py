"""Training sets: examples joined with a teacher's latest generation and the latest edit, after filters.

The resolved rows and their fingerprint are frozen into each run, so a run can always say exactly what it saw.

>>> from workbench.data.tasks import load_task
>>> ts = build_training_set(store, load_task("quantnli", store), teacher="builtin", label_source="gold")
>>> ts.fingerprint, len(ts.rows), ts.dropped
('fd30ff2b4fada2c0', 24, {})
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from workbench.core.errors import ConfigError, NothingToDoError, StoreError
from workbench.core.store import Store
from workbench.data.tasks import Task

LABEL_SOURCES = ("gold", "teacher")
EXPORT_COLUMNS = ("example_id", "input", "label", "rationale", "gold", "teacher_label", "status", "edited",
                  "generation_id")


@dataclass
class TrainingSet:
    task: str
    teacher: str | None
    label_source: str
    rows: list[dict]
    dropped: dict[str, int] = field(default_factory=dict)
    filters: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rows)

    def summary(self) -> dict:
        return {"task": self.task, "teacher": self.teacher, "label_source": self.label_source, "rows": len(self.rows),
                "dropped": self.dropped, "filters": self.filters, "fingerprint": self.fingerprint}

    def export(self, path: str | Path) -> Path:
        """Write the rows as JSONL or CSV (by the file's suffix)."""
        path = Path(path)
        if path.suffix.lower() not in (".jsonl", ".csv"):
            raise ConfigError(f"export to .jsonl or .csv, not {path.suffix or 'no suffix'}")
        text = self.to_csv() if path.suffix.lower() == ".csv" else self.to_jsonl()
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)  # atomic: a reader never sees half a file
        except OSError as err:  # disk full, read-only folder, no such folder: say so, leave no partial file
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write {path}: {err.strerror or err}; nothing was written — free space or "
                             "choose another folder") from err
        return path

    def default_path(self, store: Store, fmt: str = "jsonl") -> Path:
        """Where an export goes when no file is named: ``exports/<task>-<teacher>-<time>.<fmt>`` in the workspace
        (the app's Export button; ``workbench export`` without ``--out``)."""
        suffix = {"jsonl": ".jsonl", "csv": ".csv"}.get(str(fmt).lower())
        if suffix is None:
            raise ConfigError(f"export as JSONL or CSV, not {fmt!r}")
        folder = exports_dir(store)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.task}-{self.teacher or 'gold'}")
        return folder / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"

    def to_jsonl(self) -> str:
        return "".join(json.dumps({k: r.get(k) for k in EXPORT_COLUMNS}, ensure_ascii=False) + "\n" for r in self.rows)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        return buf.getvalue()


def fingerprint(rows: list[dict]) -> str:
    """What a set of training rows is, in 16 hex digits: ids, inputs, labels, rationales and soft labels, in order."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["example_id"], r["input"], r["label"], r.get("rationale"), r.get("label_dist")],
                            ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:16]


def resolve_row(row: dict) -> dict:
    """Apply the latest edit to a generation row: the edited rationale/label win over the teacher's."""
    edited_rationale, edited_label = row.get("edit_rationale"), row.get("edit_label")
    rationale = edited_rationale if edited_rationale is not None else row["teacher_rationale"]
    label = edited_label if edited_label is not None else row["teacher_label"]
    edited = (edited_rationale is not None and edited_rationale != row["teacher_rationale"]) or (
        edited_label is not None and edited_label != row["teacher_label"])
    # A person's edit of the label repairs a parse error; an edited rationale alone does not.
    parse_error = row["parse_error"] if not (edited_label is not None and row["parse_error"]) else None
    return {**row, "rationale": rationale, "resolved_teacher_label": label, "edited": edited,
            "status": row.get("status") or "unreviewed", "resolved_parse_error": parse_error}


def exports_dir(store: Store) -> Path:
    """The workspace's folder for exported training sets (the only folder the app serves files from)."""
    folder = store.workspace / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_training_set(store: Store, task: Task, teacher: str | None, *, split: str = "train",
                       label_source: str = "gold", drop_parse_errors: bool = True, drop_teacher_wrong: bool = False,
                       only_accepted: bool = False, template_hash: str | None = None) -> TrainingSet:
    """Resolve rows for training. ``teacher=None`` gives gold-label rows without rationales (plain fine-tuning).

    Rejected rows are always dropped; each dropped row is counted under its reason, never silently lost.
    """
    if label_source not in LABEL_SOURCES:
        raise ConfigError(f"label source must be one of {LABEL_SOURCES}, not {label_source!r}")
    filters = {"drop_parse_errors": drop_parse_errors, "drop_teacher_wrong": drop_teacher_wrong,
               "only_accepted": only_accepted, "split": split, "template_hash": template_hash}
    dropped: Counter[str] = Counter()
    rows: list[dict] = []
    if teacher is None:
        if label_source != "gold":
            raise ConfigError("teacher labels need a teacher; pass one or use label_source='gold'")
        for ex in store.examples(task.name, split):
            if ex.label is None:
                dropped["no gold label"] += 1
                continue
            rows.append({"example_id": ex.id, "input": ex.input, "label": ex.label, "rationale": None,
                         "gold": ex.label, "teacher_label": None, "status": "unreviewed", "edited": False,
                         "generation_id": None, "label_dist": None})
        return _finish(task, teacher, label_source, rows, dropped, filters)

    generations = store.latest_generations(task.name, teacher, template_hash, split)
    if not generations:
        raise NothingToDoError(f"no generations from teacher {teacher!r} for task {task.name!r} ({split}); "
                               "generate rationales first")
    for raw in generations:
        r = resolve_row(raw)
        reason = _drop_reason(task, r, label_source, drop_parse_errors, drop_teacher_wrong, only_accepted)
        if reason:
            dropped[reason] += 1
            continue
        label = r["gold"] if label_source == "gold" else r["resolved_teacher_label"]
        rows.append({"example_id": r["example_id"], "input": r["input"], "label": label, "rationale": r["rationale"],
                     "gold": r["gold"], "teacher_label": r["resolved_teacher_label"], "status": r["status"],
                     "edited": r["edited"], "generation_id": r["generation_id"], "label_dist": r["label_dist"]})
    return _finish(task, teacher, label_source, rows, dropped, filters)


def _drop_reason(task: Task, r: dict, label_source: str, drop_parse_errors: bool, drop_teacher_wrong: bool,
                 only_accepted: bool) -> str | None:
    if r["status"] == "rejected":
        return "rejected"
    if only_accepted and r["status"] != "accepted":
        return "not accepted"
    if r["resolved_parse_error"] and (drop_parse_errors or label_source == "teacher"):
        return "parse error"
    if not r["rationale"]:
        return "no rationale"
    if label_source == "gold" and r["gold"] is None:
        return "no gold label"
    if drop_teacher_wrong and r["gold"] is not None and not task.is_correct(r["resolved_teacher_label"], r["gold"]):
        return "teacher wrong"
    return None


def _finish(task, teacher, label_source, rows, dropped, filters) -> TrainingSet:
    ts = TrainingSet(task.name, teacher, label_source, rows, dict(dropped), filters)
    if not rows:
        why = ", ".join(f"{n} {k}" for k, n in dropped.items()) or "no rows"
        raise NothingToDoError(f"the training set for {task.name!r} is empty ({why}); relax the filters")
    return ts
