"""Training runs: the library entry point the CLI, the UI and notebooks call, and the ``train`` job kind.

:func:`train_student` resolves the config (the student's recipe fills unset fields), builds and freezes the
training set, claims a run folder (:class:`~workbench.distill.runfolder.RunFolder`), trains, scores the test split
and writes the summary; :func:`resume_run` continues a stopped, killed or failed run from its last complete
checkpoint. Progress is reported as typed events (:mod:`workbench.core.events`).

>>> cfg = TrainConfig(task="wordproblems", method="dss", student="tiny", teacher="builtin", steps=600)
>>> summary = train_student(store, cfg.with_(steps=2, eval_every=0))     # 600 in earnest; 2 here
>>> summary["steps"], summary["n_test"], 0 <= summary["accuracy"] <= 1
(2, 8, True)

In the background: ``start_job(store, "train", cfg.to_dict())``; resume: ``start_job(store, "train", {"resume": name})``.
Several processes: ``torchrun --nproc_per_node 2 -m workbench train --run-name NAME ...`` (only rank 0 writes files).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.core.errors import Cancelled, ConfigError, RunError, StoreError
from workbench.core.events import Event, Finished, Phase, RunStarted, TrainingState
from workbench.core.jobs import JobContext
from workbench.core.locks import OwnerLock
from workbench.core.store import Store, is_disk_full
from workbench.data.metrics import score_predictions
from workbench.data.tasks import Task, load_task
from workbench.distill.config import TrainConfig
from workbench.distill.methods import ensure_method, method_for_config
from workbench.distill.number_slots import resolve_numbers
from workbench.distill.run_description import describe_run, vocab_texts
from workbench.distill.runfolder import RunFolder, disk_error, runs_root
from workbench.distill.students import Student, check_student, is_from_scratch, load_student, make_student
from workbench.distill.trainer import fit, is_main_process, save_final_model
from workbench.rationales.generation import ensure_answers, teacher_accuracy
from workbench.rationales.trainingset import build_training_set

ProgressFn = Callable[[Event], None]
StopFn = Callable[[], bool]
RESUMABLE = ("cancelled", "failed", "interrupted")


@dataclass
class RunSession:
    """Everything one training process works with: the resolved config, the run's folder, task, frozen rows,
    student and the run's description (``config.json``)."""

    store: Store
    cfg: TrainConfig
    folder: RunFolder
    task: Task
    rows: list[dict]
    student: Student
    meta: dict
    timings: dict = field(default_factory=dict)  # seconds per phase: teacher, load, train, evaluate, save, score
    trained: dict | None = None  # resumed only to score: the summary its training recorded

    @property
    def name(self) -> str:
        return self.folder.name


def train_student(store: Store, config: TrainConfig | dict, progress: ProgressFn | None = None,
                  should_stop: StopFn | None = None, origin: dict | None = None) -> dict:
    """Build the training set, train, score on the test split, write the run folder; returns the summary.

    ``origin`` (e.g. a sweep and its cell's hash) is recorded in the run's description and summary, so that
    whoever asked for the run can tell it from any other run."""
    cfg = (config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)).resolved()
    started = time.monotonic()
    task = load_task(cfg.task, store)
    ts, rows = training_rows(store, task, cfg)
    timings = {"teacher": round(time.monotonic() - started, 2)}
    # "auto" is decided once, here, and the run's config records the outcome (slots or text).
    cfg = cfg.with_(numbers=resolve_numbers(cfg.numbers, task.answer_kind, is_from_scratch(cfg.student)))
    method = method_for_config(cfg)
    if method.needs_label_dist and not task.labels:
        raise ConfigError(f"method 'kd' needs a classification task; {task.name!r} has answer kind "
                          f"{task.answer_kind!r}. Use 'standard' or 'dss'")
    method.check_rows(rows)
    check_student(cfg.student)  # a hub model offline: say so before a run folder is claimed
    try:
        folder = claim_run(store, cfg)
    except OSError as err:  # cannot even create the folder (a full disk, a read-only workspace)
        raise disk_error(err, runs_root(store)) from err
    lock = None
    try:  # until the run is on disk and in the index, a failure (a full disk) leaves no trace: the name stays free
        lock = folder.lock() if is_main_process() else None
        if progress is not None:
            progress(RunStarted(run=folder.name, steps=cfg.steps))
        loading = time.monotonic()
        student = make_student(cfg.student, vocab_texts(store, task, rows, cfg.numbers),
                               trust_remote_code=cfg.trust_remote_code, seed=cfg.seed)
        timings["load"] = round(time.monotonic() - loading, 2)
        meta = describe_run(store, cfg, folder.name, task, ts, rows, student)
        if origin:
            meta["origin"] = origin
        session = RunSession(store, cfg, folder, task, rows, student, meta, timings)
        if is_main_process():
            folder.write_meta(meta)
            folder.write_rows(rows)
            _index_running(session, resume_from=None)
    except BaseException as err:
        if is_main_process():
            if lock is not None:
                lock.release()
            shutil.rmtree(folder.root, ignore_errors=True)
        if isinstance(err, OSError):
            raise disk_error(err, folder.root) from err
        raise
    return _execute(session, progress, should_stop, resume_from=None, lock=lock)


