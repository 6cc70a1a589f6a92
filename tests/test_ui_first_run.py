"""The first classroom run (issue: the app walked as a new user): each behaviour that broke, as a handler test.

The handlers are plain functions over a workspace store; the browser test (test_browser.py) walks the same path in
Chromium. Numbers in comments refer to the issue's items.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.builtin.demo import form_defaults
from workbench.core.errors import ConfigError, TeacherError
from workbench.core.events import Evaluation, Finished, RunStarted, TrainingState, TrainStep
from workbench.core.jobs import cancel_job, list_jobs, wait_job
from workbench.core.store import Store
from workbench.data.metrics import check_steps
from workbench.data.tasks import load_task
from workbench.distill.config import TrainConfig
from workbench.distill.forms import config_from_form, training_preview
from workbench.distill.runs import train_student
from workbench.rationales.generation import check_generation, generate_rationales
from workbench.rationales.review import browse_generations, current_state, edit_generation
from workbench.rationales.teachers import get_teacher
from workbench.results.compare import compare, filter_rows
from workbench.ui import about, imports, rationales, task_teacher, train
from workbench.ui import compare as compare_tab

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"steps": 3, "batch_size": 8, "save_every": 100, "test_limit": 6, "eval_every": 3}


@pytest.fixture
def ws(tmp_path) -> Store:
    store = Store.open(tmp_path / "ws")
    load_task("wordproblems", store, n_train=40, n_valid=8, n_test=8)
    return store


def form(**changes) -> list:
    """The Train form's values as the page sends them on a fresh load (test limit blank), with changes."""
    d = {**form_defaults(), "test_limit": "", "run": "", **changes}
    return [d[k] for k in train.FORM_FIELDS]


# 1. The form's defaults train; an invalid field is named.
def test_the_form_defaults_start_a_run_and_mistakes_name_their_field(ws):
    cfg = config_from_form(train.form_values("wordproblems", "builtin", *form()))
    assert (cfg.method, cfg.student, cfg.test_limit) == ("dss", "tiny", None)
    assert training_preview(ws, cfg)["to_generate"] == 40  # no rationales yet: the free teacher answers first
    train.on_train(ws, "wordproblems", "builtin", *form())
    job = list_jobs(ws, "train")[0]
    cancel_job(ws, job["id"])
    assert wait_job(ws, job["id"], timeout=300)["status"] in ("cancelled", "done")
    for field, bad, says in (("steps", 0, "Steps: must be at least 1"), ("test_limit", "0", "Score on the first N"),
                             ("learning_rate", "fast", "Learning rate: 'fast' is not a number"),
                             ("alpha", 2.0, "α: alpha must be in")):
        with pytest.raises(ConfigError, match=re.escape(says)):
            config_from_form(train.form_values("wordproblems", "builtin", *form(**{field: bad})))
    cli, facts = train.on_form(ws, "wordproblems", "builtin", *form(method="standard"))  # changing Method: no error
    # (the small test task may be warned about, 8 test examples; an error would replace the command with "# why")
    assert not cli.startswith("#") and "--method standard" in cli and "Method" not in facts


# 2. Ask both: the built-in teacher reads a new word problem; the student's odd answers are parse errors.
def test_ask_both_the_builtin_teacher_answers_and_odd_student_answers_are_parse_errors(ws):
    from workbench.distill.predict import answer_problem
    from workbench.rationales.generation import answer_one

    task = load_task("wordproblems", ws)
    answer = answer_one(ws, task, get_teacher("builtin"),
                        "Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?")
    assert answer["parse_error"] is None and re.sub(r"\s", "", answer["label"]) in ("(4-2)-1", "4-2-1")
    assert answer_one(ws, task, get_teacher("builtin"), "What is love?")["error"] is None
    assert "number slot N0" in answer_problem("N0 She She She", "equation", None)
    assert "not arithmetic" in answer_problem("( 4 - 1", "equation", None)
    assert answer_problem("( 4 - 1 )", "equation", None) is None


