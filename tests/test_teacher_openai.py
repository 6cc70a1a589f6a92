"""The ``openai`` teacher against a real uvicorn server on 127.0.0.1 serving a tiny model (``workbench.serving.app``),
with injected faults: retries, Retry-After, timeouts, dropped connections, garbage JSON, empty choices."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.fakes import toy_task
from workbench.cli import main as cli
from workbench.core.connections import Connection, SpecContext
from workbench.core.errors import TeacherError
from workbench.core.jobs import read_log, start_job, wait_job
from workbench.core.store import Example
from workbench.models.loading import save_random_checkpoint
from workbench.rationales.generation import generate_rationales, plan_generation
from workbench.rationales.teachers import get_teacher
from workbench.rationales.teachers.base import TeacherRequest
from workbench.rationales.teachers.hf import Completion, HFTeacher
from workbench.rationales.teachers.openai_compat import RetryPolicy, retry_after_seconds
from workbench.serving import FaultPlan, ServerThread, create_app, resolve_model

SECRET = "sk-wb-test-SECRET-7f3a9c"
FAST = "timeout=2&max_retries=3&backoff=0.01&backoff_max=0.05&max_tokens=8"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("models") / "tiny", "causal")


@pytest.fixture
def serve(model_dir):
    """``serve(faults=..., latency_ms=...)`` → a running server (stopped after the test) and its app state."""
    servers = []

    def start(**kwargs):
        app = create_app(resolve_model(model_dir), **kwargs)
        servers.append(ServerThread(app).start())
        return servers[-1], app.state.workbench

    yield start
    for s in servers:
        s.stop()


def _requests(n, prefix="Q: Anne has"):
    return [TeacherRequest(Example(f"e{i}", "train", f"{prefix} {i}", None), f"{prefix} {i} apples\nA:")
            for i in range(n)]


@pytest.mark.parametrize("mode", ["completions", "chat"])
def test_chat_and_completions_match_the_local_model(serve, model_dir, mode):
    server, state = serve()
    # timeout=30: the first batch loads the model, which takes seconds on a busy CPU (this test is about the APIs)
    teacher = get_teacher(f"openai:tiny@{server.url}?mode={mode}&{FAST}&timeout=30")
    remote = [r.raw for r in teacher.answer(_requests(4))]
    local = [r.raw for r in HFTeacher(model_dir, max_new_tokens="8").answer(_requests(4))]
    assert remote == local and all(remote)  # greedy, no chat template: the same text either way
    assert teacher.stats["requests"] == 4 and teacher.stats["failed_rows"] == 0
    import openai

    models = openai.OpenAI(api_key="x", base_url=server.url, max_retries=0).models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_faults_are_retried_per_row_and_the_job_finishes(serve, store):
    task = toy_task(store, n_train=8, n_test=0)
    plan = FaultPlan(fail_500=2, rate_limit=1, retry_after=1, slow=1, slow_seconds=3, drop=1, garbage=1, empty=1,
                     poison="Anne has 3 apples")
    server, state = serve(faults=plan)
    spec = f"openai:tiny@{server.url}?mode=completions&concurrency=4&{FAST}&timeout=1"
    dry = plan_generation(store, task, get_teacher(spec)).summary()
    assert dry["requests"] == 8 and dry["approx_prompt_tokens"] > 0 and state.stats.requests == 0
    job = start_job(store, "generate", {"task": task.name, "teacher": spec}, detach=False)
    row = wait_job(store, job, timeout=60)
    assert row["status"] == "done", row
    result = row["progress"]["result"]
    assert result["generated"] == 8 and result["errors"] == 1  # only the poisoned row ran out of retries
    failed = [r for r in store.conn.execute("SELECT example_id, error FROM generations WHERE error IS NOT NULL")]
    assert [r["example_id"] for r in failed] == ["train-2"]
    assert failed[0]["error"].startswith("HTTP 500 after 4 attempt(s)")
    log = state.stats.log
    assert {r["fault"] for r in log} >= {"fail_500", "rate_limit", "slow", "drop", "garbage", "empty"}
    # Retry-After respected: the rate-limited prompt came back no sooner than 1 s later.
    limited = next(r for r in log if r["fault"] == "rate_limit")
    retry = next(r for r in log if r["prompt"] == limited["prompt"] and r["start"] > limited["start"])
    assert retry["start"] - limited["end"] >= 0.95
    # The slow answer (3 s) hit the 1 s client timeout and the row was asked again, not waited for.
    slow = next(r for r in log if r["fault"] == "slow")
    assert any(r["prompt"] == slow["prompt"] and r["status"] == 200 and r["fault"] is None for r in log)
    for fault in ("drop", "garbage", "empty"):  # each was followed by a clean answer to the same prompt
        bad = next(r for r in log if r["fault"] == fault)
        assert any(r["prompt"] == bad["prompt"] and r["fault"] is None and r["status"] == 200 for r in log)

    # Re-run: only the failed row is asked again; then nothing at all (the cache).
    state.faults = FaultPlan()
    before = state.stats.requests
    again = generate_rationales(store, task, get_teacher(spec))
    assert (again["generated"], again["skipped"], again["errors"]) == (1, 7, 0)
    assert state.stats.requests == before + 1
    third = generate_rationales(store, task, get_teacher(spec))
    assert third["generated"] == 0 and state.stats.requests == before + 1


def test_at_least_32_requests_in_flight(serve):
    server, state = serve(latency_ms=300)
    teacher = get_teacher(f"openai:tiny@{server.url}?mode=completions&concurrency=40&{FAST}")
    assert teacher.batch_size == 160  # 4 x concurrency: big committed batches that still stream results
    replies = teacher.answer(_requests(80))
    assert all(r.error is None for r in replies)
    assert state.stats.max_in_flight >= 32 and teacher.stats["max_in_flight"] >= 32
    assert state.stats.requests == 80 and teacher.stats["max_in_flight"] <= 40


def test_retries_run_out_into_row_errors_not_exceptions(serve):
    server, state = serve(faults=FaultPlan(poison="Anne has 1 "))
    teacher = get_teacher(f"openai:tiny@{server.url}?mode=chat&{FAST}&max_retries=2")
    replies = teacher.answer(_requests(3))
    assert [r.error is None for r in replies] == [True, False, True]
    assert teacher.summary()["reasons"] == {"HTTP 500": 1} and teacher.stats["retries"] == 2
    down = get_teacher(f"openai:tiny@http://127.0.0.1:9/v1?{FAST}&max_retries=1")  # nothing listens there
    assert down.answer(_requests(1))[0].error.startswith("connection error after 2 attempt(s)")


def test_api_key_never_lands_in_the_workspace(serve, store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    task = toy_task(store, n_train=4, n_test=0)
    server, state = serve(faults=FaultPlan(poison="Anne has 2 apples"))
    spec = f"openai:tiny@{server.url}?mode=completions&{FAST}&max_retries=1"
    job = start_job(store, "generate", {"task": task.name, "teacher": spec})  # a detached process, with its log
    row = wait_job(store, job, timeout=120)
    assert row["status"] == "done", read_log(store, job)
    assert row["progress"]["result"]["errors"] == 1
    assert hashlib.sha256(SECRET.encode()).hexdigest() in state.stats.key_hashes  # the key was sent...
    teacher = get_teacher(spec)
    assert SECRET not in teacher.id and SECRET not in json.dumps(teacher.settings)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = [p for p in store.workspace.rglob("*") if p.is_file()]
    assert any(p.name == "log.txt" for p in files)
    for path in files:  # ...and is nowhere in the store, its WAL or the job logs
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_refused_key_stops_the_job_with_a_clear_message(serve, monkeypatch):
    monkeypatch.setenv("MY_KEY", SECRET)
    server, state = serve(faults=FaultPlan(unauthorized=100))
    teacher = get_teacher(f"openai:tiny@{server.url}?key_env=MY_KEY&concurrency=2&{FAST}")
    with pytest.raises(TeacherError, match=r"refused the API key.*\$MY_KEY") as err:
        teacher.answer(_requests(6))
    assert SECRET not in str(err.value)
    # The other rows stop instead of each hitting the wall: with 2 in flight, each slot may have sent one more
    # request before the refusal reached it, so at most 2 × concurrency of the 6 rows are sent.
    assert state.stats.requests <= 4
    teacher.close()


def test_the_sdk_sends_each_request_with_only_the_key_the_rules_chose(monkeypatch):
    """The requests are the ``openai`` client's own (its User-Agent), yet the key rules, not the client's
    environment lookups, decide the credentials: the owner's $OPENAI_API_KEY; from the app, none to a typed URL
    (although $OPENAI_API_KEY, $OPENAI_CUSTOM_HEADERS, $OPENAI_ORG_ID are set) and a connection's own key."""
    from tests.test_hostile import GOOD, RawEndpoint

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LAB_KEY", "sk-lab-key")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer sk-ambient")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-ambient")
    seen = []
    with RawEndpoint(lambda i, body, headers: (seen.append(headers), (200, GOOD))[1]) as ep:
        app = SpecContext("app", (Connection("lab", ep.url.replace("/v1", "/lab"), "m", key_env="LAB_KEY"),))
        for spec, context in ((f"openai:m@{ep.url}", None), (f"openai:m@{ep.url}", app), ("openai:@conn:lab", app)):
            teacher = get_teacher(f"{spec}?{FAST}", context=context)
            assert teacher.answer(_requests(1))[0].error is None
            teacher.close()
    assert [h.get("Authorization") for h in seen] == [f"Bearer {SECRET}", None, "Bearer sk-lab-key"]
    assert all(h.get("User-Agent", "").startswith("AsyncOpenAI/Python") for h in seen)
    assert [h.get("OpenAI-Organization") for h in seen] == [None, None, None]