def training_rows(store: Store, task: Task, cfg: TrainConfig, *, ask_free: bool = True):
    """(training set, the rows a run of ``cfg`` learns from): the one function the run, its preview and its
    calibration call. A free teacher (the offline one) first answers what it has not yet (``ask_free``), so the
    defaults train from zero."""
    if cfg.teacher and ask_free:
        ensure_answers(store, task.name, cfg.teacher, split="train")
    ts = build_training_set(store, task, cfg.teacher, label_source=cfg.label_source,
                            drop_parse_errors=cfg.drop_parse_errors, drop_teacher_wrong=cfg.drop_teacher_wrong,
                            only_accepted=cfg.only_accepted)
    return ts, subsample(ts.rows, cfg.fraction, cfg.seed)


def calibration_rows(store: Store, task: Task, cfg: TrainConfig) -> list[dict]:
    """Rows to time a few training steps on: the run's own, else the task's gold rows with the rationale its
    method needs standing in (a calibration measures lengths and pace, not learning)."""
    _, rows = training_rows(store, task, cfg)
    if rows:
        return rows
    from workbench.core.errors import NothingToDoError

    examples = store.examples(task.name, "train", 64)
    if not examples:
        raise NothingToDoError(f"task {task.name!r} has no training examples to calibrate on")
    return [{"input": e.input, "label": e.label or "", "rationale": e.input} for e in examples]


def check_resumable(store: Store, name: str) -> str:
    """The run's status if it can be resumed; else a :class:`RunError` saying why not."""
    status = store.run_row(name)["status"]
    if status == "done":
        raise RunError(f"run {name!r} already finished; start a new run to train more")
    if status not in RESUMABLE:
        raise RunError(f"run {name!r} is {status}; only a cancelled, failed or interrupted run can be resumed")
    return status


def resume_run(store: Store, name: str, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None) -> dict:
    """Continue a stopped, killed or failed run from its last checkpoint (same step, optimizer and scheduler)."""
    folder = RunFolder.of(store, name)
    meta = folder.read_meta()
    if store.run_row(name)["status"] == "done":
        raise RunError(f"run {name!r} already finished; start a new run to train more")
    lock = folder.lock() if is_main_process() else None  # one owner: a run training elsewhere is refused here
    try:
        if store.run_row(name)["status"] == "done":  # it finished while we waited for the lock
            raise RunError(f"run {name!r} already finished; start a new run to train more")
        ensure_method(meta["config"].get("method", ""), meta.get("method_class"))  # e.g. a notebook's method
        cfg = TrainConfig.from_dict(meta["config"]).resolved()
        rows = folder.read_rows()
        task = load_task(cfg.task, store)
        checkpoint = folder.last_complete_checkpoint()
        if progress is not None:
            progress(RunStarted(run=name, steps=cfg.steps))
        if folder.has_model:  # trained and saved, stopped while scoring: only the scoring is left
            session = RunSession(store, cfg, folder, task, rows, load_student(folder.model_dir), meta,
                                 trained=dict(store.run_row(name)["summary"] or {}))
            if is_main_process():
                _index_running(session, resume_from="model")
            return _execute(session, progress, should_stop, "model", lock=lock, trained=True)
        if checkpoint is None:  # killed before the first checkpoint: start over from the same frozen rows
            student = make_student(cfg.student, vocab_texts(store, task, rows, cfg.numbers),
                                   trust_remote_code=cfg.trust_remote_code, seed=cfg.seed)
        else:
            student = load_student(checkpoint, trust_remote_code=cfg.trust_remote_code)
        session = RunSession(store, cfg, folder, task, rows, student, meta)
        if is_main_process():
            _index_running(session, resume_from=checkpoint)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return _execute(session, progress, should_stop, checkpoint, lock=lock)


