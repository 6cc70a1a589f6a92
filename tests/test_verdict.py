"""How sure a comparison is: the paired bootstrap and its plain sentence on results whose answer is known, and
teacher figures that never score answers written with the gold answer in view."""

from __future__ import annotations

import re

import numpy as np
import pytest

from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.rationales.generation import generate_rationales, teacher_accuracy
from workbench.rationales.teachers import get_teacher
from workbench.rationales.teachers.base import Teacher, TeacherReply, register_teacher
from workbench.results.verdict import compare_correct, one_seed_caveat, paired_bootstrap


def _table(rng, p: float, seeds: int = 3, n: int = 200) -> np.ndarray:
    return (rng.random((seeds, n)) < p).astype(float)


def test_a_clear_win_a_clear_loss_and_a_tie():
    rng = np.random.default_rng(7)
    strong, weak = _table(rng, 0.85), _table(rng, 0.45)
    win = compare_correct(strong, weak, "dss", "standard", "at 128 rows")
    assert win.shown == "a" and 0.3 < win.difference < 0.5 and win.low > 0.2
    assert win.sentence.startswith("dss beats standard at 128 rows by 0.") and "3 seeds × 200 test examples" in \
        win.sentence
    loss = compare_correct(weak, strong, "dss", "standard", "at 32 rows")
    assert loss.shown == "b" and loss.sentence.startswith("standard beats dss at 32 rows by 0.")
    same = _table(rng, 0.6)
    tie = compare_correct(same, np.roll(same, 1, axis=1), "dss", "standard", "at 64 rows")
    assert tie.shown == "none" and tie.low < 0 < tie.high
    assert tie.sentence.startswith("no difference shown at 64 rows (") and "more seeds or test examples" in \
        tie.sentence


def test_the_interval_covers_the_truth_about_95_percent_of_the_time():
    """Calibration on simulated experiments whose true difference is known (0.1): the interval is conservative
    (it resamples seeds and examples), so it covers the truth at least ~95 % of the time, and is not vacuous."""
    rng = np.random.default_rng(0)
    covered, widths = 0, []
    for _ in range(60):
        a, b = _table(rng, 0.6, seeds=3, n=100), _table(rng, 0.5, seeds=3, n=100)
        _, low, high = paired_bootstrap(a, b, resamples=2000)
        covered += low <= 0.1 <= high
        widths.append(high - low)
    assert covered >= 54 and float(np.mean(widths)) < 0.3


def test_pairing_removes_what_both_methods_share():
    """Two methods that differ on 10 of 100 examples and agree on the rest: a paired interval is narrow; the same
    accuracies unpaired would not be."""
    base = (np.arange(100) % 2).astype(float)[None, :]
    better = base.copy()
    better[0, :20:2] = 1.0  # right on 10 more examples, the same on the other 90
    v = compare_correct(better, base, "dss", "standard", "here")
    assert v.difference == pytest.approx(0.1) and v.low > 0.03 and v.shown == "a"


def test_what_one_seed_can_show_is_said():
    rng = np.random.default_rng(3)
    one = compare_correct(_table(rng, 0.9, seeds=1), _table(rng, 0.3, seeds=1), "dss", "standard", "at 16 rows")
    assert "1 seed × 200" in one.sentence and "one seed" in one.sentence
    assert "3 seeds" in one_seed_caveat(1) and one_seed_caveat(3) is None


@register_teacher
class CopycatTeacher(Teacher):
    """Like a weak LLM under rationalization: it copies the answer when the prompt shows it, else it is wrong."""

    kind = "copycat"

    def answer(self, requests):
        out = []
        for r in requests:
            shown = re.search(r"The correct answer is (.+?)\. Explain", r.prompt)
            label = shown.group(1) if shown else "1000 + 1"
            out.append(TeacherReply(raw=f"I think so. The answer is {label}."))
        return out


def test_answers_written_with_the_answer_in_view_are_never_the_teachers_accuracy(tmp_path):
    """A careless user rationalizes the test split (the teacher is shown each gold answer): the teacher's test
    accuracy stays what it scored without the key (here 0), never the copied key's 1.0 — in the figure every
    front end reads, in the Compare tab's teacher column, and on a sweep's reference line."""
    from workbench.builtin.demo import DEMO  # noqa: F401  (registers the built-in tasks' entry points)
    from workbench.results.compare import _teacher_answers

    ws = Store.open(tmp_path / "ws")
    task = load_task("wordproblems", ws, n_train=20, n_valid=4, n_test=30)
    teacher = get_teacher("copycat", store=ws)
    generate_rationales(ws, task, teacher, split="test")
    assert teacher_accuracy(ws, task, teacher.id, split="test") == 0.0
    generate_rationales(ws, task, teacher, split="test", template=task.template().rationalizing())
    assert teacher_accuracy(ws, task, teacher.id, split="test") == 0.0  # not the copied 1.0
    answers, _ = _teacher_answers(ws, task.name, teacher.id, False, 30)
    assert {a["teacher_label"] for a in answers.values()} == {"1000 + 1"}  # Compare shows its own answers
    # A teacher whose only test answers saw the key has no accuracy at all.
    fresh = Store.open(tmp_path / "fresh")
    task = load_task("wordproblems", fresh, n_train=20, n_valid=4, n_test=30)
    generate_rationales(fresh, task, get_teacher("copycat", store=fresh), split="test",
                        template=task.template().rationalizing())
    assert teacher_accuracy(fresh, task, "copycat", split="test") is None
