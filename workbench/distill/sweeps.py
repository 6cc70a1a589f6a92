"""Sweeps: the paper's two experiments, run as a grid of training runs — training-set size vs accuracy (one line
per method) and student size vs accuracy — over seeds, from the user's own data.

A sweep is a saved object in the workspace (``<workspace>/sweeps/<name>/sweep.json``); its cells are ordinary runs
named ``<sweep>--<student>-<method>-r<rows>-s<seed>``, trained one at a time by one background ``sweep`` job, so a
sweep is resumable (finished cells are kept, a stopped cell resumes from its checkpoint) and cancel stops the rest.
Every cell of one sweep learns from the same rows for a given size and seed, whatever the method: ``standard`` reads
the labels of the rows whose rationales ``dss`` reads, so the methods differ only in what they learn from a row;
and every cell is scored on the same test examples, so two methods can be compared example by example.

A cell is identified by its full training config (a hash, recorded in its run), never by its run's name: a run
that happens to have a cell's name is not that cell, a grid given twice the same value holds one cell, and a
cell whose run folder was deleted is not done.

>>> sweep = SweepConfig(task="wordproblems", teacher="builtin", rows=(16, 64, 16), seeds=(0, 1), steps=40)
>>> sweep.rows, [c.name("s") for c in sweep.cells()][:2], len(sweep.cells())
((16, 64), ['s--tiny-standard-r16-s0', 's--tiny-dss-r16-s0'], 8)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields, replace

from workbench.core.bounds import SEED
from workbench.core.errors import ConfigError, RunError, UnknownNameError
from workbench.core.events import CellStarted, SweepState
from workbench.core.jobs import JobContext, list_jobs, start_job
from workbench.core.locks import LockHeld, OwnerLock
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.config import TrainConfig
from workbench.distill.methods import METHODS
from workbench.distill.runfolder import RunFolder, write_atomic
from workbench.distill.students import check_student, is_from_scratch
from workbench.rationales.generation import ensure_answers, teacher_accuracy
from workbench.rationales.teachers.base import teacher_id
from workbench.rationales.trainingset import build_training_set

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_CELLS = 500  # a grid larger than this is a typo (3 million cells would take years on any machine)
MAX_ROWS = 10_000_000
MAX_EPOCHS = 1000
MAX_STEPS = 1_000_000
# A pretrained student generates each answer token by token through its whole model: its sweeps are scored on the
# first 100 test examples unless told otherwise (one accuracy then has a standard error of about 0.05; a paired
# difference over 3 seeds, less). From-scratch students score the whole split in seconds.
PRETRAINED_TEST_LIMIT = 100
# Three seeds: the least that shows whether a difference is a method's or a lucky seed's.
DEFAULT_SEEDS = (0, 1, 2)


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


def _unique(values) -> tuple:
    return tuple(dict.fromkeys(values))


def _student_name(spec: str) -> str:
    """``tiny/`` and ``tiny`` are one student; a folder path is normalised (``a/./b/`` is ``a/b``)."""
    spec = spec.strip()
    return os.path.normpath(spec) if "/" in spec.rstrip("/") else spec.rstrip("/")


@dataclass(frozen=True)
class SweepConfig:
    """A grid: methods × training-set sizes (``rows`` or ``fractions``) × students × seeds, on one task and teacher.

    ``steps`` fixes the steps of every cell; ``epochs`` instead gives every cell the same number of passes over its
    rows (the paper's comparison; a floor of ``min_steps``); neither: the student's recipe. ``test_limit``: the
    test examples every cell is scored on (None: all of them, or the first ``PRETRAINED_TEST_LIMIT`` when a
    student is pretrained). ``settings`` are any other TrainConfig fields (learning rate, batch size, numbers,
    ``eval_every`` — off in a sweep unless given —, ``predict_rationales`` — off unless given) for every cell.

    The grid is normalised: repeated values count once, sizes are sorted, ``tiny/`` is ``tiny``."""

    task: str
    teacher: str | None = None
    methods: tuple[str, ...] = ("standard", "dss")
    rows: tuple[int, ...] = ()
    fractions: tuple[float, ...] = ()
    students: tuple[str, ...] = ("tiny",)
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    steps: int | None = None
    epochs: float | None = None
    min_steps: int = 10
    label_source: str = "gold"
    test_limit: int | None = None
    settings: dict = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self):
        for key in ("methods", "rows", "fractions", "students", "seeds"):
            value = getattr(self, key)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ConfigError(f"{key} must be a list of values, not {value!r}")
        object.__setattr__(self, "methods", _unique(str(m).strip() for m in self.methods))
        object.__setattr__(self, "students", _unique(_student_name(str(s)) for s in self.students))
        object.__setattr__(self, "seeds", _unique(self.seeds))
        object.__setattr__(self, "rows", tuple(sorted(set(self.rows))))
        object.__setattr__(self, "fractions", tuple(sorted(set(self.fractions))))
        object.__setattr__(self, "settings", dict(self.settings or {}))
        self._check()
        for cell in self.cells():  # every cell's settings make a valid config, not only the first one's
            self.config_for(cell, available=max(self.rows or (1,)), run=None)

    def _check(self) -> None:
        def numbers(values, kind, low, high, what):
            for v in values:
                if isinstance(v, bool) or not isinstance(v, kind) or (isinstance(v, float) and not math.isfinite(v)) \
                        or not low <= v <= high:
                    raise ConfigError(f"{what} must be {kind.__name__ if kind is int else 'numbers'} from {low} to "
                                      f"{high}, not {v!r}")

        if not self.methods or not self.students or not self.seeds:
            raise ConfigError("a sweep needs at least one method, one student and one seed")
        if self.rows and self.fractions:
            raise ConfigError("give training-set sizes as rows or as fractions, not both")
        if not self.rows and not self.fractions:
            object.__setattr__(self, "fractions", (1.0,))
        numbers(self.seeds, int, 0, int(SEED.high), "seeds")
        numbers(self.rows, int, 1, MAX_ROWS, "rows")
        numbers(self.fractions, (int, float), 1e-6, 1, "fractions")
        if any(f <= 0 for f in self.fractions):
            raise ConfigError("fractions must be in (0, 1]")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give steps or epochs per cell, not both")
        numbers(() if self.steps is None else (self.steps,), int, 1, MAX_STEPS, "steps")
        numbers(() if self.epochs is None else (self.epochs,), (int, float), 1e-6, MAX_EPOCHS, "epochs")
        numbers((self.min_steps,), int, 1, MAX_STEPS, "min_steps")
        numbers(() if self.test_limit is None else (self.test_limit,), int, 1, MAX_ROWS, "test_limit")
        unknown_methods = [m for m in self.methods if m not in METHODS]
        if unknown_methods:
            raise UnknownNameError("method", unknown_methods[0], METHODS.names())
        size = len(self.methods) * len(self.rows or self.fractions) * len(self.students) * len(self.seeds)
        if size > MAX_CELLS:
            raise ConfigError(f"this grid holds {size:,} runs; a sweep holds at most {MAX_CELLS}. Give fewer sizes, "
                              "seeds, students or methods")
        if self.name is not None and not NAME.fullmatch(self.name):
            raise ConfigError(f"sweep name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        unknown = sorted(set(self.settings) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise ConfigError(f"unknown training settings for the sweep: {', '.join(map(str, unknown))}")

    @property
    def effective_test_limit(self) -> int | None:
        """The test examples every cell is scored on: ``test_limit``, else 100 when a student is pretrained."""
        if self.test_limit is not None:
            return self.test_limit
        return None if all(is_from_scratch(s) for s in self.students) else PRETRAINED_TEST_LIMIT

    def cells(self) -> list[Cell]:
        """Seeds outermost, then students and sizes (small first), then methods: one whole curve appears first."""
        sizes = [(r, None) for r in self.rows] or [(None, f) for f in self.fractions]
        return [Cell(s, m, r, f, seed) for seed in self.seeds for s in self.students for r, f in sizes
                for m in self.methods]

    def config_for(self, cell: Cell, available: int, run: str | None) -> TrainConfig:
        """The cell's TrainConfig; ``available``: rows in the teacher's training set."""
        n = min(cell.rows, available) if cell.rows is not None else max(1, round(cell.fraction * available))
        fraction = min(1.0, n / max(1, available))
        values = {**self.settings, "task": self.task, "method": cell.method, "student": cell.student,
                  "teacher": self.teacher, "label_source": self.label_source, "fraction": fraction,
                  "seed": cell.seed, "run": run, "test_limit": self.effective_test_limit}
        values.setdefault("eval_every", 0)  # a grid is scored at its end; curves per cell are not its point
        values.setdefault("predict_rationales", False)  # the figure needs labels; rationales cost minutes a cell
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
        if not isinstance(data, dict):
            raise ConfigError(f"a sweep's settings are a mapping, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise ConfigError(f"unknown sweep settings: {', '.join(unknown)}")
        if "task" not in data or not isinstance(data["task"], str):
            raise ConfigError("a sweep needs a task")
        try:
            return cls(**data)
        except TypeError as err:  # a list where a number belongs, …
            raise ConfigError(f"a sweep setting has the wrong type: {err}") from None


def cell_hash(cfg: TrainConfig) -> str:
    """What identifies a cell: its whole training config but the run's name."""
    data = {k: v for k, v in cfg.to_dict().items() if k != "run"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# -- the saved object ---------------------------------------------------------------------------------------------
def sweeps_root(store: Store):
    return store.workspace / "sweeps"


def sweep_folder(store: Store, name: str):
    """The sweep's folder; a name that is not a plain sweep name (``../x``, a path) is refused, never followed."""
    from workbench.core.paths import inside

    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"sweep name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return inside(sweeps_root(store), name, "sweep")


def check_sweep(store: Store, sweep: SweepConfig) -> dict:
    """Everything that would fail a cell, found before the first cell starts: the task and teacher, every
    student's availability, every method against the task. Returns the rows each size resolves to."""
    task = load_task(sweep.task, store)
    for student in sweep.students:
        check_student(student)
    for method in sweep.methods:
        cls = METHODS[method]
        if cls.needs_label_dist and not task.labels:
            raise ConfigError(f"method {method!r} {cls.needs_teacher} and works on classification tasks; "
                              f"{task.name!r} has answer kind {task.answer_kind!r}. Leave it out of the sweep")
    if sweep.teacher:
        from workbench.rationales.teachers.base import teacher_class

        teacher_class(sweep.teacher)  # a bad spec is refused now
    return {"available": _available(store, task, sweep)}


def create_sweep(store: Store, sweep: SweepConfig) -> str:
    """Check every cell and save the sweep under its name (default ``<task>-sweep-<time>``); an existing name is
    refused."""
    check_sweep(store, sweep)
    name = sweep.name or f"{sweep.task}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = sweep_folder(store, name)
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        raise ConfigError(f"sweep {name!r} already exists; pick another name, or resume it") from None
    write_atomic(folder / "sweep.json", json.dumps({"config": replace(sweep, name=name).to_dict(),
                                                    "created": time.time()}, indent=2))
    return name


def load_sweep(store: Store, name: str) -> SweepConfig:
    """The saved sweep; an unreadable ``sweep.json`` (truncated, empty, not UTF-8, of the wrong shape) is a
    ConfigError naming the file and what is wrong with it."""
    from workbench.core.paths import inside

    path = sweep_folder(store, name) / "sweep.json"
    if not path.is_file():
        raise UnknownNameError("sweep", name, list_sweeps(store))
    inside(sweeps_root(store), f"{name}/sweep.json", "sweep")  # the file too: never a link to elsewhere
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise ValueError("it holds no sweep settings ('config')")
        return SweepConfig.from_dict(data["config"])
    except (ValueError, RecursionError, ConfigError, UnknownNameError) as err:  # json, UTF-8: ValueErrors
        raise ConfigError(f"sweep {name!r} cannot be read ({path}): {err}") from None


def list_sweeps(store: Store) -> list[str]:
    root = sweeps_root(store)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if NAME.fullmatch(p.name) and not p.is_symlink() and (p / "sweep.json").is_file()]
    return [p.name for p in sorted(found, key=lambda p: (p / "sweep.json").stat().st_mtime, reverse=True)]


def sweep_job(store: Store, name: str) -> dict | None:
    """The newest job of this sweep (running or not)."""
    return next((j for j in list_jobs(store, "sweep") if j["spec"].get("sweep") == name), None)


def start_sweep(store: Store, sweep: SweepConfig | str, *, detach: bool = True) -> tuple[str, str]:
    """Save (a new sweep) and start its background job, or resume a saved one by name; (sweep name, job id)."""
    name = sweep if isinstance(sweep, str) else create_sweep(store, sweep)
    check_sweep(store, load_sweep(store, name))
    job = sweep_job(store, name)
    if job is not None and job["status"] in ("queued", "running", "cancelling"):
        raise RunError(f"sweep {name!r} is already running (job {job['id']})")
    return name, start_job(store, "sweep", {"sweep": name}, detach=detach)


# -- which run is which cell ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    config: TrainConfig
    hash: str


def plan(store: Store, name: str, sweep: SweepConfig | None = None) -> list[PlannedCell]:
    """The sweep's cells with their resolved configs, one per distinct config (fractions that round to the same
    rows are one cell)."""
    sweep = sweep or load_sweep(store, name)
    available = _available(store, load_task(sweep.task, store), sweep)
    out, seen = [], set()
    for cell in sweep.cells():
        cfg = sweep.config_for(cell, available, run=None)
        h = cell_hash(cfg)
        if h not in seen:
            seen.add(h)
            out.append(PlannedCell(cell, cfg, h))
    return out


def _cells_file(store: Store, name: str):
    return sweep_folder(store, name) / "cells.json"


def _cell_runs(store: Store, name: str) -> dict[str, str]:
    """cell hash → the run that is (or was being) trained for it."""
    path = _cells_file(store, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) \
        else {}


def _claim_run_name(store: Store, name: str, planned: PlannedCell, taken: set[str]) -> str:
    """A free run name for the cell (its usual name, else with ``-2``, ``-3``…), recorded before it trains."""
    base = planned.cell.name(name)
    run = base
    for n in range(2, 1000):
        if run not in taken and not (store.workspace / "runs" / run).exists():
            break
        run = f"{base}-{n}"
    mapping = _cell_runs(store, name)
    mapping[planned.hash] = run
    write_atomic(_cells_file(store, name), json.dumps(mapping, indent=1))
    return run


def _run_of(store: Store, name: str, planned: PlannedCell, runs: dict, mapping: dict) -> tuple[str | None, dict]:
    """(run name, its index row) when the cell's run exists, its folder is there and it was trained for this
    cell (its recorded origin matches); (name or None, {}) otherwise."""
    run = mapping.get(planned.hash)
    row = runs.get(run) if run else None
    if row is None:
        return run, {}
    try:
        origin = RunFolder.of(store, run).read_meta().get("origin") or {}
    except (RunError, ConfigError, OSError, ValueError):
        return run, {"status": "missing"}
    if origin.get("sweep") != name or origin.get("cell") != planned.hash:
        return run, {"status": "missing"}
    return run, row


# -- what a sweep holds so far ------------------------------------------------------------------------------------
def sweep_status(store: Store, name: str) -> dict:
    """Every cell with its run's status and figures; the teacher on the same test examples; what is done."""
    sweep = load_sweep(store, name)
    runs = {r["name"]: r for r in store.list_runs(sweep.task)}
    mapping = _cell_runs(store, name)
    cells = []
    for planned in plan(store, name, sweep):
        run, row = _run_of(store, name, planned, runs, mapping)
        summary = row.get("summary") or {}
        status = row.get("status") or ("missing" if run and run in runs else "queued")
        cells.append({**asdict(planned.cell), "run": run or planned.cell.name(name), "status": status,
                      "hash": planned.hash, "steps_planned": planned.config.steps,
                      "accuracy": summary.get("accuracy") if status == "done" else None,
                      "n_test": summary.get("n_test"), "training_rows": summary.get("training_rows"),
                      "parameters": summary.get("parameters"), "steps": summary.get("steps"),
                      "train_seconds": summary.get("train_seconds"), "timings": summary.get("timings") or {}})
    done = [c for c in cells if c["status"] == "done"]
    teacher = teacher_score(store, sweep)
    return {"sweep": name, "config": sweep.to_dict(), "cells": cells, "done": len(done), "total": len(cells),
            "test_limit": sweep.effective_test_limit, "teacher_accuracy": teacher["accuracy"], "teacher": teacher,
            "job": sweep_job(store, name)}


def teacher_score(store: Store, sweep: SweepConfig) -> dict:
    """The teacher's accuracy on the sweep's test examples, from answers written without the gold answer in view,
    and the words a figure's reference line says about it."""
    if not sweep.teacher:
        return {"accuracy": None, "label": "no teacher"}
    task = load_task(sweep.task, store)
    acc = teacher_accuracy(store, task, sweep.teacher, split="test", limit=sweep.effective_test_limit)
    n = len(store.examples(task.name, "test", sweep.effective_test_limit))
    if acc is None:
        return {"accuracy": None, "label": f"teacher {sweep.teacher}: no answers of its own on the test split"}
    return {"accuracy": acc, "label": f"teacher {sweep.teacher} ({n} test answers written without the gold answer)"}


def sweep_points(status: dict) -> list[dict]:
    """The finished cells as plot points: method, rows, params, accuracy, seed, run, training seconds. A student's
    size is one number (a from-scratch preset's vocabulary, hence its count, varies a little with its rows)."""
    done = [c for c in status["cells"] if c["status"] == "done" and c["accuracy"] is not None]
    size = {}
    for c in done:
        size[c["student"]] = min(size.get(c["student"], c["parameters"]), c["parameters"])
    return [{"method": c["method"], "rows": c["training_rows"], "params": size[c["student"]], "accuracy": c["accuracy"],
             "seed": c["seed"], "student": c["student"], "run": c["run"],
             "seconds": (c["timings"] or {}).get("train", c["train_seconds"])} for c in done]


def estimate_sweep(store: Store, sweep: SweepConfig, *, calibrate: bool | str = True) -> dict:
    """Seconds for the whole grid before anything runs, per cell and phase: from the measured pace of earlier runs
    here (finished cells of this sweep included), else from a short calibration of each student (now, or in the
    background: see :func:`~workbench.distill.estimates.estimate_run`)."""
    from workbench.distill.estimates import Estimate, estimate_run

    task = load_task(sweep.task, store)
    available = _available(store, task, sweep)
    total, steps, per_cell, cells = Estimate(source="measured"), 0, [], 0
    saved = sweep.name is not None and (sweeps_root(store) / sweep.name / "sweep.json").is_file()
    for planned in (plan(store, sweep.name, sweep) if saved else _plan_unsaved(store, sweep)):
        est = estimate_run(store, planned.config, calibrate=calibrate, job=cells == 0)  # one job: one start
        total, steps, cells = total + est, steps + planned.config.steps, cells + 1
        per_cell.append({"cell": planned.cell.name(sweep.name or "sweep"), **est.to_dict()})
    return {"cells": cells, "steps": steps, "seconds": round(total.seconds, 1), "low": round(total.low, 1),
            "high": round(total.high, 1), "parts": total.parts, "source": total.source, "text": total.describe(),
            "available_rows": available, "test_limit": sweep.effective_test_limit, "per_cell": per_cell}


def _plan_unsaved(store: Store, sweep: SweepConfig) -> list[PlannedCell]:
    available = _available(store, load_task(sweep.task, store), sweep)
    out, seen = [], set()
    for cell in sweep.cells():
        cfg = sweep.config_for(cell, available, run=None)
        if cell_hash(cfg) not in seen:
            seen.add(cell_hash(cfg))
            out.append(PlannedCell(cell, cfg, cell_hash(cfg)))
    return out


def _available(store: Store, task, sweep: SweepConfig) -> int:
    """Rows in the training set every cell subsamples (the teacher's, so that all methods share them)."""
    if sweep.teacher is None:
        return len(build_training_set(store, task, None).rows)
    if store.latest_generations(task.name, teacher_id(sweep.teacher), split="train"):
        return len(build_training_set(store, task, sweep.teacher, label_source=sweep.label_source).rows)
    return len(store.examples(task.name, "train"))  # a free teacher will answer them first


# -- the job -------------------------------------------------------------------------------------------------------
def run_sweep(store: Store, name: str, *, progress=None, should_stop=None) -> dict:
    """Train every cell not yet done, one after another; resumes a stopped cell; returns the status. One process
    at a time runs a sweep (a second one is refused with the first one's pid)."""
    sweep = load_sweep(store, name)
    folder = sweep_folder(store, name)
    try:
        lock = OwnerLock.acquire(folder / ".lock", note=f"sweep {name}")
    except LockHeld as held:
        raise RunError(f"sweep {name!r} is already being run by process {held.holder or '?'}; wait for it, or "
                       "cancel it first") from None
    try:
        task = load_task(sweep.task, store)
        check_sweep(store, sweep)
        if sweep.teacher:
            ensure_answers(store, task.name, sweep.teacher, split="train")  # free teachers answer first
            ensure_answers(store, task.name, sweep.teacher, split="test")
        _train_cells(store, name, sweep, progress, should_stop)
        status = {k: v for k, v in sweep_status(store, name).items() if k != "job"}
        # The figure's data, kept with the sweep: a class can be shown the finished figure without retraining.
        write_atomic(folder / "points.json",
                     json.dumps({"points": sweep_points(status), "teacher_accuracy": status["teacher_accuracy"],
                                 "done": status["done"], "total": status["total"]}, indent=1))
        return status
    finally:
        lock.release()


def _train_cells(store: Store, name: str, sweep: SweepConfig, progress, should_stop) -> None:
    from workbench.distill.estimates import estimate_run
    from workbench.distill.runs import resume_run, train_student  # torch: only when cells run

    planned_cells = plan(store, name, sweep)
    for index, planned in enumerate(planned_cells):
        if should_stop is not None and should_stop():
            return
        runs = {r["name"]: r for r in store.list_runs()}
        mapping = _cell_runs(store, name)
        run, row = _run_of(store, name, planned, runs, mapping)
        if row.get("status") == "done":
            continue
        if progress is not None:
            left = [p.config for p in planned_cells[index:]]
            eta = sum(estimate_run(store, c, calibrate=False, job=False).seconds for c in left)
            progress(CellStarted(run=run or planned.cell.name(name), index=index, total=len(planned_cells),
                                 eta=round(eta, 1) if eta else None))
        if row.get("status") in ("cancelled", "failed", "interrupted"):
            resume_run(store, run, progress=progress, should_stop=should_stop)
            continue
        run = _claim_run_name(store, name, planned, set(runs))
        train_student(store, planned.config.with_(run=run), progress=progress, should_stop=should_stop,
                      origin={"sweep": name, "cell": planned.hash})


def sweep_job_kind(store: Store, spec: dict, ctx: JobContext) -> dict:
    """The ``sweep`` job kind. spec: ``{"sweep": NAME}``."""
    ctx.state = SweepState()
    ctx.log(f"sweep {spec['sweep']}")
    result = run_sweep(store, spec["sweep"], progress=ctx.progress, should_stop=ctx.should_stop)
    return {"sweep": spec["sweep"], "done": result["done"], "total": result["total"]}
