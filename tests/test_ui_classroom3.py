"""The classroom walk, round 3 (issue 25): each finding as a library or handler test; test_browser.py walks the
same findings in Chromium. Numbers refer to the issue's findings."""

from __future__ import annotations

import html
import os

import pytest

from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.config import TrainConfig
from workbench.distill.runs import train_student
from workbench.results.ask import AskedAnswer, _checked, ask_both, asking_teacher
from workbench.ui import compare as compare_tab

APPLES = "Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?"
SMALL = {"steps": 3, "batch_size": 8, "save_every": 100, "test_limit": 6, "eval_every": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Store, str]:
    store = Store.open(tmp_path_factory.mktemp("ask") / "ws")
    load_task("wordproblems", store, n_train=40, n_valid=8, n_test=8)
    out = train_student(store, TrainConfig(task="wordproblems", method="dss", teacher="builtin", **SMALL))
    return store, out["run"]


# 1. Ask both checks each side: the value, every step, agreement, and gold when the question is an example.
def test_ask_both_checks_value_steps_agreement_and_says_there_is_no_gold(trained):
    store, run = trained
    out = ask_both(store, run, APPLES)
    t = out.teacher
    assert t.name == "builtin" and t.value == 1.0 and t.value_text == "1"
    assert t.steps.checked == (("4 - 2 = 2", True), ("2 - 1 = 1", True)) and t.steps_text() == "4 - 2 = 2 ✓ · 2 - 1 = 1 ✓"
    assert out.student.name == run and out.student.steps.steps == len(out.student.steps.checked)
    assert out.example_id is None and out.gold is None
    assert t.correct is None and "not one of the task's examples" in out.verdict()
    if out.student.label is None:  # three steps of training: the student may answer nothing at all
        assert out.agree is None and "the student gave no answer" in out.verdict() and out.student.problem
    else:
        assert f"{'agree' if out.agree else 'disagree'} (value 1 vs " in out.verdict()


def test_ask_both_marks_each_side_against_gold_when_the_question_is_an_example(trained):
    store, run = trained
    example = store.examples("wordproblems", "test", 1)[0]
    out = ask_both(store, run, "  " + example.input.replace(" ", "  ") + "\n")  # spaces aside, the same question
    assert out.example_id == example.id and out.gold == example.label
    assert out.teacher.correct in (True, False) and out.student.correct in (True, False)
    assert f"gold ({example.id})" in out.verdict() and "teacher ✓" in out.verdict() or "teacher ✗" in out.verdict()


def test_a_wrong_answer_is_shown_wrong_value_and_step_by_step():
    """The demo student's reply to the README's example in the issue: "4 - 1", through "4 + 1 = 14"."""
    a = _checked("student", "r", "4 - 1", "Anne has 4 apples. She gives 1, so 4 + 1 = 14.", None, "equation", None)
    assert a.value == 3.0 and a.steps.checked == (("4 + 1 = 14", False),) and a.steps_text() == "4 + 1 = 14 ✗"
    wrong = _checked("student", "r", "4 - 1", None, None, "equation", "( 4 - 2 ) - 1")
    assert wrong.correct is False and wrong.steps_text() == "–"
    broken = _checked("student", "r", "( 4 -", None, "not arithmetic", "equation", "( 4 - 2 ) - 1")
    assert broken.value is None and broken.correct is False and broken.value_text == "–"
    md = html.unescape(compare_tab.check_md(a))
    assert "**value** 3" in md and "4 + 1 = 14 ✗" in md


def test_the_teacher_asked_is_the_selected_one_only_when_it_can_answer_the_runs_task(trained):
    store, run = trained
    assert asking_teacher(store, run, "builtin?seed=3") == "builtin?seed=3"
    assert asking_teacher(store, run, "released:palm-540b") == "builtin"  # it has no answers here: the run's own
    assert asking_teacher(store, run, None) == "builtin"


def test_the_ask_box_renders_the_librarys_answer(trained):
    store, run = trained
    t_label, _, t_check, s_label, _, s_check, verdict = compare_tab.on_ask(store, "wordproblems", "builtin", "", run,
                                                                           APPLES)
    assert t_label.replace(" ", "") in ("(4-2)-1", "4-2-1")
    assert "**value** 1" in html.unescape(t_check) and "2 - 1 = 1 ✓" in html.unescape(t_check)
    assert html.unescape(s_check).startswith("**value**")
    assert "no gold answer" in html.unescape(verdict) and run in html.unescape(verdict).replace("\\", "")
    assert isinstance(_checked("teacher", "x", None, None, "down", "equation", None), AskedAnswer)