# 3. Label edits reach training: the label source is a choice, and a run says which it used.
def test_edited_label_and_rationale_reach_the_next_run_with_teacher_labels(ws):
    task = load_task("wordproblems", ws)
    generate_rationales(ws, task, get_teacher("builtin"))
    row = browse_generations(ws, task, "builtin", view="all").rows[0]
    edit_generation(ws, row["generation_id"], rationale="EDITED: 7 + 3 = 10", label="7 + 3")
    out = train_student(ws, TrainConfig(task="wordproblems", method="dss", teacher="builtin", label_source="teacher",
                                        **SMALL))
    rows = [json.loads(x) for x in (Path(out["run_dir"]) / "trainingset.jsonl").read_text().splitlines()]
    mine = next(r for r in rows if r["example_id"] == row["example_id"])
    assert (mine["label"], mine["rationale"]) == ("7 + 3", "EDITED: 7 + 3 = 10")
    assert out["label_source"] == "teacher" and train.runs_table(ws)[0][4] == "teacher"
    exported = rationales.on_export(ws, "wordproblems", "builtin", "JSONL", "teacher")
    path = exported.value["path"] if isinstance(exported.value, dict) else exported.value
    lines = [json.loads(x) for x in Path(path).read_text().splitlines()]
    assert next(r for r in lines if r["example_id"] == row["example_id"])["label"] == "7 + 3"


# 4. Views and counts follow the latest edit; a bulk action says how many rows first; an edit says it accepts.
def test_review_views_follow_edits_and_bulk_actions_ask_first(ws):
    task = load_task("wordproblems", ws)
    generate_rationales(ws, task, get_teacher("builtin"))
    broken = browse_generations(ws, task, "builtin", view="parse errors").rows
    assert broken, "the builtin teacher leaves some answers unparseable"
    gid = broken[0]["generation_id"]
    status, _, saved, header = rationales.on_edit_text(ws, gid, broken[0]["rationale"], broken[0]["gold"])
    assert status == "accepted" and "marked accepted" in saved and "fixed by your label" in header
    assert gid not in [r["generation_id"] for r in browse_generations(ws, task, "builtin", view="parse errors").rows]
    other = browse_generations(ws, task, "builtin", view="unreviewed").rows[0]["generation_id"]
    _, _, header = rationales.on_status(ws, other, "rejected")
    assert "rejected" in header and browse_generations(ws, task, "builtin").counts["rejected"] == 1
    rows, where, _ = rationales.load_table(ws, "wordproblems", "builtin", "rejected", "", 0)
    assert len(rows) == 1 and rows[0][7] == "rejected" and "rejected 1" in where
    before = browse_generations(ws, task, "builtin").counts["accepted"]
    pending, question, *_ = rationales.on_bulk_ask(ws, "accepted", "wordproblems", "builtin", "teacher wrong", "")
    n = browse_generations(ws, task, "builtin", view="teacher wrong").total
    assert f"**{n:,}**" in question["value"] and browse_generations(ws, task, "builtin").counts["accepted"] == before
    rationales.on_bulk_confirm(ws, pending, "wordproblems", "builtin", "teacher wrong", "")
    assert browse_generations(ws, task, "builtin").counts["accepted"] >= before + n - 1


# 6, 7. An import selects a teacher that can answer it; one that cannot is refused before a job; free teachers
# answer the whole split by default.
def test_imports_select_their_teacher_and_a_teacher_that_cannot_answer_is_refused(ws, paper_data):
    from workbench.imports.paper import import_paper

    import_paper(ws, paper_data / "svamp", "svamp")
    out = task_teacher.on_task(ws, "svamp", "builtin")
    assert out[8] == "released:palm-540b" and "Teacher set to" in html.unescape(out[9])
    with pytest.raises(TeacherError, match="built-in tasks"):
        check_generation(ws, "svamp", "builtin", limit=5)
    assert rationales.default_limit("builtin") == "" and rationales.default_limit("hf:x") == "20"
    assert check_generation(ws, "wordproblems", "builtin").limit is None
    assert "Will ask 40 of 40" in html.unescape(rationales.on_plan(ws, "wordproblems", "builtin", "", "train"))


# 8. Teacher figures say their split, and runs compare with the teacher on the same test examples.
def test_teacher_figures_are_on_the_test_split_beside_the_student(ws):
    out = train_student(ws, TrainConfig(task="wordproblems", method="dss", teacher="builtin", **SMALL))
    assert out["teacher_accuracy_split"] == "test" and out["teacher_accuracy"] is not None
    side = compare(ws, out["run"], measure_latency=False)
    assert out["teacher_accuracy"] == pytest.approx(side["teacher_accuracy"]) and side["teacher_split"] == "test"


