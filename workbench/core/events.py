"""Typed progress events, and the folded state that front ends draw.

Training and generation report what happens as events (:class:`TrainStep`, :class:`Evaluation`,
:class:`Checkpoint`, :class:`Finished`, :class:`GenerationProgress`, …). An event says what it is, so a front end
never guesses from which keys a dict happens to carry. The CLI prints them, ``metrics.jsonl`` stores them (one
``to_dict()`` a line, with an ``event`` key), and :class:`TrainingState` folds a run's stream of them into what a
progress bar shows: an evaluation keeps the step count, a cancelled run keeps its step. A generation's state is
simply its latest :class:`GenerationProgress`.

>>> state = TrainingState().apply(TrainStep(step=200, steps=1000, loss=0.5, elapsed=20.0, eta=80.0))
>>> state = state.apply(Evaluation(step=200, accuracy=0.4))
>>> state.step, state.steps, state.fraction, state.accuracy
(200, 1000, 0.2, 0.4)
>>> event_from_dict(TrainStep(step=3, steps=9, loss=1.0, parts={"label_loss": 0.4}).to_dict()).parts
{'label_loss': 0.4}
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import ClassVar

EVENTS: dict[str, type[Event]] = {}


def _event(cls):
    EVENTS[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Event:
    """Base: a ``kind`` (the ``event`` key of its dict) and the wall-clock time it happened."""

    kind: ClassVar[str] = ""
    time: float = field(default_factory=lambda: round(time.time(), 3), kw_only=True)

    def to_dict(self) -> dict:
        return {"event": self.kind, **{k: v for k, v in asdict(self).items() if v is not None}}

    def line(self) -> str | None:
        """One line for a log or a terminal (None: not worth a line)."""
        return None


@_event
@dataclass(frozen=True)
class RunStarted(Event):
    """A run claimed its folder (before its student is built): front ends can name it at once."""

    kind: ClassVar[str] = "run_started"
    run: str = ""
    steps: int = 0

    def line(self) -> str:
        return f"run {self.run}: {self.steps} steps"


@_event
@dataclass(frozen=True)
class TrainBegin(Event):
    kind: ClassVar[str] = "train_begin"
    step: int = 0
    steps: int = 0
    optimizer_step: int | None = None  # Adam's own counter: after a resume it equals the checkpoint's step


@_event
@dataclass(frozen=True)
class TrainStep(Event):
    """A logged training step: the mean loss since the last log and its per-task parts (label_loss, …)."""

    kind: ClassVar[str] = "train"
    step: int = 0
    steps: int = 0
    loss: float | None = None
    lr: float | None = None
    parts: dict = field(default_factory=dict)
    elapsed: float | None = None  # seconds of training (evaluations excluded) in this process
    eta: float | None = None  # seconds left, from the recent pace of training steps
    s_per_step: float | None = None

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(d.pop("parts", {}))  # flat, as metrics.jsonl has always been: label_loss next to loss
        return d

    def line(self) -> str:
        values = {"loss": self.loss, **self.parts}
        parts = " ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
        eta = f" · ETA {self.eta:.0f} s" if self.eta is not None else ""
        return f"step {self.step}/{self.steps} · {parts}{eta}"


@_event
@dataclass(frozen=True)
class Evaluation(Event):
    """Task accuracy on the valid split during training (generation + the task metric)."""

    kind: ClassVar[str] = "eval"
    step: int = 0
    accuracy: float | None = None
    seconds: float | None = None
    n: int | None = None

    def line(self) -> str:
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.3f}"
        return f"step {self.step}: valid accuracy {acc} on {self.n} examples ({self.seconds} s)"


@_event
@dataclass(frozen=True)
class Checkpoint(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int = 0
    path: str = ""

    def line(self) -> str:
        return f"step {self.step}: checkpoint saved ({self.path})"


@_event
@dataclass(frozen=True)
class Resumed(Event):
    kind: ClassVar[str] = "resume"
    from_checkpoint: str | None = None


@_event
@dataclass(frozen=True)
class EarlyStop(Event):
    kind: ClassVar[str] = "early_stop"
    step: int = 0
    best_accuracy: float | None = None


@_event
@dataclass(frozen=True)
class Note(Event):
    kind: ClassVar[str] = "note"
    message: str = ""

    def line(self) -> str:
        return self.message


@_event
@dataclass(frozen=True)
class Finished(Event):
    """The end of a run: ``done``, ``cancelled`` or ``failed`` (with the error)."""

    kind: ClassVar[str] = "finished"
    status: str = "done"
    steps: int | None = None
    accuracy: float | None = None
    error: str | None = None

    def line(self) -> str:
        acc = "" if self.accuracy is None else f", test accuracy {self.accuracy:.3f}"
        return f"{self.status} after {self.steps} steps{acc}" + (f": {self.error}" if self.error else "")


PHASES = ("queued", "loading", "training", "evaluating", "scoring", "saving")


@_event
@dataclass(frozen=True)
class Phase(Event):
    """What a run is doing now, with its own progress: ``loading`` the student, ``training`` (steps),
    ``evaluating`` on the valid split during training, ``scoring`` the test split, ``saving`` the model; or
    ``queued`` behind another job (``done``: its place in the queue)."""

    kind: ClassVar[str] = "phase"
    name: str = "loading"
    done: int = 0
    total: int = 0
    elapsed: float | None = None
    eta: float | None = None
    note: str | None = None

    def line(self) -> str | None:
        # Only a phase's start and end make log lines; the progress in between is for bars.
        if self.done in (0, self.total):
            return describe_phase(self.name, self.done, self.total, self.eta, self.note)
        return None


def describe_phase(name: str | None, done: int, total: int, eta: float | None, note: str | None = None) -> str:
    """The words a front end shows for a phase, e.g. ``scoring test 40/100 · ETA 12 s``.

    >>> describe_phase("scoring", 40, 100, 12.4), describe_phase("training", 3, 32, None)
    ('scoring test 40/100 · ETA 12 s', 'training step 3/32')
    >>> describe_phase("queued", 2, 0, None, "behind train-x")
    'queued (2nd in line) · behind train-x'
    """
    if name is None:
        return ""
    if name == "queued":
        text = f"queued ({_ordinal(done)} in line)" if done else "queued"
    else:
        what = {"training": "training step", "evaluating": "evaluating", "scoring": "scoring test",
                "loading": "loading", "saving": "saving"}.get(name, name)
        text = f"{what} {done}/{total}" if total else what
    if eta is not None and name != "queued":
        text += f" · ETA {eta:.0f} s"
    return text + (f" · {note}" if note else "")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _ordinal(n: int) -> str:
    return f"{n}{'tsnrhtdd'[(n // 10 % 10 != 1) * (n % 10 < 4) * n % 10::4]}"


@_event
@dataclass(frozen=True)
class CellStarted(Event):
    """A sweep moved on to one of its cells (a run): ``index`` of ``total``, and the sweep's time left."""

    kind: ClassVar[str] = "cell"
    run: str = ""
    index: int = 0
    total: int = 0
    eta: float | None = None

    def line(self) -> str:
        return f"cell {self.index + 1}/{self.total}: {self.run}"


