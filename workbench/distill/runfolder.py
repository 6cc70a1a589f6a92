"""The run folder: ``<workspace>/runs/<name>/``, and :class:`RunFolder`, the only code that knows its layout.

A run folder describes itself (STYLE 5)::

    config.json         the resolved config, training-set fingerprint, teacher id, template hashes, student, versions
    trainingset.jsonl   the frozen rows the run learned from
    metrics.jsonl       one typed event a line (workbench.core.events): train steps, evaluations, checkpoints, the end
    checkpoints/        checkpoint-N/ with optimizer and scheduler state (resume)
    model/              the final model: a standard save_pretrained folder (safetensors and tokenizer)
    predictions.jsonl   the test split: label (and rationale) per example, with ``correct``
    .lock               held by the one process training the run (``flock``: a killed process leaves it free)

>>> folder = RunFolder.of(store, "quantnli-dss")            # a run of this workspace
>>> folder.read_meta()["config"]["method"], folder.has_model
('dss', True)
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from workbench.core.errors import RunError, StoreError
from workbench.core.events import Event, event_from_dict
from workbench.core.locks import LockHeld, OwnerLock
from workbench.core.paths import inside
from workbench.core.store import is_disk_full
from workbench.core.store_runs_jobs import RUN_LOCK


class RunFolder:
    CONFIG = "config.json"
    TRAININGSET = "trainingset.jsonl"
    METRICS = "metrics.jsonl"
    CHECKPOINTS = "checkpoints"
    MODEL = "model"
    PREDICTIONS = "predictions.jsonl"
    LOCK = RUN_LOCK

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def of(cls, store, name: str) -> RunFolder:
        """The folder of run ``name`` in a workspace (it may not exist yet). Every reader of a run by name (eval,
        compare, predict, resume, the app) comes here: a name with ``..`` or a folder that is a symlink to
        elsewhere is refused (:func:`workbench.core.paths.inside`)."""
        return cls(inside(runs_root(store), name, "run"))

    @classmethod
    def find(cls, path: str | Path) -> RunFolder | None:
        """The run folder at ``path``, or the one whose ``model/`` folder ``path`` is; None if it is neither."""
        path = Path(path).expanduser()
        if (path / cls.MODEL / "config.json").is_file() and (path / cls.CONFIG).is_file():
            return cls(path)
        if path.name == cls.MODEL and (path.parent / cls.TRAININGSET).is_file():
            return cls(path.parent)
        return None

    @property
    def name(self) -> str:
        return self.root.name

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    # -- ownership ---------------------------------------------------------------------------------------------
    def lock(self) -> OwnerLock:
        """Become the run's one owner (release the lock when done); a run another live process trains is a
        :class:`RunError`. The kernel drops the lock when the owner dies, so a killed run can be resumed."""
        try:
            return OwnerLock.acquire(self.root / self.LOCK, wait=1.0, note=f"training run {self.name}")
        except LockHeld as held:
            who = f" ({held.holder})" if held.holder else ""
            raise RunError(f"run {self.name!r} is being trained by another process{who}; wait for it to finish, "
                           "or cancel it, before resuming") from None
        except OSError as err:
            raise disk_error(err, self.root) from err

    # -- config ------------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / self.CONFIG

    def read_meta(self) -> dict:
        if not self.config_path.is_file():
            raise RunError(f"run {self.name!r} has no {self.config_path}; list runs with `workbench runs`")
        try:
            meta = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:  # RecursionError: nested beyond the parser's depth
            raise RunError(f"run {self.name!r}: {self.config_path} cannot be read ({err})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise RunError(f"run {self.name!r}: {self.config_path} cannot be read (it holds no run description: "
                           "'config' is missing); train the run again or delete its folder")
        return meta

    def write_meta(self, meta: dict) -> None:
        write_atomic(self.config_path, json.dumps(meta, indent=2, ensure_ascii=False, default=str))

    # -- training rows -----------------------------------------------------------------------------------------
    def write_rows(self, rows: list[dict]) -> None:
        write_atomic(self.root / self.TRAININGSET, _jsonl(rows))

    def read_rows(self) -> list[dict]:
        return _read_jsonl(self.root / self.TRAININGSET)

    # -- events ------------------------------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.root / self.METRICS

    def append_event(self, event: Event) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event.to_dict(), default=float) + "\n")

    def read_metrics(self) -> list[dict]:
        """The events as dicts (a line being written is skipped, not an error)."""
        if not self.metrics_path.is_file():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the trainer is appending this very line
        return out

    def read_events(self) -> list[Event]:
        return [event_from_dict(d) for d in self.read_metrics()]

    # -- checkpoints and the final model -----------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.root / self.CHECKPOINTS

    def last_complete_checkpoint(self) -> str | None:
        return last_complete_checkpoint(self.checkpoints)

    @property
    def model_dir(self) -> Path:
        return self.root / self.MODEL

    @property
    def has_model(self) -> bool:
        return (self.model_dir / "config.json").is_file()

    # -- predictions -------------------------------------------------------------------------------------------
    def write_predictions(self, rows: list[dict]) -> None:
        write_atomic(self.root / self.PREDICTIONS, _jsonl(rows))

    def read_predictions(self) -> list[dict]:
        return _read_jsonl(self.root / self.PREDICTIONS)


def runs_root(store) -> Path:
    return store.workspace / "runs"


def last_complete_checkpoint(root: Path) -> str | None:
    """The newest ``checkpoint-N`` folder that finished writing (its ``trainer_state.json`` exists).

    A process killed while saving leaves a newer folder without it; ``transformers``' ``get_last_checkpoint``
    would pick that one and resuming would fail, so it is skipped (and left on disk, untouched)."""
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.name.startswith("checkpoint-") and p.name[11:].isdigit()
            and (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name[11:]))) if done else None


def disk_error(err: OSError, where: Path) -> Exception:
    """A clean error for an OS error while writing a run: a full disk says so; anything else names the path."""
    if is_disk_full(err):
        return StoreError(f"the disk holding {where} is full; free space and retry")
    return RunError(f"cannot write {where}: {err.strerror or err}")


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a reader never sees half a file, a full disk leaves none."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as err:
        raise RunError(f"{path} cannot be read ({err})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise RunError(f"{path} line {n} cannot be read ({err}); the run's file is damaged") from None
        if not isinstance(row, dict):
            raise RunError(f"{path} line {n} is a {type(row).__name__}, not a row; the run's file is damaged")
        rows.append(row)
    return rows
