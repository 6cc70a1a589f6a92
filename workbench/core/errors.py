"""Domain errors, in one place. Front ends convert them at the edge: the CLI to exit code 2 with a one-line
message, the UI to ``gr.Error``. Each message says what to do next."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every user-facing error. ``str(err)`` is a complete, actionable one-line message."""


class ConfigError(WorkbenchError, ValueError):
    """A setting is out of range or inconsistent with another one."""


class UnknownNameError(WorkbenchError, KeyError):
    """A name (task, teacher, method, student preset, run) is not registered."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...] = ()):
        self.kind, self.name, self.known = kind, name, list(known)
        hint = f"; known: {', '.join(sorted(self.known))}" if self.known else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ImportDataError(WorkbenchError):
    """A data file or folder cannot be read at all (missing, empty, wrong layout)."""


class StoreError(WorkbenchError):
    """The workspace store cannot be opened or written (read-only folder, disk full, newer schema)."""


class NothingToDoError(WorkbenchError):
    """An action needs data that is not there yet (no generations, empty training set)."""


class TeacherError(WorkbenchError):
    """A teacher cannot be built or reached (bad spec, missing checkpoint, endpoint down)."""


class RunError(WorkbenchError):
    """A run cannot be started, resumed or loaded."""


class Cancelled(Exception):  # noqa: N818 - a signal, not a failure: a person asked a job to stop
    """Raised inside long work (scoring, generation) when a person cancelled it; the caller records the run or job
    as cancelled, keeping what was done. Not a :class:`WorkbenchError`: nothing went wrong."""