@pytest.mark.parametrize("spec", ["openai:m@http://127.0.0.1:1/v1?api_key=sk-123", "openai:m@http://u:p@h/v1",
                                  "openai:@http://127.0.0.1:1/v1", "openai:m@ftp://h", "openai:m?mode=edit",
                                  "openai:m?concurrency=0"])
def test_secrets_and_bad_specs_are_refused(spec):
    with pytest.raises(TeacherError):
        get_teacher(spec)


def test_backoff_and_retry_after_parsing():
    import random

    policy = RetryPolicy(base=0.5, cap=8)
    rng = random.Random(0)
    delays = [policy.delay(a, retry_after=None, rng=rng) for a in range(10) for _ in range(20)]
    assert min(delays) >= 0 and max(delays) <= 8 and len(set(delays)) > 100  # full jitter
    assert policy.delay(0, retry_after=3, rng=rng) == 3
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None


def test_a_run_is_served_with_its_task_prefix(tmp_path):
    run = tmp_path / "ws" / "runs" / "r1"
    save_random_checkpoint(run / "model", "seq2seq")
    (run / "config.json").write_text(json.dumps({"config": {"method": "dss", "alpha": 0.5}}))
    (run / "trainingset.jsonl").write_text("")
    served = resolve_model("run:r1", tmp_path / "ws")
    assert served.model_ids() == ["r1", "r1:label", "r1:rationale"]
    assert served.source("Tom has 3.", "r1:rationale") == "[rationale] Tom has 3."
    assert served.source("Tom has 3.", "r1") == "[label] Tom has 3."
    assert resolve_model(str(run / "model")).name == "r1"
    with ServerThread(create_app(served)) as server:
        teacher = get_teacher(f"openai:r1:rationale@{server.url}?mode=completions&{FAST}")
        assert teacher.answer(_requests(1))[0].error is None


