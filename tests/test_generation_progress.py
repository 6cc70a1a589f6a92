"""Generation as a class sees it (issue 25, findings 2 and 3; issue 22 item 6; issue 26 §4): progress per batch and
per token with an ETA, a cancel that lands within one decoding step keeping the batches already answered, and one
check and one plan for every front (the app's sentence before launch is the plan the job runs)."""

from __future__ import annotations

import html
import os
import signal
import threading
import time

import pytest

from tests.fakes import FakeTeacher, toy_task
from workbench.cli import main as cli
from workbench.core.errors import ConfigError
from workbench.core.events import GenerationProgress
from workbench.data.tasks import load_task
from workbench.models.loading import save_random_checkpoint
from workbench.rationales import progress as generation_progress
from workbench.rationales.generation import (
    check_generation,
    default_limit,
    generate_rationales,
    plan_request,
)
from workbench.rationales.teachers import get_teacher
from workbench.ui import rationales


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> str:
    """A tiny random causal model: it writes nonsense (parse errors), token by token, as long as it is allowed."""
    return save_random_checkpoint(tmp_path_factory.mktemp("lm") / "causal", "causal", max_positions=8192)


def test_progress_says_which_batch_and_how_many_tokens_with_an_eta(store, tiny_lm, monkeypatch):
    monkeypatch.setattr(generation_progress, "TOKEN_REPORT_SECONDS", 0.0)  # every token (a tiny model is fast)
    task = toy_task(store, n_train=6)
    seen: list[GenerationProgress] = []
    out = generate_rationales(store, task, get_teacher(f"hf:{tiny_lm}?max_new_tokens=12&stop=&batch_size=4"),
                              progress=seen.append)
    assert out["generated"] == 6
    sent = [p for p in seen if p.in_flight and p.partial == 0]
    assert sent and sent[0].phase == "batch 1 of 2: 4 prompts sent" and sent[0].done == 0
    mid = [p for p in seen if p.in_flight and 0 < p.partial < 1]
    assert mid, "no report while the batch was being generated"
    assert mid[0].phase.startswith("batch 1 of 2: ") and mid[0].phase.endswith("/12 tokens")
    assert 0 < mid[0].fraction < 4 / 6 and mid[-1].eta is not None
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # the bar only moves forward


def test_a_cancel_cuts_the_batch_in_flight_and_keeps_the_batches_answered(store, tiny_lm, monkeypatch):
    monkeypatch.setattr(generation_progress, "TOKEN_REPORT_SECONDS", 0.0)
    task = toy_task(store, n_train=6)
    teacher = get_teacher(f"hf:{tiny_lm}?max_new_tokens=40&stop=&batch_size=2")
    stop = {"now": False}

    def progress(p: GenerationProgress) -> None:
        if p.done == 2 and p.partial > 0:  # the second batch has started generating: cancel
            stop["now"] = True

    out = generate_rationales(store, task, teacher, progress=progress, should_stop=lambda: stop["now"])
    assert out["generated"] == 2 and out["errors"] == 0  # the first batch kept; the cut one not stored
    assert teacher.stats["generated_tokens"] < 2 * 40 + 2 * 10  # the second batch stopped within a few tokens
    assert teacher.watch is None
    rerun = generate_rationales(store, task, get_teacher(f"hf:{tiny_lm}?max_new_tokens=40&stop=&batch_size=2"))
    assert rerun["generated"] == 4 and rerun["skipped"] == 2  # the cut rows were never claimed for good


@pytest.mark.slow
def test_a_generation_job_cancelled_during_a_long_batch_stops_within_10_seconds(store, tiny_lm):
    from workbench.core.jobs import cancel_job, job_status, start_job, wait_job

    toy_task(store, n_train=4)
    job = start_job(store, "generate", {"task": "toy", "teacher": f"hf:{tiny_lm}?max_new_tokens=4096&stop=",
                                        "limit": 4})
    deadline = time.monotonic() + 120
    while "tokens" not in ((job_status(store, job).get("progress") or {}).get("phase") or ""):
        assert time.monotonic() < deadline and job_status(store, job)["status"] in ("queued", "running")
        time.sleep(0.2)
    asked = time.monotonic()
    cancel_job(store, job)
    row = wait_job(store, job, timeout=30, poll=0.1)
    assert time.monotonic() - asked < 10 and row["status"] == "cancelled"
    assert not store.latest_generations("toy", f"hf:{tiny_lm}")  # nothing half-written


