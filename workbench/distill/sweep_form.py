"""A sweep as a form holds it: text fields (``32, 128``) and choices, turned into a checked :class:`SweepConfig`
whose mistakes name their field, and back (a reloaded page shows the shown sweep's own settings). Front ends never
parse a grid or pick a default themselves: the defaults are a :class:`SweepConfig`'s (a recipe's) own.

>>> values = form_values(SweepConfig(task="wordproblems", teacher="builtin", rows=(32, 128), epochs=2.0))
>>> values["sizes"], values["seeds"], values["epochs"]
('32, 128', '0, 1, 2', '2')
>>> sweep_from_form({**values, "sizes": "128, 32, 32"}).rows
(32, 128)
>>> sweep_from_form({**values, "seeds": "0, x"})
Traceback (most recent call last):
...
workbench.core.errors.ConfigError: Seeds: write whole numbers separated by commas, e.g. 0, 1, 2 (not '0, x')
"""

from __future__ import annotations

import math

from workbench.core.errors import ConfigError
from workbench.distill.sweeps import SweepConfig

FIELDS = ("task", "teacher", "methods", "size_kind", "sizes", "students", "seeds", "steps", "epochs", "test_limit",
          "name")
LABELS = {"sizes": "Training-set sizes", "seeds": "Seeds", "steps": "Steps per cell", "epochs": "Epochs per cell",
          "test_limit": "Test examples"}
EXAMPLES = {"sizes": "16, 64, 256", "seeds": "0, 1, 2"}


def _list(text, kind, field: str) -> tuple:
    raw = [x for x in str(text or "").replace(" ", "").split(",") if x]
    try:
        values = tuple(kind(x) for x in raw)
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        example = "0.25, 1" if kind is float else EXAMPLES.get(field, "1, 2")
        raise ConfigError(f"{LABELS[field]}: write {what} separated by commas, e.g. {example} (not {text!r})") from None
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise ConfigError(f"{LABELS[field]}: {text!r} holds a number that is not finite")
    return values


def _optional(text, kind, field: str):
    text = ("" if text is None else str(text)).strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{LABELS[field]}: {text!r} is not a number (leave it blank for the default)") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{LABELS[field]}: {text!r} is not a finite number")
    return value


def sweep_from_form(values: dict) -> SweepConfig:
    """The form's values (keys :data:`FIELDS`; text as typed) as a checked SweepConfig."""
    if not values.get("task"):
        raise ConfigError("Task: pick a task for the sweep")
    kind = values.get("size_kind") or "rows"
    sizes = _list(values.get("sizes"), float if kind == "fractions" else int, "sizes")
    seeds = _list(values.get("seeds"), int, "seeds")
    return SweepConfig(task=values["task"], teacher=values.get("teacher") or None,
                       methods=tuple(values.get("methods") or ()),
                       rows=sizes if kind == "rows" else (), fractions=sizes if kind == "fractions" else (),
                       students=tuple(values.get("students") or ()),
                       **({"seeds": seeds} if seeds else {}),
                       steps=_optional(values.get("steps"), int, "steps"),
                       epochs=_optional(values.get("epochs"), float, "epochs"),
                       test_limit=_optional(values.get("test_limit"), int, "test_limit"),
                       name=(values.get("name") or "").strip() or None)


def form_values(sweep: SweepConfig) -> dict:
    """The form's text for a sweep: a recipe's defaults, or a saved sweep's settings after a reload."""
    def text(values) -> str:
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    return {"task": sweep.task, "teacher": sweep.teacher or "", "methods": list(sweep.methods),
            "size_kind": "fractions" if sweep.fractions and not sweep.rows else "rows",
            "sizes": text(sweep.rows or sweep.fractions), "students": list(sweep.students), "seeds": text(sweep.seeds),
            "steps": "" if sweep.steps is None else str(sweep.steps),
            "epochs": "" if sweep.epochs is None else f"{sweep.epochs:g}",
            "test_limit": "" if sweep.test_limit is None else str(sweep.test_limit), "name": sweep.name or ""}