# 9. Every "a op b = c" step is checked, for teacher and student, with a view of wrong steps.
def test_rationale_steps_are_checked_with_the_safe_evaluator(ws):
    assert check_steps("9 * 7 = 18. 8 * 3 = 24.").wrong == ("9 * 7 = 18",)
    task = load_task("wordproblems", ws)
    generate_rationales(ws, task, get_teacher("builtin"))
    row = browse_generations(ws, task, "builtin").rows[0]
    edit_generation(ws, row["generation_id"], rationale="So 9 * 7 = 18.")
    wrong = browse_generations(ws, task, "builtin", view="steps wrong").rows
    assert row["generation_id"] in [r["generation_id"] for r in wrong]
    assert "steps 0/1 ✗" in rationales.header_md(current_state(ws, row["generation_id"]))
    out = train_student(ws, TrainConfig(task="wordproblems", method="dss", teacher="builtin", **SMALL))
    rows = compare(ws, out["run"], measure_latency=False)["rows"]
    assert all("teacher_steps" in r and "student_steps" in r for r in rows)
    assert all(r["teacher_steps_ok"] is False for r in filter_rows(rows, "teacher steps wrong"))


# 10. Progress says what it is: an evaluation keeps the step count, a cancelled run keeps its step.
def test_progress_state_survives_evaluations_and_cancel():
    s = TrainingState().apply(RunStarted(run="r", steps=1000)).apply(TrainStep(step=200, steps=1000, loss=0.4,
                                                                              eta=60.0))
    s = s.apply(Evaluation(step=200, accuracy=0.5))
    assert (s.step, s.steps, s.loss, s.fraction) == (200, 1000, 0.4, 0.2)
    s = s.apply(Finished(status="cancelled", steps=300))
    assert s.fraction == 0.3 and s.status == "cancelled"
    bar = train.job_progress({"id": "j", "status": "cancelled", "progress": s.to_dict()})
    assert 'aria-valuenow="30"' in bar and "300/1,000" in bar


def test_a_short_run_is_evaluated_at_its_last_step(ws):
    out = train_student(ws, TrainConfig(task="wordproblems", method="standard", **{**SMALL, "eval_every": 200}))
    assert [step for step, _ in out["eval_history"]] == [3]


# 11. Compare: the task's teacher for every run, colour by method, labels above bars, curves or a reason.
def test_compare_holds_every_run_of_a_task_against_its_teacher(ws):
    std = train_student(ws, TrainConfig(task="wordproblems", method="standard", **SMALL))
    dss = train_student(ws, TrainConfig(task="wordproblems", method="dss", teacher="builtin", **SMALL))
    results, teacher = compare_tab.run_results(ws, [std["run"], dss["run"]])
    assert teacher == "builtin" and results[std["run"]]["teacher_accuracy"] is not None
    bars, size, data, *_ = compare_tab.figures(ws, results)
    assert {t.name for t in bars.data} == {"teacher", "standard", "dss"}
    assert all(t.cliponaxis is False for t in bars.data) and bars.layout.yaxis.range[1] > 1.1
    assert "a curve needs runs of one method" in data.layout.annotations[0].text
    names = compare_tab.short_names(results)
    assert all(len(n) < 40 for n in names.values())


# 12-14. Words on the screens: no Python dicts, guessed label columns, unlabeled rows explained, About's table.
def test_reports_are_in_words_and_the_about_table_has_headers(tmp_path):
    from workbench.ui.common import fmt_counts

    assert fmt_counts({"parse error": 95, "rejected": 1}) == "95 parse errors, 1 rejected"
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,sentiment\ngreat,pos\nbad,neg\nfine,\n", encoding="utf-8")
    columns = imports.on_upload(str(csv))
    assert columns[1]["value"] == "sentiment"
    report = html.unescape(imports.report_md({"task": "reviews", "examples": {"train": 3}, "unlabeled": 1,
                                              "rejected": 0, "errors": []}))
    assert "{" not in report and "1 rows have no label" in report
    table = re.search(r"\n\|(.+)\|\n\|---", about.ABOUT)
    assert table and table.group(1).strip(" |") and "( 4 - 2 ) - 1" in about.ABOUT
    for word in ("Number slots", "cot", "kd", "Student right, teacher wrong", "Valid and test accuracy"):
        assert word in about.ABOUT


