"""Teacher vs student, per test example and in summary.

The student side is the run's ``predictions.jsonl`` (test split). The teacher side is the teacher's latest
*unedited* answer on the same test examples — the comparison is between the two models, so a person's edits
(which only shape training data) are not counted as the teacher's. If the teacher has not answered the test split:
a free teacher (``cost = "free"``: the offline ``builtin``) is asked now (instant, deterministic); any other
teacher is never called implicitly (it may cost money or time) and its columns stay empty, with a note saying
which command fills them. :data:`FILTERS` are the example-by-example views the app and notebooks offer.

>>> out = compare(store, "quantnli-dss", limit=50)       # a tiny dss student after two steps, the builtin teacher
>>> out["n"], out["teacher_accuracy"], 0 <= out["student_accuracy"] <= 1
(8, 0.625, True)
"""

from __future__ import annotations

import statistics
import time

from workbench.core.errors import RunError
from workbench.core.store import Store
from workbench.data.metrics import METRICS, accuracy, check_steps
from workbench.data.prompts import ANSWER
from workbench.distill.predict import load_run
from workbench.distill.runfolder import RunFolder
from workbench.rationales.generation import ensure_answers
from workbench.rationales.suggest import suggest_teacher
from workbench.results.verdict import versus_teacher

# Example-by-example views: name → which rows of a comparison it keeps.
FILTERS = {
    "all": lambda r: True,
    "student right, teacher wrong": lambda r: r["student_correct"] and r["teacher_correct"] is False,
    "teacher right, student wrong": lambda r: bool(r["teacher_correct"]) and not r["student_correct"],
    "they disagree": lambda r: r["agree"] is False,
    "both wrong": lambda r: (not r["student_correct"]) and r["teacher_correct"] is False,
    "student steps wrong": lambda r: r.get("student_steps_ok") is False,
    "teacher steps wrong": lambda r: r.get("teacher_steps_ok") is False,
}


def filter_rows(rows: list[dict], which: str = "all") -> list[dict]:
    """The rows of a comparison that one of :data:`FILTERS` keeps."""
    if which not in FILTERS:
        raise RunError(f"unknown view {which!r}; views: {', '.join(FILTERS)}")
    return [r for r in rows if FILTERS[which](r)]


def compare(store: Store, run: str, limit: int | None = None, *, generate_teacher: bool = True,
            measure_latency: bool = True, teacher: str | None = None) -> dict:
    """Rows joining gold, teacher and student per test example, plus summary figures.

    The teacher is the run's own; a run that learned from gold labels alone (``standard``) is compared with
    ``teacher`` if given, else with the task's teacher (:func:`task_teacher`), so every run of a task is held
    against the same teacher on the same test examples."""
    folder = RunFolder.of(store, run)
    meta = folder.read_meta()
    task = meta["task"]
    teacher = meta.get("teacher") or teacher or task_teacher(store, task["name"])
    student_rows = folder.read_predictions()
    if not student_rows:
        raise RunError(f"run {run!r} has no test predictions (status: {store.run_row(run)['status']}); "
                       f"finish it with `workbench train --resume {run}`")
    if limit is not None:
        student_rows = student_rows[:limit]
    teacher_by_id, note = _teacher_answers(store, task["name"], teacher, generate_teacher, len(student_rows))
    match = METRICS[task["answer_kind"]]
    rows = [_join(s, teacher_by_id.get(s["example_id"]), match) for s in student_rows]
    if task["answer_kind"] == "equation":  # the label's ✓ says nothing of the steps: check each one
        for r in rows:
            for who in ("student", "teacher"):
                check = check_steps(r[f"{who}_rationale"])
                r[f"{who}_steps"], r[f"{who}_steps_ok"] = check.summary(), check.ok
    out = {"run": run, "task": task["name"], "teacher": teacher, "teacher_split": "test",
           "teacher_is_the_runs": bool(meta.get("teacher")), "n": len(rows), "rows": rows,
           **_summary(rows, task["answer_kind"]), "student_parameters": meta["student"]["parameters"], "note": note}
    verdict = versus_teacher(rows)  # how sure "the student beats its teacher" is, in one computed sentence
    out["verdict"] = verdict.to_dict() if verdict else None
    if measure_latency and rows:
        out.update(_latency(store, run, [r["input"] for r in rows]))
    return out


def task_teacher(store: Store, task_name: str) -> str | None:
    """The teacher a task's runs are compared with when a run has none of its own: the one that answered most of
    its test split, else a free teacher that can answer the task (the offline one, for the built-in tasks)."""
    return suggest_teacher(store, task_name, split="test")


def _teacher_answers(store: Store, task: str, teacher: str | None, generate: bool, n: int) -> tuple[dict, str | None]:
    if teacher is None:
        return {}, "no teacher has answered this task's test split, and none can answer it for free"
    note = ensure_answers(store, task, teacher, split="test", ask_free=generate)
    # Answers written with the gold answer in view (rationalization) copy the key: never the teacher's figure.
    rows = store.latest_generations(task, teacher, split="test", unless_template_has=ANSWER)
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


def _summary(rows: list[dict], answer_kind: str) -> dict:
    both = [r for r in rows if r["teacher_correct"] is not None and r["gold"] is not None]

    def acc(rs: list[dict], who: str) -> float | None:
        return accuracy([r[f"{who}_label"] for r in rs], [r["gold"] for r in rs], answer_kind,
                        [r[f"{who}_parse_error"] for r in rs])

    return {
        "student_accuracy": acc(rows, "student"),
        "teacher_accuracy": acc(both, "teacher"),
        "student_accuracy_on_shared": acc(both, "student"),
        "n_shared": len(both),
        "agreement": (sum(bool(r["agree"]) for r in both) / len(both)) if both else None,
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
