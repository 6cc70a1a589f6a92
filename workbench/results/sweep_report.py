"""What a sweep shows, decided once for every front end: its state in words, the verdict per size, the figures'
titles and data, the per-cell split of time. The Sweeps tab renders a :class:`SweepReport`, ``workbench sweep``
prints it, notebook 02 displays it: the same sentences everywhere, because they come from here.

After a sweep has run (``run_sweep``; notebook 02 and ``tests/test_sweeps.py`` run whole ones)::

    report = sweep_report(store, "demo")
    print("\\n".join(v.sentence for v in report.verdicts))
    # dss beats standard at 128 rows by 0.25 (95% CI 0.17–0.33; 3 seeds × 100 test examples)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.core.events import SweepState, state_from_dict
from workbench.core.jobs import ACTIVE, job_status, queue_line
from workbench.core.store import Store
from workbench.distill.sweeps import sweep_points, sweep_status
from workbench.results import plots
from workbench.results.verdict import Verdict, one_seed_caveat, sweep_verdicts

TIME_PARTS = ("load", "train", "evaluate", "score", "save")


@dataclass
class SweepReport:
    name: str
    task: str
    teacher: str | None
    config: dict
    status: dict
    running: bool
    state_line: str
    points: list[dict]
    verdicts: list[Verdict]
    caveat: str | None
    titles: dict[str, str]
    cells: list[dict] = field(default_factory=list)

    @property
    def teacher_accuracy(self) -> float | None:
        return self.status["teacher_accuracy"]

    @property
    def teacher_label(self) -> str:
        return self.status["teacher"]["label"]

    @property
    def complete(self) -> bool:
        return self.status["done"] == self.status["total"]

    def figures(self):
        """(rows vs accuracy, training seconds vs accuracy, student size vs accuracy), or a chart saying why one
        cannot be drawn yet."""
        teacher, label = self.teacher_accuracy, self.teacher_label
        gap = plots.curve_gap(self.points, "rows", "training-set sizes")
        rows = plots.empty(f"{self.titles['rows']}: {gap}") if gap else plots.rows_vs_accuracy(
            self.points, teacher=teacher, title=self.titles["rows"], teacher_label=label)
        seconds = plots.empty(f"{self.titles['seconds']}: {gap}") if gap else plots.seconds_vs_accuracy(
            self.points, teacher=teacher, title=self.titles["seconds"], teacher_label=label)
        gap = plots.curve_gap(self.points, "params", "student sizes")
        size = plots.empty(f"{self.titles['size']}: {gap}") if gap else plots.size_vs_accuracy(
            self.points, teacher=teacher, title=self.titles["size"], teacher_label=label)
        return rows, seconds, size

    def lines(self) -> list[str]:
        """The report as text (the CLI's human output)."""
        out = [f"sweep {self.name}: {self.state_line}", f"task {self.task}, teacher {self.teacher or 'none'}; "
               f"{self.status['done']}/{self.status['total']} cells done; {self.teacher_label}: "
               + ("n/a" if self.teacher_accuracy is None else f"{self.teacher_accuracy:.3f}")]
        for c in self.cells:
            acc = "" if c["accuracy"] is None else f"{c['accuracy']:.3f}"
            split = " ".join(f"{k} {c[k]:.0f}s" for k in TIME_PARTS if c.get(k))
            out.append(f"  {c['run']:<56} {c['status']:<11} {acc:<6} {split}")
        out += [f"→ {v.sentence}" for v in self.verdicts]
        if self.caveat:
            out.append(f"note: {self.caveat}")
        return out

    def to_dict(self) -> dict:
        return {"sweep": self.name, "task": self.task, "teacher": self.teacher, "state": self.state_line,
                "running": self.running, "done": self.status["done"], "total": self.status["total"],
                "teacher_accuracy": self.teacher_accuracy, "teacher_label": self.teacher_label,
                "test_limit": self.status["test_limit"], "cells": self.cells,
                "verdicts": [v.to_dict() for v in self.verdicts], "caveat": self.caveat, "titles": self.titles}


def sweep_report(store: Store, name: str) -> SweepReport:
    status = sweep_status(store, name)
    config = status["config"]
    job = status["job"]
    if job is not None and job["status"] in ACTIVE:
        job = job_status(store, job["id"])
    running = job is not None and job["status"] in ACTIVE
    students = ", ".join(config["students"])
    seeds = len(config["seeds"])
    each = f"each point: the mean of {seeds} seed{'s' if seeds != 1 else ''}" + (", bars: min–max" if seeds > 1 else "")
    where = f"{config['task']}, teacher {config['teacher'] or 'none'}, {students}"
    titles = {"rows": f"Training rows vs accuracy — {where} ({each})",
              "seconds": f"Training seconds vs accuracy — {where} ({each})",
              "size": f"Student size vs accuracy — {config['task']}, teacher {config['teacher'] or 'none'} ({each})"}
    cells = [{"run": c["run"], "student": c["student"], "method": c["method"],
              "rows": c["training_rows"] or c["rows"] or c["fraction"], "seed": c["seed"], "status": c["status"],
              "accuracy": c["accuracy"], "steps": c["steps"] or c["steps_planned"],
              **{k: (c["timings"] or {}).get(k) for k in TIME_PARTS}} for c in status["cells"]]
    return SweepReport(name, config["task"], config["teacher"], config, status, running,
                       state_line(store, status, job), sweep_points(status), sweep_verdicts(store, status),
                       one_seed_caveat(seeds), titles, cells)


def state_line(store: Store, status: dict, job: dict | None) -> str:
    """One line: complete, queued (and behind what), the cell and its phase, or why it stopped."""
    if status["done"] == status["total"]:
        return "complete"
    if job is None:
        return f"not started ({status['done']}/{status['total']} cells done)"
    if job["status"] == "queued":
        return queue_line(store, job) or "queued"
    if job["status"] in ACTIVE:
        state = state_from_dict(job.get("progress"))
        text = state.describe() if isinstance(state, SweepState) else ""
        return ("cancelling: " if job["status"] == "cancelling" else "") + (text or "running")
    why = f": {job['error']}" if job.get("error") else ""
    return f"{job['status']}{why} ({status['done']}/{status['total']} cells done; resume it to go on)"
