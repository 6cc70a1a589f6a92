"""The built-in teacher: LLM-shaped raw text, a seeded error rate, calibrated class distributions."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import cache

import pytest

from workbench.builtin.teacher import UNKNOWN_TASK, BuiltinTeacher
from workbench.core.errors import TeacherError
from workbench.core.store import Example
from workbench.data.metrics import evaluate_equation
from workbench.data.prompts import PLACEHOLDER
from workbench.data.tasks import TASKS, load_task
from workbench.rationales.generation import generate_rationales
from workbench.rationales.teachers.base import TeacherRequest, get_teacher


@cache
def examples(name: str, n: int = 1000, seed: int = 0) -> tuple[Example, ...]:
    sizes = {"n_train": n, "n_valid": 0, "n_test": 0, "seed": seed}
    if name == "wordproblems":
        sizes["levels"] = (1, 2, 3)
    return tuple(TASKS[name](**sizes).build_examples())


def ask(teacher, exs):
    return teacher.answer([TeacherRequest(e, "prompt") for e in exs])


def graded(name: str, teacher: BuiltinTeacher):
    """(example, reply, parsed, right) for 1000 examples, parsed with the task's own template parser."""
    task = TASKS[name]()
    parser = task.template().parser
    exs = examples(name)
    out = []
    for e, reply in zip(exs, ask(teacher, exs)):
        parsed = parser.parse(reply.raw, task.labels)
        out.append((e, reply, parsed, parsed.ok and task.is_correct(parsed.label, e.label)))
    return out


def test_spec_options_and_settings():
    teacher = get_teacher("builtin?error_rate=0.1&seed=3")
    assert isinstance(teacher, BuiltinTeacher) and teacher.id == "builtin" and teacher.batch_size >= 256
    assert teacher.settings == {"error_rate": 0.1, "seed": 3}
    assert get_teacher("builtin").settings == get_teacher("builtin?error_rate=0.2&seed=0").settings
    for bad in ("builtin?error_rate=2", "builtin?error_rate=lots", "builtin?temperature=1", "builtin:gpt"):
        with pytest.raises(TeacherError):
            get_teacher(bad)


@pytest.mark.parametrize("name", ["wordproblems", "quantnli"])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.35])
def test_measured_error_rate_matches_the_setting(name, rate):
    rows = graded(name, BuiltinTeacher(error_rate=str(rate)))
    error = 1 - sum(right for *_, right in rows) / len(rows)
    assert abs(error - rate) <= 0.05


@pytest.mark.parametrize("name", ["wordproblems", "quantnli"])
def test_answers_are_right_exactly_when_no_error_was_injected(name):
    teacher = BuiltinTeacher()
    rows = graded(name, teacher)
    kinds = Counter(teacher.injected_error(e) for e, *_ in rows)
    assert len(kinds) >= 3  # several kinds of mistakes, each common enough to see
    for e, reply, parsed, right in rows:
        error = teacher.injected_error(e)
        assert right == (error is None), (e.input, reply.raw)
        assert parsed.ok == (error != "parse_failure"), reply.raw


def test_word_problem_rationales_explain_the_quantities_and_follow_the_mistake():
    teacher = BuiltinTeacher()
    for e, reply, parsed, _ in graded("wordproblems", teacher):
        f, error = e.fields, teacher.injected_error(e)
        steps = re.findall(r"(-?\d+(?:\.\d+)?) ([-+*/]) (\d+) = (-?\d+(?:\.\d+)?)", reply.raw)
        assert len(steps) == len(f["operations"])
        for left, op, right, result in steps:  # the arithmetic it shows is right, even on a wrong path
            assert math.isclose(evaluate_equation(f"{left} {op} {right}"), float(result), abs_tol=0.01)
        if error == "parse_failure":
            continue
        assert math.isclose(evaluate_equation(parsed.label), float(steps[-1][3]), abs_tol=0.01)
        used = re.findall(r"\d+", parsed.label)
        distractor_values = {str(d["value"]) for d in f["distractors"]}
        assert bool(distractor_values & set(used)) == (error == "wrong_quantity")
        if error is None:
            assert all(d["mention"] in reply.raw for d in f["distractors"])
            assert "We do not need" in reply.raw and f["object"] in reply.raw.split("We do not need")[1]
        if error == "wrong_operation":
            assert [int(n) for n in used] == f["used"]