def _index(session: RunSession) -> dict:
    cfg = session.cfg
    return {"task": cfg.task, "method": cfg.method, "student": cfg.student, "run_dir": str(session.folder.root)}


def _index_running(session: RunSession, resume_from: str | None) -> None:
    session.store.upsert_run(session.name, status="running", summary={"resumed_from": resume_from},
                             **_index(session))


def _execute(session: RunSession, progress: ProgressFn | None, should_stop: StopFn | None,
             resume_from: str | None, lock: OwnerLock | None, trained: bool = False) -> dict:
    """Train and finish a run that is on disk and indexed as running (``trained``: only score its saved model);
    ``lock`` (the run's, held by the main process) is released once the outcome is recorded."""
    store, cfg, name = session.store, session.cfg, session.name
    main = is_main_process()
    index = _index(session)

    def report(event: Event) -> None:
        if event.kind == "train":  # at each logged step: a diverged run fails now, not at the end
            check_finite(session.student.model, cfg, getattr(event, "step", None))
        if progress is not None:
            progress(event)

    try:
        try:
            if trained:
                summary = _score(session, None, report, should_stop)
            else:
                result = fit(session, progress=report, should_stop=should_stop, resume_from=resume_from)
                summary = _finish(session, result, report, should_stop)
        except Exception as err:
            clean = _disk_full_error(err, session)
            reason = str(clean) if clean is not None else f"{type(err).__name__}: {err}"
            if main:
                # A full disk may refuse this write too: the lock, released below, then shows the run interrupted.
                with contextlib.suppress(StoreError):
                    store.upsert_run(name, status="failed", summary={"error": reason}, **index)
            if progress is not None:
                progress(Finished(status="failed", error=reason))
            if clean is not None:
                raise clean from err
            raise
        if main:
            store.upsert_run(name, status=summary["status"], summary=summary, **index)
    finally:
        if lock is not None:
            lock.release()
    report(Finished(status=summary["status"], steps=summary["steps"], accuracy=summary.get("accuracy")))
    return summary


def _disk_full_error(err: BaseException, session: RunSession) -> StoreError | None:
    """A full disk while training or saving (an OSError, or safetensors' SafetensorError) as a clean error that
    says how to go on; None for any other error. The half-written checkpoint is skipped when resuming."""
    if not is_disk_full(err, session.folder.root):
        return None
    done = session.folder.last_complete_checkpoint()
    where = f"; the last complete checkpoint is {os.path.basename(done)}" if done else ""
    return StoreError(f"the disk holding run {session.name!r} ({session.folder.root}) is full{where}; free space "
                      f"and resume with `workbench train --resume {session.name}`")