# 15. A user's mistake is one line in the server's terminal, not a traceback.
@pytest.mark.slow
def test_user_errors_print_no_traceback_on_the_server(tmp_path):
    import socket

    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "app.py", "--workspace", str(tmp_path / "ws"), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert time.monotonic() < deadline and proc.poll() is None, "the app did not start"
                time.sleep(0.5)
        for _ in range(2):
            with pytest.raises(Exception, match="unknown teacher"):
                client.predict("wordproblems", "nope", "Q: {input}", "5", "train", api_name="/generate")
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "Traceback" not in out, out[-2000:]


# Rationalization (the pretrained-model issue's teacher part): the gold answer in the prompt, kept apart, marked.
def test_rationalization_shows_the_answer_keeps_its_answers_apart_and_says_so(ws):
    from workbench.cli import main as cli

    task = load_task("wordproblems", ws)
    ex = task.examples("train", 1)[0]
    plain, hinted = task.template().render(ex.input), task.template().rationalizing().render(ex.input, ex.label)
    assert f"The correct answer is {ex.label}." in hinted and f"{ex.label}" not in plain.split("Q: ")[-1]
    for extra in (["--rationalize"], []):
        assert cli(["--workspace", str(ws.workspace), "generate", "--task", "wordproblems", "--teacher", "builtin",
                    "--limit", "3", *extra]) == 0
    hashes = {t["template_hash"] for t in ws.teachers_of("wordproblems")}
    assert len(hashes) == 2  # the rationalized answers did not stand in for plain ones
    by_hash = {h: ws.latest_generations("wordproblems", "builtin", h, split="train") for h in hashes}
    marks = {h: {current_state(ws, r["generation_id"])["rationalized"] for r in rows} for h, rows in by_hash.items()}
    assert sorted(marks.values(), key=str) == [{False}, {True}]
    assert check_generation(ws, "wordproblems", "builtin", limit=2, rationalize=True).to_spec()["rationalize"] is True


def test_a_free_teacher_that_answered_part_of_the_test_split_is_compared_on_all_of_it(store):
    from workbench.rationales.generation import ensure_answers

    task = load_task("wordproblems", store, n_train=20, n_valid=4, n_test=12)
    generate_rationales(store, task, get_teacher("builtin"), split="test", limit=5)  # e.g. an "Ask" of 5
    assert ensure_answers(store, "wordproblems", "builtin", split="test") is None
    assert len(store.latest_generations("wordproblems", "builtin", split="test")) == 12


def test_the_summary_says_the_student_figure_on_the_teachers_examples_when_they_are_fewer():
    row = {"config": {"method": "dss", "label_source": "gold"}, "train_rows": 100, "student_parameters": 1000,
           "student_accuracy": 0.987, "n": 300, "teacher_accuracy": 0.78, "n_shared": 50,
           "student_accuracy_on_shared": 0.98, "student_right_teacher_wrong": 11, "teacher_right_student_wrong": 1}
    text = compare_tab.summary_md({"r": row}, "builtin")
    assert "98.7 % (300); 98.0 % on the teacher's 50" in text
    assert "on the teacher's" not in compare_tab.summary_md({"r": {**row, "n_shared": 300}}, "builtin")


def test_the_train_form_never_waits_for_a_calibration(ws, tmp_path, monkeypatch):
    """The page's Train form asks for its estimate in the background: a student not measured here says it is being
    measured (and the form asks again on a timer) instead of holding the form for the minute a SmolLM2
    calibration takes; once measured, the estimate is there."""
    monkeypatch.setenv("WORKBENCH_CALIBRATION", str(tmp_path / "calibration.json"))  # nothing measured yet
    started = time.monotonic()
    cli, facts, timer = train.on_form_live(ws, "wordproblems", "builtin", *form(steps=20))
    assert time.monotonic() - started < 10 and "⏳" in facts and "measuring tiny" in html.unescape(facts)
    assert timer.active and "--steps 20" in cli
    deadline = time.monotonic() + 180
    while "⏳" in facts:
        assert time.monotonic() < deadline, facts
        time.sleep(1)
        _, facts, timer = train.on_form_live(ws, "wordproblems", "builtin", *form(steps=20))
    assert "about" in facts and "for 20 steps" in facts and not timer.active
