"""Sweeps: the paper's two experiments, run as a grid of training runs — training-set size vs accuracy (one line
per method) and student size vs accuracy — over seeds, from the user's own data.

A sweep is a saved object in the workspace (``<workspace>/sweeps/<name>/sweep.json``); its cells are ordinary runs
named ``<sweep>--<student>-<method>-r<rows>-s<seed>``, trained one at a time by one background ``sweep`` job, so a
sweep is resumable (finished cells are kept, a stopped cell resumes from its checkpoint) and cancel stops the rest.
Every cell of one sweep learns from the same rows for a given size and seed, whatever the method: ``standard`` reads
the labels of the rows whose rationales ``dss`` reads, so the methods differ only in what they learn from a row.

>>> sweep = SweepConfig(task="wordproblems", teacher="builtin", rows=(16, 64), seeds=(0, 1), steps=40)
>>> [c.name("s") for c in sweep.cells()][:2], len(sweep.cells())
(['s--tiny-standard-r16-s0', 's--tiny-dss-r16-s0'], 8)
>>> start_sweep(store, sweep)            # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields, replace

from workbench.core.errors import ConfigError, RunError, UnknownNameError
from workbench.core.events import Note, TrainingState
from workbench.core.jobs import JobContext, list_jobs, start_job
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.config import TrainConfig
from workbench.distill.runfolder import write_atomic
from workbench.distill.runs import estimate_seconds, resume_run, train_student
from workbench.distill.students import is_from_scratch
from workbench.rationales.generation import ensure_answers, teacher_accuracy
from workbench.rationales.teachers.base import teacher_id
from workbench.rationales.trainingset import build_training_set

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Cell:
    student: str
    method: str
    rows: int | None  # training rows (None: a share of them, ``fraction``)
    fraction: float | None
    seed: int

    def name(self, sweep: str) -> str:
        size = f"r{self.rows}" if self.rows is not None else f"f{self.fraction:g}"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.student.rstrip("/").rsplit("/", 1)[-1])
        return f"{sweep}--{slug}-{self.method}-{size}-s{self.seed}"


@dataclass(frozen=True)
class SweepConfig:
    """A grid: methods × training-set sizes (``rows`` or ``fractions``) × students × seeds, on one task and teacher.

    ``steps`` fixes the steps of every cell; ``epochs`` instead gives every cell the same number of passes over its
    rows (the paper's comparison; a floor of ``min_steps``); neither: the student's recipe. ``settings`` are any
    other TrainConfig fields (learning rate, batch size, numbers, …) for every cell."""

    task: str
    teacher: str | None = None
    methods: tuple[str, ...] = ("standard", "dss")
    rows: tuple[int, ...] = ()
    fractions: tuple[float, ...] = ()
    students: tuple[str, ...] = ("tiny",)
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None
    epochs: float | None = None
    min_steps: int = 10
    label_source: str = "gold"
    test_limit: int | None = None
    settings: dict = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self):
        for key in ("methods", "rows", "fractions", "students", "seeds"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        if not self.methods or not self.students or not self.seeds:
            raise ConfigError("a sweep needs at least one method, one student and one seed")
        if not self.rows and not self.fractions:
            object.__setattr__(self, "fractions", (1.0,))
        if self.rows and self.fractions:
            raise ConfigError("give training-set sizes as rows or as fractions, not both")
        if any(r < 1 for r in self.rows) or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError("rows must be at least 1 and fractions in (0, 1]")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give steps or epochs per cell, not both")
        if (self.steps is not None and self.steps < 1) or (self.epochs is not None and self.epochs <= 0):
            raise ConfigError("steps must be at least 1 and epochs above 0")
        if self.name is not None and not NAME.match(self.name):
            raise ConfigError(f"sweep name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        unknown = sorted(set(self.settings) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise ConfigError(f"unknown training settings for the sweep: {', '.join(unknown)}")
        for cell in self.cells()[:1]:  # the settings must make a valid config (methods and teacher agree, …)
            self.config_for(cell, available=max(self.rows or (1,)), run=None)

    def cells(self) -> list[Cell]:
        """Seeds outermost, then students and sizes (small first), then methods: one whole curve appears first."""
        sizes = [(r, None) for r in sorted(self.rows)] or [(None, f) for f in sorted(self.fractions)]
        return [Cell(s, m, r, f, seed) for seed in self.seeds for s in self.students for r, f in sizes
                for m in self.methods]

    def config_for(self, cell: Cell, available: int, run: str | None) -> TrainConfig:
        """The cell's TrainConfig; ``available``: rows in the teacher's training set."""
        n = min(cell.rows, available) if cell.rows is not None else max(1, round(cell.fraction * available))
        fraction = min(1.0, n / max(1, available))
        values = {**self.settings, "task": self.task, "method": cell.method, "student": cell.student,
                  "teacher": self.teacher, "label_source": self.label_source, "fraction": fraction,
                  "seed": cell.seed, "run": run, "test_limit": self.test_limit}
        values.setdefault("eval_every", 0)  # a grid is scored at its end; curves per cell are not its point
        if values.get("lora_rank") and is_from_scratch(cell.student):  # LoRA is for the pretrained students
            values["lora_rank"] = 0
        cfg = TrainConfig(**values).resolved()
        if self.steps is not None:
            cfg = cfg.with_(steps=self.steps)
        elif self.epochs is not None:
            cfg = cfg.with_(steps=max(self.min_steps, math.ceil(self.epochs * n / cfg.batch_size)))
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SweepConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown sweep settings: {', '.join(unknown)}")
        return cls(**data)


# -- the saved object ---------------------------------------------------------------------------------------------
def sweeps_root(store: Store):
    return store.workspace / "sweeps"


def create_sweep(store: Store, sweep: SweepConfig) -> str:
    """Save a sweep under its name (default ``<task>-sweep-<time>``); an existing name is refused."""
    load_task(sweep.task, store)
    name = sweep.name or f"{sweep.task}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = sweeps_root(store) / name
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        raise ConfigError(f"sweep {name!r} already exists; pick another name, or resume it") from None
    write_atomic(folder / "sweep.json", json.dumps({"config": replace(sweep, name=name).to_dict(),
                                                    "created": time.time()}, indent=2))
    return name


def load_sweep(store: Store, name: str) -> SweepConfig:
    path = sweeps_root(store) / name / "sweep.json"
    if not path.is_file():
        raise UnknownNameError("sweep", name, list_sweeps(store))
    return SweepConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["config"])


def list_sweeps(store: Store) -> list[str]:
    root = sweeps_root(store)
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if (p / "sweep.json").is_file()),
                  key=lambda n: (root / n / "sweep.json").stat().st_mtime, reverse=True)


def sweep_job(store: Store, name: str) -> dict | None:
    """The newest job of this sweep (running or not)."""
    return next((j for j in list_jobs(store, "sweep") if j["spec"].get("sweep") == name), None)


def start_sweep(store: Store, sweep: SweepConfig | str, *, detach: bool = True) -> tuple[str, str]:
    """Save (a new sweep) and start its background job, or resume a saved one by name; (sweep name, job id)."""
    name = sweep if isinstance(sweep, str) else create_sweep(store, sweep)
    load_sweep(store, name)
    job = sweep_job(store, name)
    if job is not None and job["status"] in ("queued", "running", "cancelling"):
        raise RunError(f"sweep {name!r} is already running (job {job['id']})")
    return name, start_job(store, "sweep", {"sweep": name}, detach=detach)


# -- what a sweep holds so far ------------------------------------------------------------------------------------
def sweep_status(store: Store, name: str) -> dict:
    """Every cell with its run's status and figures; the teacher on the same test split; what is done."""
    sweep = load_sweep(store, name)
    runs = {r["name"]: r for r in store.list_runs(sweep.task)}
    cells = []
    for cell in sweep.cells():
        run = runs.get(cell.name(name))
        summary = (run or {}).get("summary") or {}
        cells.append({**asdict(cell), "run": cell.name(name), "status": run["status"] if run else "queued",
                      "accuracy": summary.get("accuracy"), "training_rows": summary.get("training_rows"),
                      "parameters": summary.get("parameters"), "steps": summary.get("steps"),
                      "train_seconds": summary.get("train_seconds")})
    done = [c for c in cells if c["status"] == "done"]
    teacher = None
    if sweep.teacher:
        teacher = teacher_accuracy(store, load_task(sweep.task, store), sweep.teacher, split="test",
                                   limit=sweep.test_limit)
    return {"sweep": name, "config": sweep.to_dict(), "cells": cells, "done": len(done), "total": len(cells),
            "teacher_accuracy": teacher, "job": sweep_job(store, name)}


def sweep_points(status: dict) -> list[dict]:
    """The finished cells as plot points: method, rows, params, accuracy, seed, run. A student's size is one number
    (a from-scratch preset's vocabulary, hence its count, varies a little with the rows it was built from)."""
    done = [c for c in status["cells"] if c["status"] == "done" and c["accuracy"] is not None]
    size = {}
    for c in done:
        size[c["student"]] = min(size.get(c["student"], c["parameters"]), c["parameters"])
    return [{"method": c["method"], "rows": c["training_rows"], "params": size[c["student"]], "accuracy": c["accuracy"],
             "seed": c["seed"], "student": c["student"], "run": c["run"]} for c in done]


def estimate_sweep(store: Store, sweep: SweepConfig) -> dict:
    """Seconds for the whole grid from measured seconds per step of earlier runs here (cells with no such run
    are counted as unknown)."""
    task = load_task(sweep.task, store)
    available = _available(store, task, sweep)
    known, unknown, steps = 0.0, 0, 0
    for cell in sweep.cells():
        cfg = sweep.config_for(cell, available, run=None)
        steps += cfg.steps
        seconds = estimate_seconds(store, cfg)
        if seconds is None:
            unknown += 1
        else:
            known += seconds
    return {"cells": len(sweep.cells()), "steps": steps, "seconds": round(known, 1), "unknown_cells": unknown,
            "available_rows": available}


def _available(store: Store, task, sweep: SweepConfig) -> int:
    """Rows in the training set every cell subsamples (the teacher's, so that all methods share them)."""
    if sweep.teacher is None:
        return len(build_training_set(store, task, None).rows)
    if store.latest_generations(task.name, teacher_id(sweep.teacher), split="train"):
        return len(build_training_set(store, task, sweep.teacher, label_source=sweep.label_source).rows)
    return len(store.examples(task.name, "train"))  # a free teacher will answer them first


# -- the job -------------------------------------------------------------------------------------------------------
def run_sweep(store: Store, name: str, *, progress=None, should_stop=None) -> dict:
    """Train every cell not yet done, one after another; resumes a stopped cell; returns the status."""
    sweep = load_sweep(store, name)
    task = load_task(sweep.task, store)
    if sweep.teacher:
        ensure_answers(store, task.name, sweep.teacher, split="train")  # free teachers answer first
        ensure_answers(store, task.name, sweep.teacher, split="test")
    available = _available(store, task, sweep)
    runs = {r["name"]: r for r in store.list_runs(task.name)}
    for cell in sweep.cells():
        if should_stop is not None and should_stop():
            break
        run = cell.name(name)
        status = runs.get(run, {}).get("status")
        if status == "done":
            continue
        if progress is not None:
            progress(Note(message=f"cell {run}"))
        if status in ("cancelled", "failed", "interrupted"):
            resume_run(store, run, progress=progress, should_stop=should_stop)
        elif status is None:
            cfg = sweep.config_for(cell, available, run=run)
            train_student(store, cfg, progress=progress, should_stop=should_stop)
    status = {k: v for k, v in sweep_status(store, name).items() if k != "job"}
    # The figure's data, kept with the sweep: a class can be shown the finished figure without retraining.
    write_atomic(sweeps_root(store) / name / "points.json",
                 json.dumps({"points": sweep_points(status), "teacher_accuracy": status["teacher_accuracy"],
                             "done": status["done"], "total": status["total"]}, indent=1))
    return status


def sweep_job_kind(store: Store, spec: dict, ctx: JobContext) -> dict:
    """The ``sweep`` job kind. spec: ``{"sweep": NAME}``."""
    ctx.state = TrainingState()
    ctx.log(f"sweep {spec['sweep']}")
    result = run_sweep(store, spec["sweep"], progress=ctx.progress, should_stop=ctx.should_stop)
    return {"sweep": spec["sweep"], "done": result["done"], "total": result["total"]}
