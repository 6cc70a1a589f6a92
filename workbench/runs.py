"""Training runs: the library entry point the CLI, the UI and notebooks call, and the ``train`` job kind.

A run folder ``<workspace>/runs/<name>/`` describes itself: ``config.json`` (the resolved config plus the
training-set fingerprint, teacher id, template hashes, student and versions), ``trainingset.jsonl`` (the frozen
rows), ``metrics.jsonl``, ``checkpoints/`` (with optimizer and scheduler state), ``model/`` (safetensors and
tokenizer: a standard ``save_pretrained`` folder) and ``predictions.jsonl`` on the test split.

>>> cfg = TrainConfig(task="wordproblems", method="dss", student="tiny", teacher="builtin", steps=600)
>>> summary = train_student(store, cfg, progress=print)                    # doctest: +SKIP
>>> summary["accuracy"], summary["run_dir"]                                 # doctest: +SKIP

In the background: ``start_job(store, "train", cfg.to_dict())``; resume: ``start_job(store, "train", {"resume": name})``.
Several processes: ``torchrun --nproc_per_node 2 -m workbench train --run-name NAME ...`` (only rank 0 writes files).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from .config import TrainConfig
from .errors import ConfigError, RunError
from .evaluation import LoadedRun, load_run, predict_examples, read_meta, run_path  # noqa: F401  (re-exported)
from .jobs import JobContext, register_job_kind
from .methods import method_for_config
from .numbers import resolve_numbers, slots_for
from .store import Store
from .students import PRESETS, count_parameters, load_student, make_student
from .trainer import device_info, fit, is_main_process

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]


def train_student(store: Store, config: TrainConfig | dict, progress: ProgressFn | None = None,
                  should_stop: StopFn | None = None) -> dict:
    """Build the training set, train, score on the test split, write the run folder; returns the summary."""
    from .trainingset import build_training_set

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    task = _load_task(store, cfg.task)
    ts = build_training_set(store, task, cfg.teacher, label_source=cfg.label_source,
                            drop_parse_errors=cfg.drop_parse_errors, drop_teacher_wrong=cfg.drop_teacher_wrong,
                            only_accepted=cfg.only_accepted)
    rows = subsample(ts.rows, cfg.fraction, cfg.seed)
    # "auto" is decided once, here, and the run's config records the outcome (slots or text).
    cfg = cfg.with_(numbers=resolve_numbers(cfg.numbers, task.answer_kind, cfg.student in PRESETS))
    method = method_for_config(cfg)
    if method.needs_label_dist and not task.labels:
        raise ConfigError(f"method 'kd' needs a classification task; {task.name!r} has answer kind "
                          f"{task.answer_kind!r}. Use 'standard' or 'dss'")
    method.check_rows(rows)
    name = claim_run_name(store, cfg)
    folder = run_path(store, name)
    student = make_student(cfg.student, _vocab_texts(store, task, rows, cfg.numbers), trust_remote_code=cfg.trust_remote_code,
                           seed=cfg.seed)
    meta = _describe(store, cfg, name, task, ts, rows, student)
    if is_main_process():
        _write_json(folder / "config.json", meta)
        (folder / "trainingset.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return _execute(store, cfg, name, task, rows, student, meta, progress, should_stop, resume_from=None)


def resume_run(store: Store, name: str, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None) -> dict:
    """Continue a stopped, killed or failed run from its last checkpoint (same step, optimizer and scheduler)."""
    meta = read_meta(store, name)
    status = store.run_row(name)["status"]
    if status == "done":
        raise RunError(f"run {name!r} already finished; start a new run to train more")
    cfg = TrainConfig.from_dict(meta["config"])
    folder = run_path(store, name)
    rows = [json.loads(line) for line in (folder / "trainingset.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    task = _load_task(store, cfg.task)
    ckpt_root = folder / "checkpoints"
    checkpoint = last_complete_checkpoint(ckpt_root)
    if checkpoint is None:  # killed before the first checkpoint: start over from the same frozen rows
        student = make_student(cfg.student, _vocab_texts(store, task, rows, cfg.numbers),
                               trust_remote_code=cfg.trust_remote_code, seed=cfg.seed)
    else:
        student = load_student(checkpoint, trust_remote_code=cfg.trust_remote_code)
    return _execute(store, cfg, name, task, rows, student, meta, progress, should_stop, resume_from=checkpoint)


def _execute(store, cfg, name, task, rows, student, meta, progress, should_stop, resume_from) -> dict:
    folder = run_path(store, name)
    main = is_main_process()
    index = {"task": cfg.task, "method": cfg.method, "student": cfg.student, "run_dir": str(folder)}
    if main:
        store.upsert_run(name, status="running", summary={"resumed_from": resume_from}, **index)

    def report(event: dict) -> None:
        if event.get("event") == "train":  # at each logged step: a diverged run fails now, not at the end
            check_finite(student.model, cfg, event.get("step"))
        if progress is not None:
            progress({"run": name, **event})

    try:
        result = fit(cfg, folder, task, rows, student, meta["generation"], progress=report,
                     should_stop=should_stop, resume_from=resume_from)
        summary = _finish(store, cfg, name, task, student, meta, result)
    except Exception as err:
        if main:
            store.upsert_run(name, status="failed", summary={"error": f"{type(err).__name__}: {err}"}, **index)
        raise
    if main:
        store.upsert_run(name, status=summary["status"], summary=summary, **index)
    report({"event": "finished", **{k: summary.get(k) for k in ("status", "steps", "accuracy")}})
    return summary


def _finish(store, cfg, name, task, student, meta, result) -> dict:
    """After training: save the final model, predict the test split, write predictions and the summary."""
    from .evaluation import score
    from .generation import teacher_accuracy

    folder = run_path(store, name)
    summary = {"run": name, "run_dir": str(folder), "task": cfg.task, "method": cfg.method, "student": cfg.student,
               "steps": result.steps, "train_seconds": round(result.train_seconds, 2),
               "s_per_step": result.s_per_step, "parameters": meta["student"]["parameters"],
               "training_rows": meta["trainingset"]["rows_used"], "device": meta["device"]["device"],
               "teacher": cfg.teacher, "fraction": cfg.fraction, "seed": cfg.seed}
    if result.stopped:
        return {**summary, "status": "cancelled", "accuracy": None, "teacher_accuracy": None,
                "note": f"stopped at step {result.steps}; resume with `workbench train --resume {name}`"}
    check_finite(student.model, cfg, result.steps)  # never save or score a diverged model as "done"
    if is_main_process():
        result.trainer.save_model(str(folder / "model"))
    examples = store.examples(task.name, "test", cfg.test_limit)
    with_rationale = cfg.predict_rationales and result.predictor.method.rationale_source("") is not None
    rows, seconds = predict_examples(result.predictor, examples, task.answer_kind, rationale=with_rationale)
    if is_main_process():
        (folder / "predictions.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    scores = score(rows, task.answer_kind, list(task.labels) if task.labels else None)
    teacher_acc, teacher_split = None, None
    if cfg.teacher:
        for split in ("test", "train"):  # the same test examples when the teacher answered them
            teacher_acc = teacher_accuracy(store, task, cfg.teacher, split=split)
            if teacher_acc is not None:
                teacher_split = split
                break
    return {**summary, "status": "done", "accuracy": scores["accuracy"], "n_test": scores["n"],
            "parse_errors": scores["parse_errors"], "teacher_accuracy": teacher_acc,
            "teacher_accuracy_split": teacher_split, "predict_seconds": round(seconds, 3),
            "eval_history": result.eval_history}


# -- helpers ----------------------------------------------------------------------------------------------------
def last_complete_checkpoint(root: Path) -> str | None:
    """The newest ``checkpoint-N`` folder that finished writing (its ``trainer_state.json`` exists).

    A process killed while saving leaves a newer folder without it; ``transformers``' ``get_last_checkpoint``
    would pick that one and resuming would fail, so it is skipped (and left on disk, untouched)."""
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.name.startswith("checkpoint-") and p.name[11:].isdigit()
            and (p / "trainer_state.json").is_file()]
    return str(max(done, key=lambda p: int(p.name[11:]))) if done else None


def check_finite(model, cfg: TrainConfig, step) -> None:
    """Raise when training diverged. The Trainer's logs hide it (it filters NaN/inf losses out of the logged
    mean), so look at the weights: once one is NaN or infinite, nothing the run does later can recover."""
    import torch

    for pname, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise RunError(f"training diverged by step {step}: the loss became NaN or infinite and weights "
                           f"({pname}) are no longer finite. Start a new run with a lower learning rate "
                           f"(this one: {cfg.learning_rate:g})")


def subsample(rows: list[dict], fraction: float, seed: int) -> list[dict]:
    """A seeded subsample (in the original order), for data-efficiency experiments."""
    if fraction >= 1:
        return list(rows)
    k = max(1, round(fraction * len(rows)))
    keep = set(random.Random(seed).sample(range(len(rows)), k))
    return [r for i, r in enumerate(rows) if i in keep]


def claim_run_name(store: Store, cfg: TrainConfig) -> str:
    """Create the run folder under a unique name; an explicit name that exists is refused, never overwritten."""
    root = store.workspace / "runs"
    root.mkdir(parents=True, exist_ok=True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.run is None and world > 1:
        raise ConfigError("with several processes (torchrun) pass --run-name NAME so that every process agrees on it")
    if cfg.run is not None and not is_main_process():
        return cfg.run  # rank 0 claims the name; the others may already see its claim, which is not a clash
    if cfg.run is not None:
        known = {r["name"] for r in store.list_runs()}
        if cfg.run in known or (root / cfg.run).exists():
            raise RunError(f"run {cfg.run!r} already exists; pick another --run name (old runs are never "
                           "overwritten)")
        (root / cfg.run).mkdir()
        return cfg.run
    slug = Path(cfg.student.rstrip("/")).name.replace(".", "-")
    base = f"{cfg.task}-{cfg.method}-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        try:
            (root / name).mkdir()  # atomic: two runs started in the same second get different names
        except FileExistsError:
            continue
        return name
    raise RunError(f"cannot find a free run name under {root}")


def _load_task(store: Store, name: str):
    from .tasks import load_task

    return load_task(name, store)


def _vocab_texts(store: Store, task, rows: list[dict], numbers: str) -> list[str]:
    # Inputs of every split (no gold labels) so new inputs are not unknown words; targets from training rows only;
    # all as the student will see them (number slots included).
    texts = [slots_for(numbers, e.input).encode(e.input) for e in store.examples(task.name)]
    for r in rows:
        slots = slots_for(numbers, r["input"])
        texts += [slots.encode(r["label"]) or "", slots.encode(r.get("rationale")) or ""]
    return texts + list(task.labels or ())


def _describe(store, cfg, name, task, ts, rows, student) -> dict:
    """Everything needed to re-run: config, data fingerprint, teacher and templates, student, versions."""
    import tokenizers
    import torch
    import transformers

    gen_ids = [r["generation_id"] for r in rows if r.get("generation_id") is not None]
    # json_each: one bound parameter however many rows (SQLite caps the number of '?' placeholders).
    hashes = sorted({r[0] for r in store.conn.execute(
        "SELECT DISTINCT template_hash FROM generations WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(gen_ids),))})
    method = method_for_config(cfg)
    from .methods import encoder_for

    enc = encoder_for(student, cfg)
    slotted = [(enc.slots(r["input"]), r) for r in rows]
    label_tokens = max(len(enc.target_ids(s.encode(r["label"]))) for s, r in slotted) + 2
    rationale_tokens = cfg.max_target_len
    if method.needs_rationale:
        rationale_tokens = min(cfg.max_target_len,
                               max(len(enc.target_ids(s.encode(r["rationale"]))) for s, r in slotted) + 8)
    return {
        "name": name, "created": time.time(), "config": cfg.to_dict(),
        "task": {"name": task.name, "answer_kind": task.answer_kind, "metric": task.metric_name,
                 "labels": list(task.labels) if task.labels else None},
        "trainingset": {**ts.summary(), "rows_used": len(rows), "fraction": cfg.fraction,
                        "fingerprint_used": _fingerprint(rows)},
        "teacher": cfg.teacher, "template_hashes": hashes,
        "student": {"spec": cfg.student, "family": student.family, "parameters": count_parameters(student.model),
                    "model_type": student.model.config.model_type, "vocab_size": len(student.tokenizer)},
        "method": cfg.method, "seed": cfg.seed, "device": device_info(cfg.bf16),
        "generation": {"label_tokens": label_tokens, "rationale_tokens": rationale_tokens},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
    }


def _fingerprint(rows: list[dict]) -> str:
    import hashlib

    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["example_id"], r["input"], r["label"], r.get("rationale"), r.get("label_dist")],
                            ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)


def list_runs(store: Store, task: str | None = None) -> list[dict]:
    return store.list_runs(task)


def estimate_seconds(store: Store, cfg: TrainConfig) -> float | None:
    """Seconds for ``cfg.steps`` from the median seconds per step of finished runs with the same student, method
    and batch size in this workspace (None before the first such run).
    """
    rates = [r["summary"].get("s_per_step") for r in list_runs(store)
             if r["method"] == cfg.method and r["student"] == cfg.student
             and isinstance(r["summary"].get("s_per_step"), (int, float))
             and (read_config(store, r["name"]) or {}).get("batch_size") == cfg.batch_size]
    return statistics.median(rates) * cfg.steps if rates else None


def read_config(store: Store, run: str) -> dict | None:
    try:
        return read_meta(store, run)["config"]
    except (RunError, OSError, ValueError, KeyError):  # a run folder being written or removed: skip it
        return None


def read_metrics(store: Store, run: str) -> list[dict]:
    """The run's ``metrics.jsonl`` events (a line being written is skipped, not an error)."""
    path = run_path(store, run) / "metrics.jsonl"
    if not run or not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the trainer is appending this very line
    return events


@register_job_kind("train")
def train_job(store: Store, spec: dict, ctx: JobContext) -> dict:
    """spec: a TrainConfig dict, or ``{"resume": RUN_NAME}``."""
    if "resume" in spec:
        ctx.log(f"resuming run {spec['resume']}")
        return resume_run(store, spec["resume"], progress=ctx.progress, should_stop=ctx.should_stop)
    cfg = TrainConfig.from_dict(spec)
    ctx.log(f"training: task={cfg.task} method={cfg.method} student={cfg.student} steps={cfg.steps}")
    return train_student(store, cfg, progress=ctx.progress, should_stop=ctx.should_stop)
