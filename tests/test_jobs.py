"""Background jobs: detached processes that survive their caller, cancel, and an interrupted job."""

import os
import signal
import time

import pytest

from workbench.core.jobs import cancel_job, job_status, list_jobs, read_log, start_job, wait_job
from workbench.data.tasks import load_task


def test_generation_job_runs_detached_and_reports(store):
    load_task("wordproblems", store)
    job = start_job(store, "generate", {"task": "wordproblems", "teacher": "builtin", "limit": 40})
    row = wait_job(store, job, timeout=120)
    assert row["status"] == "done", read_log(store, job)
    result = row["progress"]["result"]
    assert result["generated"] == 40 and result["parsed"] + result["parse_errors"] == 40
    assert 0.5 < result["teacher_accuracy"] <= 1.0
    assert [j["id"] for j in list_jobs(store)] == [job]
    assert "generating" in read_log(store, job)


def test_failed_job_reports_its_reason(store):
    job = start_job(store, "generate", {"task": "no-such-task", "teacher": "builtin"}, detach=False)
    row = job_status(store, job)
    assert row["status"] == "failed" and "unknown task" in row["error"]


@pytest.mark.slow
def test_kill_9_mid_generation_loses_nothing_and_resumes(store):
    from workbench.rationales.generation import generate_rationales
    from workbench.rationales.teachers import get_teacher

    task = load_task("wordproblems", store, n_train=12000, n_valid=10, n_test=10)
    job = start_job(store, "generate", {"task": "wordproblems", "teacher": "builtin"})
    deadline = time.monotonic() + 90
    while not job_status(store, job)["progress"].get("done") and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(job_status(store, job)["pid"], signal.SIGKILL)
    row = wait_job(store, job, timeout=30)
    assert row["status"] == "interrupted" and "without reporting" in row["error"]
    assert store.integrity_check() == []
    committed = len(store.latest_generations("wordproblems", "builtin"))
    assert 0 < committed < 12000  # whole batches only: nothing half-written
    summary = generate_rationales(store, task, get_teacher("builtin"))
    assert summary["skipped"] == committed and summary["generated"] == 12000 - committed
    assert cancel_job(store, job)["status"] == "interrupted"  # cancelling a dead job changes nothing


@pytest.mark.slow
def test_cancel_stops_a_running_job(store):
    load_task("wordproblems", store, n_train=20000, n_valid=10, n_test=10)
    job = start_job(store, "generate", {"task": "wordproblems", "teacher": "builtin"})
    deadline = time.monotonic() + 60
    while not job_status(store, job)["progress"].get("done") and time.monotonic() < deadline:
        time.sleep(0.05)
    cancel_job(store, job)
    row = wait_job(store, job, timeout=60)
    assert row["status"] == "cancelled"
    assert row["progress"]["done"] < 20000