def _finish(session: RunSession, result, progress: ProgressFn, should_stop: StopFn | None) -> dict:
    """After training: save the final model, then score the test split (:func:`_score`)."""
    cfg, folder, meta = session.cfg, session.folder, session.meta
    session.timings.update(train=round(result.train_seconds - result.eval_seconds, 2),
                           evaluate=round(result.eval_seconds, 2))
    summary = {"run": session.name, "run_dir": str(folder.root), "task": cfg.task, "method": cfg.method,
               "student": cfg.student, "steps": result.steps, "train_seconds": round(result.train_seconds, 2),
               "s_per_step": result.s_per_step, "parameters": meta["student"]["parameters"],
               "training_rows": meta["trainingset"]["rows_used"], "device": meta["device"]["device"],
               "teacher": cfg.teacher, "label_source": cfg.label_source, "fraction": cfg.fraction,
               "seed": cfg.seed, "batch_size": cfg.batch_size, "eval_history": result.eval_history,
               "origin": meta.get("origin"), "timings": session.timings}
    if result.stopped:
        return {**summary, "status": "cancelled", "accuracy": None, "teacher_accuracy": None,
                "note": f"stopped at step {result.steps}; resume with `workbench train --resume {session.name}`"}
    check_finite(session.student.model, cfg, result.steps)  # never save or score a diverged model as "done"
    progress(Phase(name="saving"))
    saving = time.monotonic()
    if is_main_process():
        save_final_model(result.trainer, session.student, folder.model_dir)  # LoRA adapters merged
    session.timings["save"] = round(time.monotonic() - saving, 2)
    progress(Phase(name="saving", done=1, total=1))
    return _score(session, summary, progress, should_stop)


def _score(session: RunSession, summary: dict | None, progress: ProgressFn, should_stop: StopFn | None) -> dict:
    """Predict the test split (labels; rationales only when asked), write predictions and the summary. A cancel
    while scoring leaves the run cancelled with its model saved: resuming it only scores."""
    from workbench.distill.predict import predict_examples, predictor_for

    store, cfg, task, folder, meta = session.store, session.cfg, session.task, session.folder, session.meta
    if summary is None:  # resumed to score: the summary of the training, as it was recorded
        summary = {k: v for k, v in (session.trained or {}).items() if k not in ("status", "note", "resumed_from")}
        session.timings = dict(summary.get("timings") or {})
    predictor = predictor_for(session.student, cfg, meta["generation"], meta.get("task"))
    examples = store.examples(task.name, "test", cfg.test_limit)
    with_rationale = cfg.predict_rationales and predictor.method.gives_rationales
    scoring = time.monotonic()
    # Counted in answers: with rationales each example is two, which the count alone would not say.
    answers = f"a label and a rationale for each of {len(examples):,} examples" if with_rationale else None

    def report(done: int, total: int) -> None:
        spent = time.monotonic() - scoring
        progress(Phase(name="scoring", done=done, total=total, elapsed=round(spent, 2),
                       eta=round(spent / done * (total - done), 1) if done else None, note=answers))

    report(0, len(examples) * (2 if with_rationale else 1))
    try:
        rows, seconds = predict_examples(predictor, examples, task.answer_kind, rationale=with_rationale,
                                         progress=report, should_stop=should_stop)
    except Cancelled:
        return {**summary, "status": "cancelled", "accuracy": None, "teacher_accuracy": None, "trained": True,
                "note": f"trained and saved; scoring was cancelled: `workbench train --resume {session.name}` "
                        "scores it"}
    session.timings["score"] = round(seconds, 2)
    if is_main_process():
        folder.write_predictions(rows)
    scores = score_predictions(rows, task.answer_kind, list(task.labels) if task.labels else None)
    teacher_acc, teacher_split = None, None
    if cfg.teacher:  # on the same test examples the student was scored on, when the teacher answered them
        ensure_answers(store, task.name, cfg.teacher, split="test")
        teacher_acc = teacher_accuracy(store, task, cfg.teacher, split="test", limit=cfg.test_limit)
        teacher_split = "test" if teacher_acc is not None else None
    return {**summary, "status": "done", "accuracy": scores["accuracy"], "n_test": scores["n"],
            "generations": len(examples) * (2 if with_rationale else 1),
            "parse_errors": scores["parse_errors"], "teacher_accuracy": teacher_acc, "trained": True,
            "teacher_accuracy_split": teacher_split, "predict_seconds": round(seconds, 3),
            "timings": session.timings}