@_event
@dataclass(frozen=True)
class GenerationProgress(Event):
    """Counts of a generation so far; the latest one is a generation job's whole state."""

    kind: ClassVar[str] = "generation"
    done: int = 0
    total: int = 0
    generated: int = 0
    parsed: int = 0
    parse_errors: int = 0
    errors: int = 0
    elapsed: float | None = None
    eta: float | None = None
    # The batch the teacher is answering now: its rows, how far it is (tokens generated / the most it may
    # generate), and what is happening, in words ("batch 2 of 4: 57/128 tokens").
    in_flight: int = 0
    partial: float = 0.0
    phase: str = ""

    def apply(self, event: Event) -> GenerationProgress:
        return event if isinstance(event, GenerationProgress) else self

    @property
    def fraction(self) -> float:
        """Rows done, plus the share of the batch in flight already generated."""
        return min(1.0, (self.done + self.in_flight * self.partial) / self.total) if self.total else 0.0

    @classmethod
    def from_dict(cls, data: dict | None) -> GenerationProgress:
        return _from_dict(cls, data)


def event_from_dict(data: dict) -> Event:
    """The typed event of a ``to_dict()`` (a ``metrics.jsonl`` line); unknown keys of a train step are its parts."""
    cls = EVENTS.get(data.get("event", ""))
    if cls is None:
        return Note(message=str(data), time=data.get("time", 0.0))
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if cls is TrainStep:
        kwargs["parts"] = {k: v for k, v in data.items() if k not in names and k not in ("event", "run")}
    return cls(**kwargs)