def test_parse_failures_are_recorded_as_parse_errors(store):
    task = load_task("wordproblems", store, n_train=300, n_valid=0, n_test=0)
    teacher = get_teacher("builtin?error_rate=0.5")
    summary = generate_rationales(store, task, teacher, limit=300)
    rows = store.latest_generations(task.name, teacher.id)
    failing = [r for r in rows if r["parse_error"]]
    assert summary["parse_errors"] == len(failing) > 10
    injected = {e.id for e in task.examples("train") if teacher.injected_error(e) == "parse_failure"}
    assert {r["example_id"] for r in failing} == injected
    assert all(r["teacher_label"] is None or r["teacher_label"].strip() for r in failing)
    assert all(r["teacher_label"] for r in rows if not r["parse_error"])


def test_quantnli_distributions_are_calibrated():
    rows = graded("quantnli", BuiltinTeacher())
    bins: dict[float, list] = {}
    for _, reply, parsed, right in rows:
        dist = reply.label_dist
        assert set(dist) == {"entailment", "neutral", "contradiction"} and math.isclose(sum(dist.values()), 1.0)
        confidence = max(dist.values())
        if parsed.ok:
            assert dist[parsed.label] == confidence  # the label it writes is the one it believes most
        bins.setdefault(round(confidence, 1), []).append((confidence, right))
    confidences = [c for rows_ in bins.values() for c, _ in rows_]
    assert max(confidences) - min(confidences) > 0.2  # confidence really varies from pair to pair
    gap = 0.0
    for b in bins.values():
        conf = sum(c for c, _ in b) / len(b)
        acc = sum(r for _, r in b) / len(b)
        if len(b) >= 100:
            assert abs(conf - acc) <= 0.08
        gap += len(b) * abs(conf - acc)
    assert gap / len(rows) <= 0.04  # expected calibration error


def test_quantnli_errors_concentrate_on_hard_pairs():
    teacher = BuiltinTeacher()
    rows = graded("quantnli", teacher)
    hard = [right for e, *_, right in rows if e.fields["difficulty"] >= 0.6]
    easy = [right for e, *_, right in rows if e.fields["difficulty"] <= 0.4]
    assert sum(easy) / len(easy) > sum(hard) / len(hard) + 0.05


def test_same_seed_same_answers_another_seed_other_mistakes():
    exs = examples("wordproblems")[:300]
    first, again = ask(BuiltinTeacher(seed="1"), exs), ask(BuiltinTeacher(seed="1"), exs)
    assert [r.raw for r in first] == [r.raw for r in again]
    wrong = {s: {e.id for e in exs if BuiltinTeacher(seed=s).injected_error(e)} for s in ("1", "2")}
    assert wrong["1"] != wrong["2"]


def test_unknown_tasks_get_a_request_error_not_a_crash():
    strangers = [Example("x1", "train", "What is love?", "baby", {}),
                 Example("x2", "train", "2 + 2", "4", {"task": "wordproblems"}),
                 Example("x3", "train", "?", None, {"task": "svamp", "used": [1]})]
    replies = ask(BuiltinTeacher(), strangers)
    assert all(r.raw is None and r.error == UNKNOWN_TASK for r in replies)


@pytest.mark.parametrize("name", ["wordproblems", "quantnli"])
def test_templates_show_the_teachers_own_shape(name):
    template = TASKS[name]().template()  # the task's own prompt
    assert template.name == name and template.text.rstrip().endswith(f"Q: {PLACEHOLDER}\nA:")
    shots = re.findall(r"^A: (.*)$", template.text, flags=re.MULTILINE)[:-1]
    assert 3 <= len(shots) <= 4
    for shot in shots:
        assert template.parser.parse(shot, TASKS[name]().labels).ok, shot


@pytest.mark.parametrize("name", ["wordproblems", "quantnli"])
def test_end_to_end_generation_into_the_store(store, name):
    task = load_task(name, store, n_train=120, n_valid=0, n_test=30)
    teacher = get_teacher("builtin")
    summary = generate_rationales(store, task, teacher, split="test", limit=30)
    assert summary["generated"] == 30 and summary["errors"] == 0
    right = sum(teacher.injected_error(e) is None for e in task.examples("test"))
    assert summary["teacher_accuracy"] == pytest.approx(right / 30)
    rows = store.latest_generations(name, teacher.id, split="test")
    assert len(rows) == 30 and all(r["teacher_rationale"] for r in rows)
    assert all((r["label_dist"] is not None) == (name == "quantnli") for r in rows)
    assert generate_rationales(store, task, teacher, split="test", limit=30)["skipped"] == 30