def test_a_run_with_number_slots_is_served_as_it_was_trained(tmp_path, monkeypatch):
    """The server gives the run N0, N1, … for the input's numbers, and maps them back in the answer."""
    run = tmp_path / "ws" / "runs" / "r2"
    save_random_checkpoint(run / "model", "seq2seq")
    (run / "config.json").write_text(json.dumps({"config": {"method": "standard", "numbers": "slots"}}))
    (run / "trainingset.jsonl").write_text("")
    served = resolve_model("run:r2", tmp_path / "ws")
    seen = []

    def fake_complete(texts, **kwargs):
        seen.extend(texts)
        return [Completion(["( N1 - N0 ) * N7"], 5, 3, ["stop"]) for _ in texts]

    monkeypatch.setattr(served.teacher, "complete_rendered", fake_complete)
    with ServerThread(create_app(served)) as server:
        reply = httpx.post(f"{server.url}/completions", json={"model": "r2", "prompt": "Tom has 12 pens and 5 cups."})
    assert seen == ["Tom has N0 pens and N1 cups."]
    assert reply.json()["choices"][0]["text"] == "( 5 - 12 ) * N7"  # a slot the input lacks stays: a parse error


def test_serve_model_cli_checks_its_arguments(capsys):
    with pytest.raises(SystemExit):
        cli(["serve-model", "--help"])
    out = capsys.readouterr().out
    assert "--latency-ms" in out and "--faults" not in out  # fault injection is for tests: hidden
    with pytest.raises(SystemExit) as exited:  # the flag's range is checked by argparse: exit 2, one line
        cli(["serve-model", "some/model", "--port", "0"])
    assert exited.value.code == 2
    assert "argument --port: must be in [1, 65535], not '0'" in capsys.readouterr().err