# -- helpers ----------------------------------------------------------------------------------------------------
def check_finite(model, cfg: TrainConfig, step) -> None:
    """Raise when training diverged. The Trainer's logs hide it (it filters NaN/inf losses out of the logged
    mean), so look at the weights: once one is NaN or infinite, nothing the run does later can recover."""
    import torch

    for pname, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise RunError(f"training diverged by step {step}: the loss became NaN or infinite and weights "
                           f"({pname}) are no longer finite. {_divergence_cause(cfg)}")


def _divergence_cause(cfg: TrainConfig) -> str:
    """Name the setting that was found, not always the learning rate: AdamW multiplies each weight by
    (1 - lr x weight decay) every step, so a large weight decay blows weights up as surely as a large lr."""
    lr, decay = cfg.learning_rate or 0.0, cfg.weight_decay
    if lr * decay >= 1:
        return (f"Learning rate x weight decay is {lr:g} x {decay:g} = {lr * decay:g}, 1 or more: AdamW shrinks "
                f"every weight past zero each step. Start a new run with a weight decay below {1 / lr:g} (0.01 to "
                "0.1 is usual)")
    if decay > 1:
        return (f"The weight decay is {decay:g}, above 1 (0.01 to 0.1 is usual; learning rate {lr:g}). Start a new "
                "run with a lower weight decay")
    return f"Start a new run with a lower learning rate (this one: {lr:g}; weight decay {decay:g})"


def subsample(rows: list[dict], fraction: float, seed: int) -> list[dict]:
    """A seeded subsample (in the original order), for data-efficiency experiments."""
    if fraction >= 1:
        return list(rows)
    k = max(1, round(fraction * len(rows)))
    keep = set(random.Random(seed).sample(range(len(rows)), k))
    return [r for i, r in enumerate(rows) if i in keep]


def claim_run(store: Store, cfg: TrainConfig) -> RunFolder:
    """Create the run folder under a unique name; an explicit name that exists is refused, never overwritten."""
    root = runs_root(store)
    root.mkdir(parents=True, exist_ok=True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.run is None and world > 1:
        raise ConfigError("with several processes (torchrun) pass --run-name NAME so that every process agrees on it")
    if cfg.run is not None and not is_main_process():
        return RunFolder(root / cfg.run)  # rank 0 claims the name; the others may already see its claim
    if cfg.run is not None:
        known = {r["name"] for r in store.list_runs()}
        if cfg.run in known or (root / cfg.run).exists():
            raise RunError(f"run {cfg.run!r} already exists; pick another --run name (old runs are never "
                           "overwritten)")
        (root / cfg.run).mkdir()
        return RunFolder(root / cfg.run)
    slug = os.path.basename(cfg.student.rstrip("/")).replace(".", "-")
    base = f"{cfg.task}-{cfg.method}-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        try:
            (root / name).mkdir()  # atomic: two runs started in the same second get different names
        except FileExistsError:
            continue
        return RunFolder(root / name)
    raise RunError(f"cannot find a free run name under {root}")


def list_runs(store: Store, task: str | None = None) -> list[dict]:
    return store.list_runs(task)


def read_metrics(store: Store, run: str) -> list[dict]:
    """The run's ``metrics.jsonl`` events as dicts (a line being written is skipped, not an error)."""
    return RunFolder.of(store, run).read_metrics() if run else []


def train_job(store: Store, spec: dict, ctx: JobContext) -> dict:  # heavy: it queues for the machine
    """The ``train`` job kind. spec: a TrainConfig dict, or ``{"resume": RUN_NAME}``."""
    if "resume" in spec:
        check_resumable(store, spec["resume"])
        ctx.state = TrainingState(run=spec["resume"])
        ctx.log(f"resuming run {spec['resume']}")
        return resume_run(store, spec["resume"], progress=ctx.progress, should_stop=ctx.should_stop)
    cfg = TrainConfig.from_dict(spec).resolved()
    ctx.state = TrainingState(steps=cfg.steps)
    ctx.log(f"training: task={cfg.task} method={cfg.method} student={cfg.student} steps={cfg.steps}")
    return train_student(store, cfg, progress=ctx.progress, should_stop=ctx.should_stop)
