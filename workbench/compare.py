"""Teacher vs student, per test example and in summary.

The student side is the run's ``predictions.jsonl`` (test split). The teacher side is the teacher's latest
*unedited* answer on the same test examples — the comparison is between the two models, so a person's edits
(which only shape training data) are not counted as the teacher's. If the teacher has not answered the test split:
the offline ``builtin`` teacher is asked now (instant, deterministic, free); any other teacher is never called
implicitly (it may cost money or time) and its columns stay empty, with a note saying which command fills them.

>>> out = compare(store, "wordproblems-dss-tiny-20250101-120000", limit=50)     # doctest: +SKIP
>>> out["student_accuracy"], out["teacher_accuracy"], out["student_right_teacher_wrong"]   # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import time

from .errors import RunError
from .evaluation import load_run, read_meta, read_predictions, run_path
from .metrics import METRICS
from .store import Store

AUTO_GENERATE_TEACHERS = ("builtin",)  # offline and free: safe to ask implicitly


def compare(store: Store, run: str, limit: int | None = None, *, generate_teacher: bool = True,
            measure_latency: bool = True) -> dict:
    """Rows joining gold, teacher and student per test example, plus summary figures."""
    meta = read_meta(store, run)
    task, teacher = meta["task"], meta.get("teacher")
    student_rows = read_predictions(run_path(store, run))
    if not student_rows:
        raise RunError(f"run {run!r} has no test predictions (status: {store.run_row(run)['status']}); "
                       f"finish it with `workbench train --resume {run}`")
    if limit is not None:
        student_rows = student_rows[:limit]
    teacher_by_id, note = _teacher_answers(store, task["name"], teacher, generate_teacher, len(student_rows))
    match = METRICS[task["answer_kind"]]
    rows = [_join(s, teacher_by_id.get(s["example_id"]), match) for s in student_rows]
    out = {"run": run, "task": task["name"], "teacher": teacher, "n": len(rows), "rows": rows,
           **_summary(rows), "student_parameters": meta["student"]["parameters"], "note": note}
    if measure_latency and rows:
        out.update(_latency(store, run, [r["input"] for r in rows]))
    return out


def _teacher_answers(store: Store, task: str, teacher: str | None, generate: bool, n: int) -> tuple[dict, str | None]:
    if teacher is None:
        return {}, "this run learned from gold labels only: no teacher to compare with"
    rows = store.latest_generations(task, teacher, split="test")
    if not rows and generate and teacher.partition("?")[0].partition(":")[0] in AUTO_GENERATE_TEACHERS:
        from .generation import generate_rationales
        from .tasks import load_task
        from .teachers import get_teacher

        t = get_teacher(teacher, store=store)
        try:
            generate_rationales(store, load_task(task, store), t, split="test")
        finally:
            t.close()
        rows = store.latest_generations(task, teacher, split="test")
    note = None if rows else (f"teacher {teacher!r} has not answered the test split; run `workbench generate "
                              f"--task {task} --teacher {teacher} --split test` to fill its columns")
    return {r["example_id"]: r for r in rows}, note


def _join(s: dict, t: dict | None, match) -> dict:
    row = {"example_id": s["example_id"], "input": s["input"], "gold": s["gold"],
           "student_label": s["label"], "student_rationale": s.get("rationale"),
           "student_parse_error": s.get("parse_error"), "student_correct": bool(s["correct"]),
           "teacher_label": None, "teacher_rationale": None, "teacher_parse_error": None, "teacher_correct": None}
    if t is not None:
        row.update(teacher_label=t["teacher_label"], teacher_rationale=t["teacher_rationale"],
                   teacher_parse_error=t["parse_error"],
                   teacher_correct=bool(t["parse_error"] is None and match(t["teacher_label"], s["gold"])))
    row["agree"] = None if t is None else bool(match(row["student_label"], row["teacher_label"]))
    return row


def _summary(rows: list[dict]) -> dict:
    both = [r for r in rows if r["teacher_correct"] is not None and r["gold"] is not None]
    gold = [r for r in rows if r["gold"] is not None]

    def frac(k: int, n: int) -> float | None:
        return k / n if n else None

    return {
        "student_accuracy": frac(sum(r["student_correct"] for r in gold), len(gold)),
        "teacher_accuracy": frac(sum(r["teacher_correct"] for r in both), len(both)),
        "student_accuracy_on_shared": frac(sum(r["student_correct"] for r in both), len(both)),
        "n_shared": len(both),
        "agreement": frac(sum(bool(r["agree"]) for r in both), len(both)),
        "student_right_teacher_wrong": sum(r["student_correct"] and not r["teacher_correct"] for r in both),
        "teacher_right_student_wrong": sum(r["teacher_correct"] and not r["student_correct"] for r in both),
        "both_right": sum(r["student_correct"] and r["teacher_correct"] for r in both),
        "both_wrong": sum(not r["student_correct"] and not r["teacher_correct"] for r in both),
        "student_parse_errors": sum(1 for r in rows if r["student_parse_error"]),
        "teacher_parse_errors": sum(1 for r in rows if r["teacher_parse_error"]),
    }


def _latency(store: Store, run: str, texts: list[str], single: int = 8) -> dict:
    """Label-only inference time: batched (per example) and one example at a time (median)."""
    loaded = load_run(store, run)
    started = time.perf_counter()
    loaded.predict(texts)
    batched = (time.perf_counter() - started) / len(texts)
    times = []
    for text in texts[:single]:
        t0 = time.perf_counter()
        loaded.predict([text])
        times.append(time.perf_counter() - t0)
    return {"latency_ms_per_example_batched": round(batched * 1000, 3),
            "latency_ms_single": round(statistics.median(times) * 1000, 3)}
