"""Reviewing generations: edit, accept, reject (each a new edit row, with history), and a paged, filtered view.

The latest edit is the full current state of a row (status, rationale, label), so two people editing the same
row never lose an update: the later edit wins and both stay in the history.

>>> from workbench.data.tasks import load_task
>>> page = browse_generations(store, load_task("quantnli", store), "builtin", view="teacher wrong", page=0)
>>> page.total, page.counts["all"], page.counts["edited"]
(5, 24, 0)
>>> row = page.rows[0]
>>> edit = edit_generation(store, row["generation_id"], label=row["gold"], author="doc")
>>> edit["status"], edit["label"] == row["gold"]                    # an edit marks the row accepted
('accepted', True)
>>> page = browse_generations(store, load_task("quantnli", store), "builtin", view="teacher wrong", page=0)
>>> page.total, page.counts["edited"]                               # the fixed row left the view at once
(4, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.core.errors import ConfigError
from workbench.core.store import EDIT_STATUSES, Store
from workbench.data.metrics import StepCheck, check_steps
from workbench.data.tasks import Task
from workbench.rationales.trainingset import resolve_row

VIEWS = ("all", "teacher wrong", "steps wrong", "parse errors", "edited", "unreviewed", "accepted", "rejected")
PAGE_SIZE = 50
MAX_ID = 2**63 - 1  # SQLite's INTEGER


def check_generation_id(value) -> int:
    """A generation id as an int; anything else (1e20, -3, 2.5, NaN, text) is a :class:`ConfigError`.

    >>> check_generation_id(12.0)
    12
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        shown = f"{value:g}" if isinstance(value, float) else repr(value)[:40]
        raise ConfigError(f"a generation id is a whole number from 1 to {MAX_ID}, not {shown}; pick a row in "
                          "the table")
    return value


def edit_generation(store: Store, generation_id: int, *, rationale: str | None = None, label: str | None = None,
                    status: str | None = None, author: str = "") -> dict:
    """Record a person's change. Unset fields keep their current value; changing text marks the row accepted."""
    if status is not None and status not in EDIT_STATUSES:
        raise ConfigError(f"status must be one of {', '.join(EDIT_STATUSES)}")
    generation_id = check_generation_id(generation_id)
    gen = store.generation(generation_id)
    with store.transaction():  # read-modify-write in one transaction: no lost update between two editors
        current = store.latest_edit(generation_id) or {}
        cur_rationale = current.get("rationale") if current.get("rationale") is not None else gen.rationale
        cur_label = current.get("label") if current.get("label") is not None else gen.label
        new_rationale = cur_rationale if rationale is None else rationale.strip()
        new_label = cur_label if label is None else label.strip()
        changed = rationale is not None or label is not None
        new_status = status or ("accepted" if changed else current.get("status", "unreviewed"))
        edit_id = store.add_edit(generation_id, status=new_status,
                                 rationale=new_rationale if new_rationale != gen.rationale else None,
                                 label=new_label if new_label != gen.label else None, author=author)
    return {"edit_id": edit_id, "generation_id": generation_id, "status": new_status,
            "rationale": new_rationale, "label": new_label}


def set_status(store: Store, generation_ids: list[int], status: str, author: str = "") -> int:
    """Bulk accept/reject: one transaction for the whole selection."""
    generation_ids = [check_generation_id(g) for g in generation_ids]
    with store.transaction():
        for gid in generation_ids:
            edit_generation(store, gid, status=status, author=author)
    return len(generation_ids)


def current_state(store: Store, generation_id: int) -> dict:
    """A generation with its latest edit applied (the same resolution the training set uses)."""
    generation_id = check_generation_id(generation_id)
    gen = store.generation(generation_id)
    latest = store.latest_edit(generation_id) or {}
    example = store.example(gen.task, gen.example_id)
    resolved = resolve_row({"teacher_rationale": gen.rationale, "teacher_label": gen.label,
                            "parse_error": gen.parse_error, "edit_rationale": latest.get("rationale"),
                            "edit_label": latest.get("label"), "status": latest.get("status")})
    equation = store.task_row(gen.task)["answer_kind"] == "equation"
    return {"id": generation_id, "raw": gen.raw or "", "input": example.input, "gold": example.label or "",
            "rationale": resolved["rationale"] or "", "label": resolved["resolved_teacher_label"] or "",
            "status": resolved["status"], "parse_error": resolved["resolved_parse_error"] or "",
            "teacher_parse_error": gen.parse_error or "", "edited": resolved["edited"],
            "steps": check_steps(resolved["rationale"]) if equation else StepCheck(0),
            "settings": gen.settings,
            "rationalized": "+rationalize" in ((store.template(gen.template_hash) or {}).get("name") or "")}


@dataclass
class GenerationPage:
    rows: list[dict]
    total: int
    page: int
    pages: int
    counts: dict[str, int]


def review_rows(store: Store, task: Task, teacher: str, split: str | None = "train") -> list[dict]:
    """Every latest generation of a teacher, resolved with its latest edit and scored against gold."""
    rows = []
    for raw in store.latest_generations(task.name, teacher, None, split):
        r = resolve_row(raw)
        r["teacher_right"] = (None if r["gold"] is None else
                              r["resolved_parse_error"] is None and task.is_correct(r["resolved_teacher_label"], r["gold"]))
        # Equation tasks: the label's ✓ says nothing of the steps on the way; check each "a op b = c".
        r["steps"] = check_steps(r["rationale"]) if task.answer_kind == "equation" else StepCheck(0)
        rows.append(r)
    return rows


def _in_view(r: dict, view: str) -> bool:
    return {
        "all": True,
        "teacher wrong": r["teacher_right"] is False,
        "steps wrong": r["steps"].ok is False,
        "parse errors": bool(r["resolved_parse_error"]),  # a person's fixed label takes a row out of this view
        "edited": r["edited"],
        "unreviewed": r["status"] == "unreviewed",
        "accepted": r["status"] == "accepted",
        "rejected": r["status"] == "rejected",
    }[view]


def browse_generations(store: Store, task: Task, teacher: str, *, view: str = "all", search: str = "",
                       page: int = 0, page_size: int = PAGE_SIZE, split: str | None = "train") -> GenerationPage:
    if view not in VIEWS:
        raise ConfigError(f"view must be one of {', '.join(VIEWS)}")
    rows = review_rows(store, task, teacher, split)
    counts = {v: sum(_in_view(r, v) for r in rows) for v in VIEWS}
    needle = search.strip().lower()
    selected = [r for r in rows if _in_view(r, view) and (
        not needle or needle in (r["input"] or "").lower() or needle in (r["rationale"] or "").lower()
        or needle in (r["example_id"] or "").lower())]
    pages = max(1, -(-len(selected) // page_size))
    page = min(max(0, page), pages - 1)
    return GenerationPage(selected[page * page_size:(page + 1) * page_size], len(selected), page, pages, counts)