# -- folded state -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingState:
    """What a training progress bar shows, folded from the run's events (``apply`` returns a new state)."""

    run: str | None = None
    status: str = "running"
    step: int = 0
    steps: int = 0
    loss: float | None = None
    parts: dict = field(default_factory=dict)
    elapsed: float | None = None
    eta: float | None = None
    accuracy: float | None = None  # the latest evaluation on the valid split
    evaluations: int = 0
    message: str | None = None  # the latest note, or why the run failed
    phase: str | None = None  # loading, training, evaluating, scoring, saving (events.PHASES)
    phase_done: int = 0
    phase_total: int = 0
    phase_eta: float | None = None

    def apply(self, event: Event) -> TrainingState:
        if isinstance(event, Phase):
            return replace(self, phase=event.name, phase_done=event.done, phase_total=event.total,
                           phase_eta=event.eta, status="running")
        if isinstance(event, RunStarted):
            return replace(self, run=event.run, steps=event.steps or self.steps, status="running", phase="loading",
                           phase_done=0, phase_total=0, phase_eta=None)
        if isinstance(event, TrainBegin):
            return replace(self, step=event.step, steps=event.steps or self.steps, status="running",
                           phase="training", phase_done=event.step, phase_total=event.steps or self.steps,
                           phase_eta=None)
        if isinstance(event, TrainStep):
            return replace(self, step=event.step, steps=event.steps or self.steps, loss=event.loss,
                           parts=dict(event.parts), elapsed=event.elapsed, eta=event.eta, phase="training",
                           phase_done=event.step, phase_total=event.steps or self.steps, phase_eta=event.eta)
        if isinstance(event, Evaluation):
            return replace(self, step=max(self.step, event.step), accuracy=event.accuracy,
                           evaluations=self.evaluations + 1, phase="training", phase_done=max(self.step, event.step),
                           phase_total=self.steps, phase_eta=self.eta)
        if isinstance(event, (EarlyStop, Checkpoint)):
            return replace(self, step=max(self.step, event.step))
        if isinstance(event, Note):
            return replace(self, message=event.message)
        if isinstance(event, Finished):
            step = event.steps if event.steps is not None else self.step
            return replace(self, status=event.status, step=step, eta=0 if event.status == "done" else None,
                           message=event.error or self.message, phase=None, phase_eta=None)
        return self

    @property
    def fraction(self) -> float:
        """Share of the steps done: a cancelled run at step 300 of 1,000 shows 0.3, never a full bar."""
        return min(1.0, self.step / self.steps) if self.steps else 0.0

    @property
    def phase_fraction(self) -> float:
        return min(1.0, self.phase_done / self.phase_total) if self.phase_total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "state": "training"}

    def describe(self) -> str:
        """What the run is doing, in words (``scoring test 40/100 · ETA 12 s``); empty when it is not running."""
        return describe_phase(self.phase, self.phase_done, self.phase_total, self.phase_eta) if self.phase else ""

    @classmethod
    def from_dict(cls, data: dict | None) -> TrainingState:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class SweepState:
    """A sweep job's progress: which cell (of how many) and that cell's run, folded from its events.

    >>> s = SweepState().apply(CellStarted(run="s--tiny-dss-r16-s0", index=1, total=4, eta=300.0))
    >>> s = s.apply(Phase(name="scoring", done=20, total=100))
    >>> s.cell, s.index, s.run.describe()
    ('s--tiny-dss-r16-s0', 1, 'scoring test 20/100')
    """

    cell: str | None = None
    index: int = 0
    total: int = 0
    eta: float | None = None  # seconds left for the whole sweep, at the start of this cell
    cell_started: float | None = None  # wall-clock time the cell started
    run: TrainingState = field(default_factory=TrainingState)
    status: str = "running"

    def apply(self, event: Event) -> SweepState:
        if isinstance(event, CellStarted):
            return replace(self, cell=event.run, index=event.index, total=event.total, eta=event.eta,
                           cell_started=event.time, run=TrainingState(run=event.run))
        return replace(self, run=self.run.apply(event))

    def describe(self) -> str:
        if self.run.phase == "queued":
            return self.run.describe()
        if self.cell is None:
            return "preparing the sweep (the teacher answers first)"
        text = f"cell {self.index + 1}/{self.total} · {self.run.describe()}".rstrip(" ·")
        if self.eta is not None and self.cell_started is not None:
            left = max(0.0, self.eta - (time.time() - self.cell_started))
            text += f" · sweep ≈ {_minutes(left)} left"
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "run": self.run.to_dict(), "state": "sweep"}

    @classmethod
    def from_dict(cls, data: dict | None) -> SweepState:
        data = dict(data or {})
        run = TrainingState.from_dict(data.pop("run", None))
        state = _from_dict(cls, data)
        return replace(state, run=run)


def state_from_dict(data: dict | None):
    """The folded state a job's ``progress`` holds (training, sweep or generation); a job still waiting for its
    turn holds its ``queued`` phase, read as a training state in that phase."""
    data = data or {}
    if data.get("state") == "sweep":
        return SweepState.from_dict(data)
    if data.get("event") == "generation":
        return GenerationProgress.from_dict(data)
    if data.get("event") == "phase":
        return TrainingState().apply(event_from_dict(data))
    return TrainingState.from_dict(data)


def _from_dict(cls, data: dict | None):
    """A state dataclass from its dict (a job row's ``progress``); keys it does not know are ignored."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (data or {}).items() if k in names})
