"""Hostile and careless input (issue 16): each case broke before its fix, and each is a clear one-line message, a
per-row error or a bounded answer now — never a traceback, never lost or half-written data.

Endpoints here are raw HTTP servers (:class:`RawEndpoint`) that answer what a broken or hostile server would; the
full-disk cases are in ``test_faults.py``, the fuzzed families (surrogates, odd replies, special files) in
``test_fuzz_inputs.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import toy_task
from workbench.cli import main as cli
from workbench.core.errors import ConfigError, ImportDataError, RunError, TeacherError, WorkbenchError
from workbench.core.store import Store
from workbench.data.metrics import EquationError, evaluate_equation
from workbench.data.tasks import load_task
from workbench.imports.custom import ColumnMapping, import_custom
from workbench.imports.paper import import_paper
from workbench.rationales.generation import generate_rationales
from workbench.rationales.teachers import get_teacher

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-Zq9XvT3mPw8KyR2nB7"


# -- a raw endpoint ----------------------------------------------------------------------------------------------
class RawEndpoint:
    """An OpenAI-shaped endpoint on 127.0.0.1 that answers whatever ``reply(n, body, headers)`` returns:
    ``(status, body bytes)``, or ``(status, chunks)`` with an iterable of byte chunks sent without a length
    (chunked), or ``(status, body, declared_length)``. Counts requests; ``sent`` is the body bytes written."""

    def __init__(self, reply):
        self.reply, self.requests, self.sent, self.release = reply, 0, 0, threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                with outer._lock:
                    n, outer.requests = outer.requests, outer.requests + 1
                status, data, *declared = outer.reply(n, body, self.headers)  # case-insensitive
                with contextlib.suppress(OSError):  # the client may hang up on purpose (a capped reply)
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    if isinstance(data, bytes):
                        self.send_header("content-length", str(declared[0] if declared else len(data)))
                        self.end_headers()
                        self._send(data)
                    else:
                        self.send_header("transfer-encoding", "chunked")
                        self.end_headers()
                        for chunk in data:
                            self._send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self._send(b"0\r\n\r\n")

            def _send(self, data: bytes) -> None:
                self.wfile.write(data)
                with outer._lock:
                    outer.sent += len(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> RawEndpoint:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()  # handlers told to hang return now
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_reply(content) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]}).encode()


GOOD = chat_reply("She has 1 and gets 2 more. The answer is (1 + 2).")
FAST = "max_retries=0&timeout=10&max_tokens=16&concurrency=8"


def _example_index(body: dict) -> int:
    """toy_task's example i has ``Anne has i+1 apples``: which example a prompt is about."""
    text = json.dumps(body)
    return int(text.split("Anne has ")[-1].split(" ")[0]) - 1