class StuckTeacher(FakeTeacher):
    """Answers its first batch at once, then sits in its second the way a local model reads long prompts on a CPU
    (measured: SmolLM2-135M took 117 s before its first token for 16 few-shot prompts, on 2 busy cores)."""

    kind = "stuck-test"
    busy = threading.Event()

    def answer(self, requests):
        if not FakeTeacher.calls:
            return super().answer(requests)
        StuckTeacher.busy.set()
        # No token to check between: only the cancel's SIGTERM can cut this. Like a model's forward pass (many short
        # torch calls), it returns to Python often, where the handler runs whichever thread the signal reached.
        for _ in range(1200):
            time.sleep(0.1)
        raise AssertionError("the cancel did not interrupt the teacher")


def test_a_cancel_interrupts_a_teacher_busy_before_its_first_token_and_keeps_the_batches_answered(store):
    from workbench.core.jobs import cancel_job, job_status, start_job
    from workbench.core.store import Store
    from workbench.rationales.teachers.base import TEACHERS, register_teacher

    if "stuck-test" not in TEACHERS:
        register_teacher(StuckTeacher)
    toy_task(store, n_train=8)
    StuckTeacher.busy.clear()
    timing = {}

    def cancel_when_busy():
        assert StuckTeacher.busy.wait(60)
        other = Store.open(store.workspace)
        timing["asked"] = time.monotonic()
        cancel_job(other, "gen-stuck")  # marks it cancelling; this process is the job's, so no signal is sent...
        os.kill(os.getpid(), signal.SIGTERM)  # ...and this is the SIGTERM cancel_job sends a job's process

    helper = threading.Thread(target=cancel_when_busy)
    helper.start()
    start_job(store, "generate", {"task": "toy", "teacher": "stuck-test"}, job_id="gen-stuck",
              detach=False)  # the job runs here, in the main thread, as in its own process
    stopped = time.monotonic()
    helper.join()
    row = job_status(store, "gen-stuck")
    assert row["status"] == "cancelled" and stopped - timing["asked"] < 10
    assert row["progress"]["result"]["generated"] == 4  # the first batch kept, the interrupted one not stored
    assert len(store.latest_generations("toy", "stuck-test")) == 4


# -- one check and one plan for every front ---------------------------------------------------------------------
def test_the_sentence_before_launch_is_the_plan_the_job_runs(store):
    task = load_task("wordproblems", store, n_train=4, n_valid=2, n_test=2)
    generate_rationales(store, task, get_teacher("builtin"))  # the plain template answered all 4
    plain = html.unescape(rationales.on_plan(store, "wordproblems", "builtin", "", "train"))
    assert "Will ask 0 of 4 train examples" in plain and "4 already answered" in plain
    hinted = html.unescape(rationales.on_plan(store, "wordproblems", "builtin", "", "train", None, True))
    assert "Will ask 4 of 4 train examples" in hinted and "rationalization" in hinted  # was "0 of 4"
    req = check_generation(store, "wordproblems", "builtin", rationalize=True)
    assert len(plan_request(store, req).todo) == 4
    edited = task.template().text.replace("Q:", "Question:")
    assert "Will ask 4 of 4" in rationales.on_plan(store, "wordproblems", "builtin", "", "train", edited, False)


def test_a_teacher_that_only_replays_answers_says_it_sends_nothing(store, paper_data):
    from workbench.imports.paper import import_paper

    import_paper(store, paper_data / "svamp", "svamp")
    said = html.unescape(rationales.on_plan(store, "svamp", "released:palm-540b", "", "train"))
    assert "Will ask" not in said and "sends no prompts" in said and "1,000" in said  # it said "800 prompts"
    assert default_limit("hf:x") == 20 and default_limit("builtin") is None


def test_cli_generate_goes_through_the_apps_check(store, capsys):
    toy_task(store)  # a task the builtin teacher cannot read: the app refused it, the CLI used to generate
    code = cli(["--workspace", str(store.workspace), "generate", "--task", "toy", "--teacher", "builtin"])
    err = capsys.readouterr().err
    assert code == 2 and "writes answers only for the built-in tasks" in err and len(err.strip().splitlines()) == 1
    assert not store.latest_generations("toy", "builtin")
    FakeTeacher.calls = []
    assert cli(["--workspace", str(store.workspace), "generate", "--task", "toy", "--teacher", "fake", "--dry-run",
                "--json", "--rationalize"]) == 0
    out = capsys.readouterr().out
    assert '"requests": 8' in out and "rationalization" in out and FakeTeacher.calls == []
    with pytest.raises(ConfigError, match="1 or more"):
        check_generation(store, "toy", "fake", limit=0)
