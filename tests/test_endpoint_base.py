"""One way to add a teacher behind an endpoint (issue 26, §3): a second API is a small subclass of
:class:`EndpointTeacher`, and it gets the transport, retries with backoff, bounded concurrency, timeouts, size caps
and the key rules (issue 24, §1) without copying them.

Here: llama.cpp's native ``/completion`` JSON API (``{"prompt", "n_predict"}`` → ``{"content"}``), served by a tiny
HTTP server in this file that fails each prompt's first attempt and counts the requests in flight."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fakes import toy_task
from workbench.core.connections import Connection, SpecContext
from workbench.core.errors import TeacherError
from workbench.core.store_records import Example
from workbench.rationales.generation import generate_rationales
from workbench.rationales.teachers.base import TEACHERS, Option, TeacherRequest, get_teacher, register_teacher
from workbench.rationales.teachers.endpoint import ENDPOINT_OPTIONS, BadResponse, EndpointTeacher


# -- the whole second API: a llama.cpp server's native completion endpoint -------------------------------------
class LlamaCppTeacher(EndpointTeacher):
    """llama.cpp's ``/completion`` API: ``llamacpp:MODEL@http://127.0.0.1:8080``."""

    kind = "llamacpp"
    options = (Option("n_predict", int, 128, "longest answer, in tokens", low=1, high=8192),
               Option("temperature", float, 0.0, "0: greedy", low=0, high=2),
               *ENDPOINT_OPTIONS)
    target_hint = "MODEL@http://127.0.0.1:8080"
    default_key_env = "LLAMA_API_KEY"

    def path(self) -> str:
        return "/completion"

    def body(self, prompt: str) -> dict:
        return {"prompt": prompt, "n_predict": self.n_predict, "temperature": self.temperature, "stop": ["\nQ:"]}

    def reply_text(self, data) -> str:
        if not isinstance(data, dict) or "content" not in data:
            raise BadResponse("a reply without content", retry=False)
        return data["content"]


# -- a llama.cpp-shaped server ----------------------------------------------------------------------------------
class LlamaServer:
    """Answers ``/completion`` with the sum the prompt asks about; each prompt's first attempt gets a 503 with
    ``Retry-After: 0``. Records in-flight counts and the Authorization header of every request."""

    def __init__(self, latency: float = 0.05, fail_first: bool = True):
        self.lock, self.seen, self.auth = threading.Lock(), {}, []
        self.in_flight = self.max_in_flight = self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                with outer.lock:
                    outer.requests += 1
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                    outer.auth.append(self.headers.get("Authorization"))
                    first = outer.seen.setdefault(body["prompt"], 0) == 0
                    outer.seen[body["prompt"]] += 1
                time.sleep(latency)
                with outer.lock:
                    outer.in_flight -= 1
                if not self.path.endswith("/completion"):
                    return self._send(404, {"error": "not found"})
                if fail_first and first:
                    return self._send(503, {"error": "loading model"}, {"Retry-After": "0"})
                a, b = re.findall(r"Anne has (\d+) apples and gets (\d+)", body["prompt"])[-1]
                self._send(200, {"content": f" {a} + {b}. The answer is ({a} + {b}).", "stop": True})

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    for k, v in {"content-type": "application/json", "content-length": str(len(data)),
                                 **(headers or {})}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> LlamaServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def registered():
    register_teacher(LlamaCppTeacher)
    yield
    TEACHERS.unregister("llamacpp")


def _ask(prompt: str = "Q: Anne has 1 apples and gets 2 more.\nA:") -> list[TeacherRequest]:
    return [TeacherRequest(Example("e", "train", prompt, None), prompt)]


def test_a_second_api_generates_through_the_usual_function_with_retries_and_concurrency(store):
    task = toy_task(store, n_train=24, n_test=0)
    with LlamaServer() as server:
        spec = f"llamacpp:tiny@{server.url}?concurrency=6&max_retries=2&backoff=0.01&backoff_max=0.02"
        teacher = get_teacher(spec, store=store)
        summary = generate_rationales(store, task, teacher)
        assert summary["generated"] == 24 and summary["errors"] == 0 and summary["parse_errors"] == 0
        assert summary["teacher_accuracy"] == 1.0
        assert server.requests == 48 and teacher.stats["retries"] == 24  # each prompt: a 503, then an answer
        assert 2 <= server.max_in_flight <= 6 and teacher.stats["max_in_flight"] <= 6
        again = generate_rationales(store, task, get_teacher(spec, store=store))  # the store's cache: no request
        assert again["generated"] == 0 and server.requests == 48
    teacher.close()


def test_retries_run_out_into_row_errors_and_a_fatal_status_stops(store):
    with LlamaServer(latency=0) as server:
        teacher = get_teacher(f"llamacpp:tiny@{server.url}?max_retries=0")
        task = toy_task(store, n_train=2, n_test=0)
        summary = generate_rationales(store, task, teacher)
        assert summary["errors"] == 2
        errors = [r[0] for r in store.conn.execute("SELECT error FROM generations")]
        assert all(e.startswith("HTTP 503 after 1 attempt(s)") for e in errors)
        wrong_path = type("Wrong", (LlamaCppTeacher,), {"kind": "wrong", "path": lambda self: "/nope"})
        with pytest.raises(TeacherError, match="does not know this model or path"):
            wrong_path(f"tiny@{server.url}", max_retries="3").answer(_ask())


def test_the_key_rules_hold_for_every_api(monkeypatch):
    """The owner's CLI sends the API's default key variable; from the app a typed URL is sent none, key_env is
    refused, and a connection sends its own key, to its own address."""
    monkeypatch.setenv("LLAMA_API_KEY", "owner-key")
    monkeypatch.setenv("ADMIN_LLAMA_KEY", "admin-key")
    with LlamaServer(latency=0, fail_first=False) as server:
        app = SpecContext("app", (Connection("gpu", server.url + "/", "tiny", key_env="ADMIN_LLAMA_KEY",
                                             kind="llamacpp"),))
        ask = _ask()
        get_teacher(f"llamacpp:tiny@{server.url}/v1").answer(ask)  # the owner: their default variable
        get_teacher(f"llamacpp:tiny@{server.url}/v1", context=app).answer(ask)  # typed in the app: no key
        get_teacher("llamacpp:@conn:gpu", context=app).answer(ask)  # the admin's connection: its key
        with pytest.raises(TeacherError, match="key_env is not accepted from the app"):
            get_teacher(f"llamacpp:tiny@{server.url}/v1?key_env=LLAMA_API_KEY", context=app)
        with pytest.raises(TeacherError, match="is the connection 'gpu'"):
            get_teacher(f"llamacpp:tiny@{server.url}", context=app)  # its address typed: use the connection
    assert server.auth == ["Bearer owner-key", None, "Bearer admin-key"]