# 5. The Train form warns (never refuses) on settings that are almost surely a mistake.
def test_the_train_form_warns_on_thousands_of_passes_few_test_examples_and_an_offline_student(tmp_path, monkeypatch):
    from workbench.builtin.demo import form_defaults
    from workbench.core.errors import ConfigError
    from workbench.distill.forms import config_from_form, form_warnings
    from workbench.ui import train

    def no_estimate(*args, **kwargs):  # the time estimate calibrates a student: not what this test is about
        raise ConfigError("not measured in this test")

    monkeypatch.setattr(train, "estimate_run", no_estimate, raising=False)

    store = Store.open(tmp_path / "ws")
    load_task("wordproblems", store, n_train=4, n_valid=4, n_test=30)
    values = {**form_defaults(), "task": "wordproblems", "teacher": "builtin", "test_limit": "", "run": ""}
    said = {w.field: w.message for w in form_warnings(store, config_from_form(values))}
    assert said["steps"].startswith("≈8,000 passes over 4 rows")  # the "≈8000 passes over 4 rows"
    assert said["task"].startswith("scored on 30 test examples") and "noise" in said["task"]
    few = form_warnings(store, config_from_form({**values, "test_limit": "6", "steps": "2"}))
    assert [w.field for w in few] == ["test_limit"] and "one example moves accuracy by 17 points" in few[0].message
    offline = form_warnings(store, config_from_form({**values, "student": "google/flan-t5-small", "steps": "2"}))
    assert any(w.field == "student" and "cannot be loaded here (offline)" in w.message for w in offline)
    _, facts = train.on_form(store, "wordproblems", "builtin",
                             *[{**values, "steps": 1000}[k] for k in train.FORM_FIELDS])
    assert "⚠" in facts and "8,000 passes over 4 rows" in html.unescape(facts)


def test_the_demo_form_has_nothing_to_warn_about(store):
    from workbench.builtin.demo import form_defaults
    from workbench.distill.forms import config_from_form, form_warnings

    load_task("wordproblems", store)
    values = {**form_defaults(), "task": "wordproblems", "teacher": "builtin", "test_limit": "", "run": ""}
    assert form_warnings(store, config_from_form(values)) == []


# 6. A reload restores one consistent task and teacher: what the page showed, else a running job's, else the demo.
def test_a_reload_restores_the_task_with_a_teacher_that_can_teach_it(store):
    from workbench.rationales.suggest import restore_selection
    from workbench.ui import task_teacher

    load_task("wordproblems", store, n_train=8, n_valid=2, n_test=2)
    load_task("quantnli", store, n_train=8, n_valid=2, n_test=2)
    assert restore_selection(store, "quantnli", "hf:smollm2-135m", "wordproblems") == ("quantnli", "hf:smollm2-135m")
    assert restore_selection(store, None, None, "wordproblems") == ("wordproblems", "builtin")
    assert restore_selection(store, "gone", "builtin", "wordproblems") == ("wordproblems", "builtin")
    # A teacher that cannot teach the restored task is never shown beside it.
    assert restore_selection(store, "quantnli", "released:palm-540b", "wordproblems") == ("quantnli", "builtin")
    # A fresh page while a job runs opens on that job's task and teacher (the page once reset to the demo task).
    store.upsert_job("gen-1", kind="generate", status="running", spec={"task": "quantnli", "teacher": "builtin?seed=2"},
                     pid=os.getpid())
    assert restore_selection(store, None, None, "wordproblems") == ("quantnli", "builtin?seed=2")
    update, spec = task_teacher.on_load(store, {"task": "wordproblems", "teacher": "builtin"})
    assert update["value"] == "wordproblems" and spec == "builtin" and "quantnli" in update["choices"]


# 7. Polish, each seen in the walk.
def test_polish_a_lone_loss_point_a_chart_message_and_placeholders_that_fit_the_teacher():
    from workbench.results import plots
    from workbench.ui import task_teacher

    one = plots.loss_curves([{"event": "train", "step": 1, "loss": 2.5}])
    assert [t.mode for t in one.data] == ["markers"]  # a line through one point drew an empty chart
    gap = plots.curve_gap([{"method": "dss", "params": 134_515_008}], "params", "student sizes")
    assert gap.endswith("have 1\u00a0(134,515,008)")  # never wrapped into "have 1" / "(134,515,008)"
    assert task_teacher.settings_hint("builtin") == "error_rate=0.2&seed=0"
    assert task_teacher.settings_hint("released") == "(none needed)"  # not the builtin teacher's example
    assert task_teacher.settings_hint("hf").startswith("temperature=")
    _, settings, _, spec = task_teacher.on_teacher_kind("released")
    assert settings["placeholder"] == "(none needed)" and settings["value"] == "" and spec == "released"