# -- 2. the API key is blanked before details are cut ------------------------------------------------------------
def test_an_echoed_key_is_blanked_at_every_offset_around_the_cut(store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    n = 140  # the key lands at every offset from well before the 200-character cut to well after it

    def echo(i, body, headers):
        pad = "x" * (100 + _example_index(body))
        return 500, json.dumps({"error": {"message": f"{pad} your header was {headers.get('Authorization')}"}}
                               ).encode()

    task = toy_task(store, n_train=n, n_test=0)
    with RawEndpoint(echo) as ep:
        summary = generate_rationales(store, task, get_teacher(f"openai:m@{ep.url}?{FAST}"))
    assert summary["errors"] == n
    errors = [r[0] for r in store.conn.execute("SELECT error FROM generations")]
    assert len(errors) == n and all(e.startswith("HTTP 500") for e in errors)
    fragments = {SECRET[i:i + 4] for i in range(len(SECRET) - 3)} - {"sk-Z"}
    assert not [e for e in errors if any(f in e for f in fragments)], "part of the key was stored"
    assert sum("***" in e for e in errors) > 0  # the whole key, where it fitted, is shown blanked
    raw = (store.workspace / "workbench.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in store.workspace.glob("workbench.sqlite-*"))
    assert SECRET[4:12].encode() not in raw


# -- 8. odd replies are per-row errors; replies are size-capped --------------------------------------------------
ODD = [json.dumps({"choices": [{"foo": 1}]}).encode(), chat_reply(12345), json.dumps({"choices": "x"}).encode(),
       json.dumps({"choices": [{"message": None}]}).encode(), GOOD]


def test_odd_replies_are_per_row_errors_the_batch_is_kept_and_a_rerun_fills_them(store):
    task = toy_task(store, n_train=10, n_test=0)
    with RawEndpoint(lambda i, body, h: (200, ODD[_example_index(body) % len(ODD)])) as ep:
        summary = generate_rationales(store, task, get_teacher(f"openai:m@{ep.url}?{FAST}"))
        assert summary["generated"] == 10 and summary["errors"] == 8  # every row stored: 8 errors, 2 answers
        reasons = {r[0].split(" after ")[0] for r in store.conn.execute("SELECT error FROM generations WHERE "
                                                                       "error IS NOT NULL")}
        assert reasons == {"a choice without a message", "the answer is not text (int)",
                           "'choices' is a str, not a list"}
        ep.reply = lambda i, body, h: (200, GOOD)  # the endpoint is fixed: a re-run asks for the failed rows only
        again = generate_rationales(store, task, get_teacher(f"openai:m@{ep.url}?{FAST}"))
        assert ep.requests == 18
    assert again["generated"] == 8 and again["errors"] == 0 and again["skipped"] == 2


def test_huge_replies_are_capped_per_row_and_never_read_whole(store):
    big = 50 * 1024 * 1024
    chunk = b"x" * (1 << 20)
    replies = {0: lambda: (200, b"{" + b" " * (big - 2) + b"}"),  # declares 50 MB: refused on its header
               1: lambda: (200, (chunk for _ in range(50))),  # 50 MB without a length: cut at the cap
               2: lambda: (200, chat_reply("y" * 1_500_000)),  # fits the body cap, not the answer cap
               3: lambda: (200, GOOD)}
    task = toy_task(store, n_train=4, n_test=0)
    with RawEndpoint(lambda i, body, h: replies[_example_index(body)]()) as ep:
        summary = generate_rationales(store, task, get_teacher(f"openai:m@{ep.url}?{FAST}"))
        assert ep.sent < 30 * 1024 * 1024  # of the 100 MB offered, the client read at most its caps
    assert summary["generated"] == 4 and summary["errors"] == 3 and summary["parsed"] == 1
    errors = sorted(r[0] for r in store.conn.execute("SELECT error FROM generations WHERE error IS NOT NULL"))
    assert [e.split(" after ")[0] for e in errors] == ["answer longer than 1,000,000 characters",
                                                       "reply too large", "reply too large"]
    store.close()
    assert (store.workspace / "workbench.sqlite").stat().st_size < 2 * 1024 * 1024


# -- 12. a hung endpoint is bounded by the timeout ---------------------------------------------------------------
def test_a_hung_endpoint_costs_the_timeout_not_forever(store):
    for bad in ("timeout=inf", "timeout=nan", "timeout=0", "timeout=-1"):
        with pytest.raises((TeacherError, ConfigError)):
            get_teacher(f"openai:m@http://127.0.0.1:9/v1?{bad}")
    task = toy_task(store, n_train=2, n_test=0)
    with RawEndpoint(lambda i, body, h: (ep.release.wait(60), (200, GOOD))[1]) as ep:
        started = time.monotonic()
        summary = generate_rationales(store, task, get_teacher(
            f"openai:m@{ep.url}?timeout=0.5&max_retries=1&backoff=0&backoff_max=0"))
        took = time.monotonic() - started
    assert summary["errors"] == 2 and took < 6
    assert all(r[0].startswith("timeout after 2 attempt(s)") for r in store.conn.execute("SELECT error FROM generations"))


# -- 5. concurrent generation never answers an example twice -----------------------------------------------------
def _generate_cmd(workspace: Path, spec: str, limit: int) -> list[str]:
    return [sys.executable, "-m", "workbench", "--workspace", str(workspace), "generate", "--task", "wordproblems",
            "--teacher", spec, "--limit", str(limit), "--json"]


def test_two_generate_processes_share_the_work_and_pay_once(tmp_path):
    store = Store.open(tmp_path / "ws")
    load_task("wordproblems", store, n_train=160, n_valid=4, n_test=4)

    def slow(i, body, headers):
        time.sleep(0.05)
        return 200, GOOD

    with RawEndpoint(slow) as ep:
        spec = f"openai:m@{ep.url}?concurrency=4&batch_size=8&max_retries=0&timeout=10"
        procs = [subprocess.Popen(_generate_cmd(store.workspace, spec, 160), cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        asked = ep.requests
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sum(r["generated"] for r in results) == 160 == asked  # each example asked once, by one process
    assert all(r["generated"] > 0 for r in results)  # they overlapped and both worked
    per_example = store.conn.execute("SELECT COUNT(*) FROM generations GROUP BY example_id").fetchall()
    assert len(per_example) == 160 and {n for (n,) in per_example} == {1}
    assert store.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_the_claims_of_a_killed_generate_expire_with_it(tmp_path):
    store = Store.open(tmp_path / "ws")
    task = load_task("wordproblems", store, n_train=24, n_valid=4, n_test=4)
    with RawEndpoint(lambda i, body, h: (ep.release.wait(60), (200, GOOD))[1]) as ep:  # never answers in time
        spec = f"openai:m@{ep.url}?concurrency=8&batch_size=8&max_retries=0&timeout=60"
        proc = subprocess.Popen(_generate_cmd(store.workspace, spec, 24), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        teacher = get_teacher(spec, store=store)
        from workbench.rationales.generation import settings_key

        key = (task.name, teacher.id, task.template().hash, settings_key(teacher))
        deadline = time.monotonic() + 60
        while not store.claimed_example_ids(*key):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert len(store.claimed_example_ids(*key)) == 8  # its first batch, in flight
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert store.claimed_example_ids(*key) == {}  # dead owner: its claims hold nothing up
        ep.reply = lambda i, body, h: (200, GOOD)
        summary = generate_rationales(store, task, get_teacher(spec, store=store))
    assert summary["generated"] == 24 and summary["skipped"] == 0
    assert store.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


# -- 3 and 4. one owner per run; a killed run reads interrupted --------------------------------------------------
TRAINER = textwrap.dedent("""
    import sys, time
    from workbench.core.store import Store
    from workbench.distill.runs import train_student

    def slowly():  # polled once a step: the run lasts until it is killed, without taking the CPU
        time.sleep(0.05)
        return False

    store = Store.open(sys.argv[1])
    train_student(store, dict(task="wordproblems", method="standard", student="tiny", run="owned", steps=2000,
                              batch_size=4, save_every=5, max_target_len=32, test_limit=4, eval_every=0),
                  should_stop=slowly)
""")


@pytest.fixture(scope="module")
def train_ws(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("owner") / "ws")
    load_task("wordproblems", store, n_train=32, n_valid=4, n_test=4)
    return store


def _wait(predicate, proc, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the training process exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


def test_a_run_has_one_owner_and_a_killed_one_reads_interrupted(train_ws, capsys):
    from workbench.distill.runfolder import RunFolder
    from workbench.distill.runs import check_resumable, list_runs, resume_run

    store = train_ws
    proc = subprocess.Popen([sys.executable, "-c", TRAINER, str(store.workspace)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    folder = RunFolder.of(store, "owned")
    try:
        _wait(lambda: folder.last_complete_checkpoint() is not None, proc, "checkpoint")
        assert store.run_row("owned")["status"] == "running"
        # 3. A second owner is refused, by the library and by the CLI, and nothing is written twice.
        with pytest.raises(RunError, match="being trained by another process"):
            resume_run(store, "owned")
        code = cli(["--workspace", str(store.workspace), "train", "--resume", "owned"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "being trained by another process" in err
        assert f"pid {proc.pid}" in err
        with pytest.raises(RunError, match="is running"):
            check_resumable(store, "owned")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # 4. Killed: every reader says interrupted (the CLI, the store's index, the library the app reads).
    assert cli(["--workspace", str(store.workspace), "runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
    assert [(r["name"], r["status"]) for r in listed] == [("owned", "interrupted")]
    assert "--resume owned" in listed[0]["summary"]["note"]
    assert [r["status"] for r in store.list_runs()] == [r["status"] for r in list_runs(store)] == ["interrupted"]
    assert check_resumable(store, "owned") == "interrupted"
    resumed = resume_run(store, "owned", should_stop=lambda: True)  # resumes, then stops at its first step
    assert resumed["status"] == "cancelled" and store.run_row("owned")["status"] == "cancelled"


def test_a_run_killed_by_sigterm_reads_interrupted(train_ws, capsys):
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "--workspace", str(train_ws.workspace), "train",
                             "--task", "wordproblems", "--method", "standard", "--student", "tiny", "--steps", "3000",
                             "--batch-size", "4", "--run", "termed", "--quiet"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _wait(lambda: "termed" in {r["name"] for r in train_ws.list_runs()}, proc, "a running run")
        assert train_ws.run_row("termed")["status"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert train_ws.run_row("termed")["status"] == "interrupted"
    assert cli(["--workspace", str(train_ws.workspace), "runs"]) == 0
    assert any(line.split()[:2] == ["termed", "interrupted"] for line in capsys.readouterr().out.splitlines())


# -- 7. built-in task names are reserved -------------------------------------------------------------------------
def test_built_in_task_names_are_reserved(tmp_path, capsys):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("text,label\na,yes\nb,no\n", encoding="utf-8")
    ws = str(tmp_path / "ws")
    assert cli(["--workspace", ws, "task-add", "wordproblems", str(csv_path), "--input", "text"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "built-in task" in err
    assert cli(["--workspace", ws, "import-paper", str(tmp_path), "--task", "svamp", "--name", "quantnli"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "built-in task" in err
    assert Store.open(ws).list_tasks() == []  # nothing was stored under either name
    assert not (Path(ws) / "uploads").exists() or not any((Path(ws) / "uploads").iterdir())


# -- 9. bytes that are not UTF-8, lone surrogates, UTF-16 ---------------------------------------------------------
def _uploads(store: Store) -> list[str]:
    folder = store.workspace / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("data,fmt,match", [
    (b"caf\xe9,label\nq,yes\n", ".csv", r"header row has bytes that are not UTF-8 \(column 'caf\\xe9'\)"),
    ("text,label\nis 1 > 2?,no\n".encode("utf-16"), ".csv", "looks like UTF-16, not UTF-8; save it as UTF-8"),
    ("text,label\nis 1 > 2?,no\n".encode("utf-16-le"), ".csv", "looks like UTF-16"),
    ("text\tlabel\nx\ty\n".encode("utf-32"), ".tsv", "looks like UTF-32"),
])
def test_a_file_that_is_not_utf8_is_named_as_such(tmp_path, store, data, fmt, match):
    path = tmp_path / f"f{fmt}"
    path.write_bytes(data)
    with pytest.raises(ImportDataError, match=match) as info:
        import_custom(store, "enc", path, ColumnMapping(inputs=("text",), label="label"))
    str(info.value).encode("utf-8")  # a message that is valid UTF-8 text
    assert not store.has_task("enc") and _uploads(store) == []


def test_lone_surrogates_in_jsonl_are_rejected_per_row(tmp_path, store):
    lines = ['{"text": "\\ud800", "label": "a"}', '{"text": "fine", "\\udfff key": 1, "label": "b"}',
             '{"text": "ok \\ud83d\\ude00", "label": "a"}', '{"text": "also fine", "label": "b"}']
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = import_custom(store, "sur", path, ColumnMapping(inputs=("text",), label="label"))
    assert sum(result["examples"].values()) == 2 and result["rejected"] == 2
    assert [(e["line"], e["reason"]) for e in result["errors"]] == [
        (1, "a lone surrogate (such as \\ud800), which is not valid Unicode text"),
        (2, "a lone surrogate (such as \\ud800), which is not valid Unicode text in the key '\\udfff key'")]
    assert store.example("sur", "line-3").input == "ok \U0001f600"  # a real pair is a real character
    path.write_text(lines[0], encoding="utf-8")
    with pytest.raises(ImportDataError, match="no row could be imported") as info:
        import_custom(store, "sur2", path, ColumnMapping(inputs=("text",), label="label"))
    str(info.value).encode("utf-8")
    assert not store.has_task("sur2") and len(_uploads(store)) == 1  # only sur's copy


def test_the_store_refuses_a_lone_surrogate_with_a_message(store):
    from workbench.core.errors import StoreError
    from workbench.core.store import Example

    with pytest.raises(StoreError, match="not valid Unicode"):
        store.add_task("t", source="x", answer_kind="text", labels=None, template="generic-text", spec={},
                       examples=[Example("a", "train", "\ud800", None, {})])
    assert not store.has_task("t") and store.integrity_check() == []


# -- 10. import-paper reads only regular files ---------------------------------------------------------------------
SPECIALS = ["dangling symlink", "directory", "fifo", "dev zero", "huge"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", SPECIALS)
def test_paper_llm_entries_that_are_not_regular_files_are_refused(tmp_path, store, kind):
    folder = tmp_path / "svamp"
    (folder / "llm").mkdir(parents=True)
    (folder / "svamp_train.json").write_text('{"input": "Tom has 3. How many?", "label": "( 3 + 0 )"}\n')
    entry = folder / "llm" / "train_CoT_0.json"
    if kind == "dangling symlink":
        entry.symlink_to(tmp_path / "gone.json")
    elif kind == "directory":
        entry.mkdir()
    elif kind == "fifo":
        os.mkfifo(entry)  # nobody writes: reading it would wait for ever
    elif kind == "dev zero":
        entry.symlink_to("/dev/zero")
    else:  # sparse: it takes no disk space, and it is never read
        from workbench.imports.files import MAX_FILE_BYTES

        with open(entry, "wb") as f:
            f.truncate(MAX_FILE_BYTES + 1)
    expected = {"dangling symlink": "a symlink to a missing file", "directory": "is a directory",
                "fifo": "is a FIFO", "dev zero": "is a character device", "huge": "more than the"}[kind]
    with pytest.raises(ImportDataError, match=expected):
        import_paper(store, folder, "svamp")
    assert not store.has_task("svamp")


# -- 11. serve-model: bounded prompts, checked sampling values ----------------------------------------------------
@pytest.fixture(scope="module")
def served_run(tmp_path_factory):
    """A run folder (from-scratch seq2seq student: relative positions, no length of its own) behind the server."""
    from workbench.distill.config import TrainConfig
    from workbench.models.loading import save_random_checkpoint
    from workbench.serving import ServerThread, create_app, resolve_model

    ws = tmp_path_factory.mktemp("serve") / "ws"
    run = ws / "runs" / "r"
    save_random_checkpoint(run / "model", "seq2seq")
    cfg = TrainConfig(task="wordproblems", method="dss", teacher="builtin", max_input_len=64)
    (run / "config.json").write_text(json.dumps({"config": cfg.to_dict()}))
    (run / "trainingset.jsonl").write_text("")
    causal = save_random_checkpoint(ws / "causal", "causal", max_positions=128)
    with ServerThread(create_app(resolve_model("run:r", ws))) as run_server, \
            ServerThread(create_app(resolve_model(causal))) as ckpt_server:
        yield run_server.url, ckpt_server.url


def _post(url: str, body, path: str = "/completions"):
    import httpx

    data = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return httpx.post(url + path, content=data, headers={"content-type": "application/json"}, timeout=120)


def test_megabyte_prompts_are_cut_to_what_the_model_reads(served_run):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for url, model in zip(served_run, ("r", "causal")):
        for size in (1_000_000, 10_000_000):
            reply = _post(url, {"model": model, "prompt": "Tom has 3 apples and 4 pears. " * (size // 30),
                                "max_tokens": 4})
            assert reply.status_code == 200, reply.text
            choice = reply.json()["choices"][0]
            assert isinstance(choice["text"], str)
            assert reply.json()["usage"]["prompt_tokens"] <= 128
        chat = _post(url, {"model": model, "messages": [{"role": "user", "content": "x " * 2_000_000}],
                           "max_tokens": 4}, "/chat/completions")
        assert chat.status_code == 200, chat.text
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 600, f"serving long prompts grew the peak memory by {grown_mb:.0f} MB"
    assert _post(served_run[0], b"{" + b" " * (33 * 1024 * 1024) + b"}").status_code == 413


BAD_SAMPLING = [({"max_tokens": -5}, "max_tokens"), ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 10**6}, "max_tokens"),
                ({"top_p": -1}, "top_p"), ({"top_p": 0}, "top_p"), ({"seed": 1e30}, "seed"), ({"seed": -1}, "seed"),
                ({"temperature": float("nan"), "n": 2}, "temperature"), ({"temperature": float("inf")}, "temperature"),
                ({"temperature": -0.5}, "temperature"), ({"n": 2, "temperature": 0}, "n > 1"), ({"n": 0}, "n"),
                ({"n": True}, "n"), ({"stop": [1, 2]}, "stop"), ({"prompt": [1, 2, 3]}, "prompt"), ({"prompt": ""}, None),
                ({"prompt": "\ud800"}, "lone surrogate"), ({"model": 5}, "model"), ({"max_tokens": "8"}, "max_tokens")]


@pytest.mark.parametrize("fields,named", BAD_SAMPLING)
def test_out_of_range_sampling_values_are_400_with_a_message(served_run, fields, named):
    body = {"model": "r", "prompt": "Tom has 3 apples.", "max_tokens": 4, **fields}
    reply = _post(served_run[0], body)
    if named is None:  # an empty prompt is a prompt
        assert reply.status_code == 200
        return
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert message.startswith("bad request: ") and named in message


sampling_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.sampled_from([10**6, 2**70, 1e30]),
                            st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                            st.lists(st.integers(0, 3), max_size=2))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(fields=st.dictionaries(st.sampled_from(["n", "temperature", "top_p", "max_tokens", "seed", "stop"]),
                              sampling_values, max_size=4), chat=st.booleans())
def test_any_sampling_values_are_an_answer_or_a_400_never_a_500(served_run, fields, chat):
    body = {"model": "r", "max_tokens": 2, **fields}
    if chat:
        reply = _post(served_run[0], {**body, "messages": [{"role": "user", "content": "Tom has 3."}]},
                      "/chat/completions")
    else:
        reply = _post(served_run[0], {**body, "prompt": "Tom has 3."})
    assert reply.status_code in (200, 400), reply.text
    if reply.status_code == 400:
        assert reply.json()["error"]["message"].startswith("bad request: ")


def test_a_lone_surrogate_prompt_is_a_400_in_json(served_run):
    for url in served_run:
        raw = b'{"model": "m", "prompt": "\\ud800 and more"}'
        reply = _post(url, raw)
        assert reply.status_code == 400 and "lone surrogate" in reply.json()["error"]["message"]
        chat = _post(url, b'{"messages": [{"role": "user", "content": "\\udcff"}]}', "/chat/completions")
        assert chat.status_code == 400 and chat.headers["content-type"] == "application/json"
        assert _post(url, b'{"prompt": "caf\xe9"}').status_code == 400  # a body that is not UTF-8


def test_max_tokens_zero_is_refused_not_turned_into_128(served_run):
    from workbench.serving.app import sampling_params

    assert sampling_params({})[3] == 128  # omitted: the default
    with pytest.raises(ValueError, match="max_tokens must be a whole number from 1 to 1024, not 0"):
        sampling_params({"max_tokens": 0})
    assert _post(served_run[1], {"prompt": "x", "max_tokens": 200}).status_code == 400  # more than 128 positions


# -- 12. smaller ones ----------------------------------------------------------------------------------------------
def test_serve_with_an_empty_auth_is_one_line(tmp_path, capsys):
    for auth in (":", "user:", ":pass", "nocolon"):
        code = cli(["--workspace", str(tmp_path / "ws"), "serve", "--port", "7", "--auth", auth])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "USER:PASSWORD" in err, err


@contextlib.contextmanager
def _taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_app_py_on_a_taken_port_is_one_line(tmp_path, capsys):
    sys.path.insert(0, str(ROOT))
    try:
        import app
    finally:
        sys.path.remove(str(ROOT))
    with _taken_port() as port:
        code = app.main(["--workspace", str(tmp_path / "ws"), "--port", str(port)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("app.py: error: cannot listen on 127.0.0.1:") and "Traceback" not in err


def test_serve_model_on_a_taken_port_says_so_before_serving(tmp_path, capsys):
    from workbench.models.loading import save_random_checkpoint

    model = save_random_checkpoint(tmp_path / "m", "causal")
    with _taken_port() as port:
        code = cli(["serve-model", model, "--port", str(port)])
    err = capsys.readouterr().err
    last = err.splitlines()[-1]  # after the checkpoint's own progress bar
    assert code == 2 and last.startswith(f"workbench serve-model: error: cannot listen on 127.0.0.1:{port} ")
    assert "serving" not in err


def test_an_edit_with_an_absurd_generation_id_is_a_clear_error(store):
    from workbench.rationales.review import current_state, edit_generation, set_status

    task = toy_task(store, n_train=2, n_test=0)
    generate_rationales(store, task, get_teacher("fake"))
    for gid in (1e20, 2**63, -3, 0, 2.5, float("nan"), "x", None):
        with pytest.raises(ConfigError, match="a generation id is a whole number"):
            edit_generation(store, gid, rationale="r")
        with pytest.raises(ConfigError):
            current_state(store, gid)
        with pytest.raises(ConfigError):
            set_status(store, [1, gid], "accepted")
    assert edit_generation(store, 1.0, label="( 1 + 3 )")["label"] == "( 1 + 3 )"  # gr.Number gives floats
    with pytest.raises(WorkbenchError, match="unknown generation"):
        edit_generation(store, 999, label="x")


def test_a_flat_sum_is_not_deep_but_deep_parentheses_are():
    assert evaluate_equation("+".join(["1"] * 101)) == 101
    assert evaluate_equation("-".join(["1"] * 250)) == 1 - 249
    assert evaluate_equation("(" * 50 + "2" + ")" * 50) == 2
    with pytest.raises(EquationError, match="nested too deeply"):
        evaluate_equation("(" * 51 + "2" + ")" * 51)
    with pytest.raises(EquationError, match="longer than"):
        evaluate_equation("+".join(["1"] * 300))


@pytest.mark.parametrize("text,line,reason", [
    ('text,label\nfine,no\n"unclosed,yes\nok,yes\n', 3, "unclosed quote starting on line 3 (it runs to the end"),
    ('text,label\nfine,no\n"a\nb,yes\nc,no\nlast",yes,x\nend,no\n', 3, "a quote opened on line 3 closes only on line 6"),
    ('text,label\nfine,no\ntoo,many,fields\n', 3, "expected 2 fields, found 3"),
])
def test_unbalanced_csv_quotes_are_reported_as_such(tmp_path, store, text, line, reason):
    path = tmp_path / "q.csv"
    path.write_text(text, encoding="utf-8")
    result = import_custom(store, "q", path, ColumnMapping(inputs=("text",), label="label"))
    assert [(e["line"], e["reason"][:len(reason)]) for e in result["errors"]] == [(line, reason)]


def test_an_unclosed_quote_in_the_header_is_named(tmp_path, store):
    path = tmp_path / "h.csv"
    path.write_text('text,"label\na,yes\n', encoding="utf-8")
    with pytest.raises(ImportDataError, match="the header row has an unclosed quote"):
        import_custom(store, "h", path, ColumnMapping(inputs=("text",)))


def test_every_message_here_is_valid_utf8():
    """The messages above are str; this pins down that printable() is what makes them encodable."""
    from workbench.core.surrogates import printable

    for text in ("caf\udce9", "\ud800", "ok", "\udcff\udcfeq"):
        printable(text).encode("utf-8")
    out = io.StringIO()
    print(printable("\udcff\udcfeq"), file=out)
    assert out.getvalue() == "\\xff\\xfeq\n"
