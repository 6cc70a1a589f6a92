"""Training settings as people type them (a form, a notebook widget): text or numbers in, a validated
:class:`~workbench.distill.config.TrainConfig` out, with every mistake naming its field; and a preview of the
training set a config would use, and warnings about settings that are allowed but almost surely a mistake
(:func:`form_warnings`), before anything starts.

>>> config_from_form({"task": "wordproblems", "method": "standard", "steps": "40", "test_limit": ""}).steps
40
>>> config_from_form({"task": "wordproblems", "method": "standard", "steps": "0"})
Traceback (most recent call last):
...
workbench.core.errors.ConfigError: Steps: must be at least 1 (not 0)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from workbench.core.errors import ConfigError, NothingToDoError, WorkbenchError
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.config import TrainConfig
from workbench.distill.methods import METHODS

# What each field is called on the forms (and so in their messages): field → (label, type, lowest allowed).
FORM_FIELDS: dict[str, tuple[str, type, float | None]] = {
    "student": ("Student", str, None),
    "method": ("Method", str, None),
    "teacher": ("Teacher", str, None),
    "label_source": ("Labels", str, None),
    "numbers": ("Numbers the student sees", str, None),
    "alpha": ("α", float, 0),
    "fraction": ("Fraction of the training set", float, 0),
    "steps": ("Steps", int, 1),
    "batch_size": ("Batch size", int, 1),
    "learning_rate": ("Learning rate", float, 0),
    "seed": ("Seed", int, 0),
    "eval_every": ("Evaluate every N steps", int, 0),
    "test_limit": ("Score on the first N test examples", int, 1),
    "lora_rank": ("LoRA rank", int, 0),
    "run": ("Run name", str, None),
}


def label_of(name: str) -> str:
    return FORM_FIELDS.get(name, (name.replace("_", " ").capitalize(), str, None))[0]


def _parse(name: str, value):
    """One form value: blank (None, "", whitespace) means "not given"; numbers may arrive as text or floats."""
    label, kind, low = FORM_FIELDS[name]
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if kind is str:
        return str(value).strip()
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"{label}: {text!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{label}: must be a finite number (not {text})")
    if kind is int:
        if number != int(number):
            raise ConfigError(f"{label}: must be a whole number (not {text})")
        number = int(number)
    if low is not None and number < low:
        raise ConfigError(f"{label}: must be at least {low:g} (not {text})")
    return number


def config_from_form(values: dict) -> TrainConfig:
    """A TrainConfig from form values (blank = the default or the student's recipe); a mistake names its field.

    A method that needs no teacher (``standard``: gold labels alone) drops the form's teacher unless teacher labels
    are asked for."""
    known = {f.name for f in fields(TrainConfig)}
    parsed = {k: _parse(k, v) if k in FORM_FIELDS else v for k, v in values.items() if k in known}
    parsed = {k: v for k, v in parsed.items() if v is not None}
    if not parsed.get("task"):
        raise ConfigError("Task: pick a task in the Task & teacher tab first")
    method = METHODS.get(parsed.get("method", ""))
    if method is not None and not method.needs_teacher and parsed.get("label_source", "gold") == "gold":
        parsed.pop("teacher", None)
    try:
        return TrainConfig(**parsed)
    except ConfigError as err:  # name the field the config complains about, in the form's words
        message = str(err)
        field = next((f for f in sorted(FORM_FIELDS, key=len, reverse=True) if message.startswith(f)), None)
        raise ConfigError(f"{label_of(field)}: {message}" if field else message) from None


def free_teacher_missing(store: Store, task, spec: str) -> bool:
    """True when a free teacher has not answered the train split yet: the run will ask it first (instant)."""
    from workbench.rationales.suggest import can_teach
    from workbench.rationales.teachers.base import teacher_class, teacher_id

    cls = teacher_class(spec)
    return (cls.cost == "free" and cls.can_generate and not store.latest_generations(task.name, teacher_id(spec),
                                                                                      split="train")
            and can_teach(store, task, spec) is None)


def training_preview(store: Store, cfg: TrainConfig) -> dict:
    """What a run with ``cfg`` would learn from, without starting it: rows used, rows dropped and why, the label
    source, and the resolved recipe. Raises (with the reason) when the training set would be empty."""
    from workbench.distill.methods import method_for_config
    from workbench.distill.runs import training_rows

    cfg = cfg.resolved()
    task = load_task(cfg.task, store)
    if cfg.teacher and free_teacher_missing(store, task, cfg.teacher):
        n = len(store.examples(task.name, "train"))
        return {"rows": n, "available": n, "dropped": {}, "label_source": cfg.label_source, "teacher": cfg.teacher,
                "edited": 0, "to_generate": n, "steps": cfg.steps, "batch_size": cfg.batch_size,
                "learning_rate": cfg.learning_rate, "eval_every": cfg.eval_every,
                "epochs": round(cfg.steps * cfg.batch_size / max(1, n), 1)}
    ts, rows = training_rows(store, task, cfg, ask_free=False)  # the run's own function: the preview cannot drift
    method = method_for_config(cfg)
    method.check_rows(rows)
    if not rows:
        raise NothingToDoError(f"the training set for {task.name!r} is empty")
    return {"rows": len(rows), "available": len(ts.rows), "dropped": ts.dropped, "label_source": cfg.label_source,
            "teacher": cfg.teacher, "edited": sum(1 for r in rows if r.get("edited")),
            "steps": cfg.steps, "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
            "eval_every": cfg.eval_every, "epochs": round(cfg.steps * cfg.batch_size / len(rows), 1)}


# -- warnings: settings that are allowed but almost surely a mistake ------------------------------------------------
MANY_PASSES = 100  # passes over the training rows beyond which a student memorises them (bench/data_efficiency.py)
FIGURE_EXAMPLES = 50  # test examples below which one accuracy is too noisy to compare with another


@dataclass(frozen=True)
class FormWarning:
    """A setting a form accepts but that is almost surely a mistake: the field it is about, and what to do."""

    field: str
    message: str


def form_warnings(store: Store, cfg: TrainConfig) -> list[FormWarning]:
    """What to warn about before a run starts (never a refusal): thousands of passes over a handful of rows, too
    few test examples for the figures to say anything, a student that cannot load here (offline). The app's Train
    form shows them under its preview; a notebook can print them."""
    out = []
    try:
        preview = training_preview(store, cfg)
    except WorkbenchError:
        preview = None  # the preview says why it cannot train; nothing to add
    if preview and preview["epochs"] >= MANY_PASSES:
        out.append(FormWarning("steps", f"≈{preview['epochs']:,.0f} passes over {preview['rows']:,} rows: the student "
                               "will memorise these rows rather than learn the task. Use more rows (Fraction, or "
                               "answer more examples) or fewer steps."))
    n_test = _test_examples(store, cfg)
    if n_test is not None and n_test < FIGURE_EXAMPLES:
        noise = 100 * 2 * math.sqrt(0.25 / max(1, n_test))  # two standard errors of an accuracy near 50 %
        field = "test_limit" if cfg.test_limit is not None else "task"
        out.append(FormWarning(field, f"scored on {n_test} test example{'s' if n_test != 1 else ''}: one example "
                               f"moves accuracy by {100 / max(1, n_test):.0f} points, and differences under "
                               f"~{noise:.0f} points are noise. Score on at least {FIGURE_EXAMPLES} (blank: all)."))
    why = student_offline_problem(cfg.student)
    if why:
        out.append(FormWarning("student", why))
    return out


def _test_examples(store: Store, cfg: TrainConfig) -> int | None:
    try:
        n = load_task(cfg.task, store).split_sizes().get("test", 0)
    except WorkbenchError:
        return None
    return min(n, cfg.test_limit) if cfg.test_limit is not None else n


def student_offline_problem(spec: str) -> str | None:
    """Why a student cannot be loaded here (None: it can): a catalog model that is not available, or a hub id
    with the hub off limits and nothing in the local cache."""
    from workbench.distill.students import STUDENTS
    from workbench.models import catalog

    if spec in STUDENTS:
        ok, why = STUDENTS[spec].availability()
        return None if ok else f"the student {spec} cannot be loaded here (offline): {why}"
    if os.path.isdir(spec) or "/" not in spec:
        return None
    if catalog.is_offline() and not catalog.in_hub_cache(spec):
        return (f"the student {spec} cannot be loaded here (offline): it is not a folder here and not in the "
                "local hub cache (HF_HUB_OFFLINE=1). Pick a preset or a pretrained model the Student list says is "
                "available")
    return None
