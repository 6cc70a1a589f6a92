"""The records the store holds: examples of a task and teacher generations (plain dataclasses), and the JSON
helpers the store's tables use for their dict columns."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any


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


def generation_from_row(row: sqlite3.Row) -> Generation:
    d = dict(row)
    d["settings"] = loads(d["settings"])
    d["label_dist"] = loads(d["label_dist"]) if d["label_dist"] else None
    return Generation(**d)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def loads(text: str | None) -> Any:
    return json.loads(text) if text else None
