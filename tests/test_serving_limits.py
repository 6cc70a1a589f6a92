"""``serve-model`` under load and hostile clients (issue 24, part 2): bounded memory per request and in flight,
a client that leaves stops its generation, SIGTERM stops the server within 5 s, every error is OpenAI's error
JSON, ``stream: true`` streams, and a catalog name is served offline.

Servers here serve a tiny random checkpoint (built in the test) with a ChatML template like SmolLM2's; a *slow*
server's model sleeps at every forward pass and never ends an answer by itself, so a long generation is really
in progress when a client leaves or SIGTERM arrives. The last tests run ``workbench serve-model`` as a process.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workbench.models.loading import save_random_checkpoint
from workbench.serving import ServerThread, create_app, resolve_model
from workbench.serving.limits import Limits

ROOT = Path(__file__).resolve().parents[1]
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
          "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SMALL = Limits(max_prompt_tokens=64, max_tokens=16, max_n=2, max_tokens_in_flight=300)
EOS = 1  # save_random_checkpoint's "</s>"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return save_random_checkpoint(tmp_path_factory.mktemp("serving") / "tiny", "causal", chat_template=CHATML,
                                  max_positions=2048)


def slow_and_endless(forward, delay: float):
    """``forward`` that sleeps ``delay`` s first and never picks end-of-sequence: a generation that takes
    max_tokens × delay at least."""

    @functools.wraps(forward)  # generate() reads forward's signature
    def slowed(*args, **kwargs):
        time.sleep(delay)
        out = forward(*args, **kwargs)
        out.logits[..., EOS] = float("-inf")
        return out

    return slowed


@pytest.fixture(scope="module")
def plain(tiny):
    app = create_app(resolve_model(tiny), limits=SMALL)
    with ServerThread(app) as server:
        yield server, app.state.workbench


@pytest.fixture(scope="module")
def slow(tiny):
    served = resolve_model(tiny)
    served.teacher.loaded.model.forward = slow_and_endless(served.teacher.loaded.model.forward, 0.03)
    app = create_app(served, limits=Limits(max_tokens=1000, max_tokens_in_flight=1500))
    with ServerThread(app) as server:
        yield server, app.state.workbench


def post(server, body, path: str = "/completions", timeout: float = 120):
    data = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return httpx.post(server.url + path, content=data, headers={"content-type": "application/json"},
                      timeout=timeout)


def stats(server) -> dict:
    return httpx.get(server.url.removesuffix("/v1") + "/_workbench/stats", timeout=30).json()


def openai_error(reply) -> dict:
    """The reply's OpenAI error, checked for shape: a 4xx in JSON with exactly message, type, param and code."""
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text)
    assert reply.headers["content-type"] == "application/json", reply.headers
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str), error
    return error


# -- 1. memory bounded: per request and in flight -------------------------------------------------------------
@pytest.mark.parametrize("body,path,status,flag,limit,param", [
    ({"prompt": "Tom has", "max_tokens": 17}, "/completions", 400, "--max-tokens", "16", "max_tokens"),
    ({"prompt": "Tom has", "n": 3, "temperature": 1, "max_tokens": 2}, "/completions", 400, "--max-n", "2", "n"),
    ({"prompt": "Tom has 3 apples . " * 20, "max_tokens": 2}, "/completions", 413, "--max-prompt-tokens", "64",
     "prompt"),
    # 40 words fit as a prompt, not once the chat template has wrapped them: counted after the template
    ({"messages": [{"role": "user", "content": "Tom has 3 apples . " * 10}], "max_tokens": 2}, "/chat/completions",
     413, "--max-prompt-tokens", "64", "messages"),
    # 40 prompt tokens fit, but 8 prompts × 2 samples × (5 + 16) positions do not
    ({"prompt": ["Tom has 3 apples ."] * 8, "max_tokens": 16, "n": 2, "temperature": 1}, "/completions", 413,
     "--max-tokens-in-flight", "300", "max_tokens"),
])
def test_a_request_over_a_limit_is_refused_naming_the_limit_and_its_flag(plain, body, path, status, flag, limit,
                                                                        param):
    server, state = plain
    reply = post(server, body, path)
    assert reply.status_code == status, reply.text
    error = openai_error(reply)
    assert flag in error["message"] and limit in error["message"] and error["param"] == param, error
    assert state.budget.in_flight == 0  # nothing reserved for a refused request


def test_the_same_text_as_a_prompt_fits_and_the_limits_have_help(plain, capsys):
    server, _ = plain
    assert post(server, {"prompt": "Tom has 3 apples . " * 10, "max_tokens": 2}).status_code == 200
    from workbench.cli import main

    with pytest.raises(SystemExit):
        main(["serve-model", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--max-prompt-tokens", "8,192"), ("--max-tokens", "1,024"), ("--max-n", "16"),
                          ("--max-tokens-in-flight", "32,768")):
        assert flag in out and f"(default {default})" in out


def test_in_flight_tokens_are_bounded_across_requests_and_given_back(slow):
    server, state = slow
    long = _raw_request(server.port, {"prompt": "Tom has", "max_tokens": 1000})  # ~1,003 of 1,500 positions
    _wait_for(lambda: state.budget.in_flight > 0)
    busy = post(server, {"prompt": "Tom has", "max_tokens": 600})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    error = openai_error(busy)
    assert "--max-tokens-in-flight" in error["message"] and "1,500" in error["message"]
    assert error["code"] == "rate_limit_exceeded"
    long.close()  # the client leaves: its positions come back at once
    _wait_for(lambda: state.budget.in_flight == 0)
    assert stats(server)["tokens_in_flight_peak"] <= 1500


# -- 2. a client that leaves ----------------------------------------------------------------------------------
def _raw_request(port: int, body: dict, path: str = "/v1/completions") -> socket.socket:
    """A real client: a socket that sends the request and reads nothing (the test closes it)."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_stops_its_generation_and_blocks_nobody(slow, capfd, stream):
    server, state = slow
    before = stats(server)
    generated = state.served.teacher.stats["generated_tokens"]
    # 1,000 tokens at ≥ 30 ms each: half a minute of work, unless it stops when its client goes
    with _logged("uvicorn", "uvicorn.error", "asyncio") as records:
        client = _raw_request(server.port, {"prompt": "Tom has", "max_tokens": 1000, "stream": stream})
        _wait_for(lambda: state.budget.in_flight > 0)
        time.sleep(0.5)  # generating now
        client.close()
        started = time.monotonic()
        reply = post(server, {"prompt": "Anne has", "max_tokens": 3})
        waited = time.monotonic() - started
        _wait_for(lambda: state.budget.in_flight == 0)
    assert reply.status_code == 200 and waited < 10, f"another client waited {waited:.1f} s"
    after = stats(server)
    assert after["cancelled_rows"] == before["cancelled_rows"] + 1
    assert after["statuses"].get("499", 0) == before["statuses"].get("499", 0) + 1
    assert state.served.teacher.stats["generated_tokens"] - generated < 500  # stopped long before its 1,000
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and not records, [r.getMessage() for r in records]


@contextlib.contextmanager
def _logged(*names: str):
    """Warnings and errors these loggers emit within the block (uvicorn's do not reach pytest's caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


# -- 4. every error is OpenAI's error JSON ----------------------------------------------------------------------
@pytest.mark.parametrize("body,path,param", [
    ({"messages": [{"content": "Tom has 3 apples"}]}, "/chat/completions", "messages[0].role"),  # no role
    ({"messages": [{"role": {"nested": "json"}, "content": "x"}]}, "/chat/completions", "messages[0].role"),
    ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "/chat/completions", "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}, "/chat/completions",
     "messages[0].content"),
    ({"messages": "Tom has 3 apples"}, "/chat/completions", "messages"),
    ({"messages": [["user", "x"]]}, "/chat/completions", "messages[0]"),
    ({"prompt": {"text": "x"}}, "/completions", "prompt"),
    ({"prompt": "x", "model": ["tiny"]}, "/completions", "model"),
    ({"prompt": "x", "stop": [["\n"]]}, "/completions", "stop"),
    ({"prompt": "x", "stream": "yes"}, "/completions", "stream"),
    ({"prompt": "x", "stream": True, "stream_options": [1]}, "/completions", "stream_options"),
    ({"prompt": "x", "n": "2"}, "/completions", "n"),
    ({"prompt": "x", "logprobs": 5}, "/completions", "logprobs"),
    ({"prompt": "x", "echo": True}, "/completions", "echo"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, "/chat/completions", "tools"),
    ([{"prompt": "x"}], "/completions", None),
    (b"\xff\xfe{", "/completions", None),
    (b"[" * 100_000, "/completions", None),
])
def test_a_wrong_shape_anywhere_is_a_400_naming_the_field(plain, body, path, param):
    reply = post(plain[0], body, path)
    assert reply.status_code == 400, reply.text
    error = openai_error(reply)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"].startswith("bad request: ")


def test_unknown_routes_and_methods_answer_openai_errors(plain):
    server, _ = plain
    base = server.url.removesuffix("/v1")
    assert openai_error(httpx.get(f"{base}/v1/nope"))["code"] == "not_found"
    assert openai_error(httpx.get(f"{server.url}/completions"))["code"] == "method_not_allowed"
    assert openai_error(httpx.put(f"{server.url}/chat/completions", content=b"{}"))["code"] == "method_not_allowed"


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
messages = st.lists(st.fixed_dictionaries({}, optional={
    "role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool", "developer", "bot"]), json_values),
    "content": st.one_of(st.text(max_size=30), json_values,
                         st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]),
                                                         "text": st.one_of(st.text(max_size=8), json_values)}),
                                  max_size=2)),
    "name": json_values}), max_size=3)
FIELDS = {"model": st.one_of(st.just("tiny"), json_values), "prompt": st.one_of(st.text(max_size=40),
          st.lists(st.text(max_size=10), max_size=3), json_values), "messages": st.one_of(messages, json_values),
          "max_tokens": st.one_of(st.integers(-2, 20), json_values), "n": st.one_of(st.integers(0, 3), json_values),
          "temperature": st.one_of(st.floats(0, 2), json_values), "top_p": json_values, "stop": json_values,
          "seed": json_values, "stream": st.one_of(st.booleans(), json_values),
          "stream_options": st.one_of(st.just({"include_usage": True}), json_values), "logprobs": json_values,
          "echo": json_values, "user": json_values, "max_completion_tokens": json_values, "tools": json_values}


@st.composite
def bodies(draw):
    """A well-formed request with some fields replaced by anything JSON can hold, or any JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    body = {"model": "tiny", "max_tokens": 2, "prompt": "Tom has 3 apples",
            "messages": [{"role": "user", "content": "Tom has 3 apples"}]}
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3, unique=True)):
        if draw(st.booleans()):
            body[name] = draw(FIELDS[name])
        else:
            body.pop(name, None)
    return body


@settings(max_examples=100, deadline=None, derandomize=os.environ.get("WORKBENCH_FUZZ_RANDOM") != "1",
          suppress_health_check=list(HealthCheck))
@given(body=bodies(), chat=st.booleans())
def test_any_json_body_gets_an_answer_or_a_4xx_in_openai_json_never_a_500(plain, body, chat):
    reply = post(plain[0], body, "/chat/completions" if chat else "/completions")
    event(f"HTTP {reply.status_code}")
    if reply.status_code != 200:
        openai_error(reply)
    elif reply.headers["content-type"].startswith("text/event-stream"):
        assert reply.text.endswith("data: [DONE]\n\n"), reply.text[-300:]
    else:
        assert reply.json()["choices"], reply.text
    assert plain[1].budget.in_flight == 0


# -- 5. stream: true ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stop", [None, ["apples"], ["\n", "the"]])
def test_the_openai_client_reads_a_stream_that_adds_up_to_the_answer(plain, stop):
    import openai

    client = openai.OpenAI(api_key="x", base_url=plain[0].url, max_retries=0)
    for prompt in ("Tom has 3 apples", "Q: Mia gets 4 pears\nA:"):
        whole = client.completions.create(model="tiny", prompt=prompt, max_tokens=16, stop=stop).choices[0]
        chunks = list(client.completions.create(model="tiny", prompt=prompt, max_tokens=16, stop=stop, stream=True))
        assert "".join(c.choices[0].text for c in chunks) == whole.text
        assert len(chunks) > 2 and chunks[-1].choices[0].finish_reason == whole.finish_reason
        messages = [{"role": "user", "content": prompt}]
        answer = client.chat.completions.create(model="tiny", messages=messages, max_tokens=16, stop=stop)
        stream = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=16, stop=stop,
                                                     stream=True, stream_options={"include_usage": True}))
        assert stream[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == answer.choices[0].message.content
        assert stream[-1].choices == [] and stream[-1].usage.total_tokens == answer.usage.total_tokens


def test_a_stream_sends_tokens_as_they_are_generated(slow):
    server, _ = slow
    started = time.monotonic()
    with httpx.stream("POST", server.url + "/completions", json={"prompt": "Tom has", "max_tokens": 60,
                                                                 "stream": True, "n": 1}, timeout=120) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in reply.iter_lines():
            if line:
                lines.append((time.monotonic() - started, line))
    first, total = lines[0][0], lines[-1][0]
    assert lines[-1][1] == "data: [DONE]" and first < total / 2, (first, total)  # 60 tokens ≥ 1.8 s
    chunks = [json.loads(line[6:]) for _, line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"} and chunks[-1]["choices"][0]["finish_reason"]


# -- runs: the marker where the run's encoder put it -------------------------------------------------------------
@pytest.mark.parametrize("layout,label,rationale", [
    ("marker-first", "[label] Tom has 3. =>", "[rationale] Tom has 3. =>"),
    ("marker-last", "Tom has 3. [label] =>", "Tom has 3. [rationale] =>"),
])
def test_a_causal_run_is_asked_as_its_encoder_asked_it(tiny, tmp_path, layout, label, rationale):
    import shutil

    run = tmp_path / "ws" / "runs" / "r"
    shutil.copytree(tiny, run / "model")
    (run / "config.json").write_text(json.dumps({"config": {"method": "dss", "max_input_len": 16},
                                                 "generation": {"layout": layout}}))
    (run / "trainingset.jsonl").write_text("")
    served = resolve_model("run:r", tmp_path / "ws")
    assert served.source("Tom has 3.", "r") == label and served.source("Tom has 3.", "r:rationale") == rationale
    app = create_app(served)
    with ServerThread(app) as server:  # a long input is cut in its middle: the marker and separator stay
        reply = post(server, {"model": "r:rationale", "prompt": "Tom has 3 apples . " * 50, "max_tokens": 2})
    assert reply.status_code == 200 and reply.json()["usage"]["prompt_tokens"] <= 16, reply.text
    text, _ = app.state.workbench._prepare_run("Tom has 3 apples . " * 50, "r:rationale")
    assert text.endswith(rationale.removeprefix("Tom has 3.")) if layout == "marker-last" else \
        text.startswith("[rationale] Tom") and text.endswith(" =>")


# -- 3, 6 and memory given back: `workbench serve-model` as a process -----------------------------------------
LAUNCH = """
import sys, transformers
sys.path.insert(0, {root!r})
from tests.test_serving_limits import slow_and_endless
cls = transformers.LlamaForCausalLM
cls.forward = slow_and_endless(cls.forward, 0.02)
from workbench.cli import main
sys.exit(main({argv!r}))
"""


@pytest.fixture(scope="module")
def process(tiny, tmp_path_factory):
    """``workbench serve-model smollm2-135m`` in a process of its own, with no offline variable set and a hub
    address where nothing listens: the name must resolve to its converted folder ($WORKBENCH_MODELS: the tiny
    model stands in for SmolLM2 there)."""
    import shutil

    from workbench.models import cache

    home = tmp_path_factory.mktemp("process")
    folder = home / "models" / "smollm2-135m"
    shutil.copytree(tiny, folder)
    (folder / cache.MARKER).write_text(json.dumps({"name": "smollm2-135m", "dtype": "float32"}))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                            "HF_DATASETS_OFFLINE", "WORKBENCH_ONLINE")}
    env.update(WORKBENCH_MODELS=str(home / "models"), HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(home / "hf"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["serve-model", "smollm2-135m", "--port", str(port), "--threads", "1",
            "--max-tokens-in-flight", "100000", "--max-prompt-tokens", "100000"]
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the process writes it
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH.format(root=str(ROOT), argv=argv)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "serve-model did not start in 120 s"
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield proc, url, home / "server.log"
    if proc.poll() is None:
        proc.kill()
    log.close()


def _rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_catalog_name_is_served_offline_from_its_converted_folder(process):
    _, url, log = process
    assert [m["id"] for m in httpx.get(f"{url}/models").json()["data"]] == ["smollm2-135m"]
    reply = httpx.post(f"{url}/completions", json={"prompt": "Tom has", "max_tokens": 3}, timeout=60)
    assert reply.status_code == 200 and reply.json()["model"] == "smollm2-135m"
    assert "127.0.0.1:9" not in log.read_text()


@pytest.mark.slow
def test_memory_is_given_back_after_a_big_request(process):
    proc, url, _ = process
    httpx.post(f"{url}/completions", json={"prompt": "Tom has", "max_tokens": 2}, timeout=60)
    base = peak = _rss_mb(proc.pid)
    done = threading.Event()

    def big() -> None:
        prompts = ["Tom has 3 apples . " * 100 + str(i) for i in range(16)]  # 64 rows of ~400 positions
        reply = httpx.post(f"{url}/completions", json={"prompt": prompts, "max_tokens": 16, "n": 4,
                                                       "temperature": 1.0}, timeout=600)
        assert reply.status_code == 200, reply.text
        done.set()

    worker = threading.Thread(target=big)
    worker.start()
    while not done.is_set() and worker.is_alive():
        peak = max(peak, _rss_mb(proc.pid))
        time.sleep(0.01)
    worker.join()
    assert done.is_set()
    time.sleep(0.5)
    after = _rss_mb(proc.pid)
    assert peak - base > 100, f"the request was not big: {base:.0f} → {peak:.0f} MB"
    assert after - base < 50, f"{after - base:.0f} MB kept after the request (base {base:.0f}, peak {peak:.0f})"


def test_sigterm_stops_the_server_within_5_s_even_while_it_generates(process):
    proc, url, log = process
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    client = _raw_request(port, {"prompt": "Tom has", "max_tokens": 1000})
    _wait_for(lambda: httpx.get(url.removesuffix("/v1") + "/_workbench/stats").json()["tokens_in_flight"] > 0)
    client.close()  # a client that leaves: no traceback in the log either
    generating = threading.Thread(target=lambda: _quiet_post(f"{url}/completions", {"prompt": "Anne has",
                                                                                     "max_tokens": 1000}))
    generating.start()
    _wait_for(lambda: httpx.get(url.removesuffix("/v1") + "/_workbench/stats").json()["tokens_in_flight"] > 0)
    time.sleep(1.0)  # 1,000 tokens at ≥ 20 ms each are generating: 20 s of work left
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("serve-model was still running 5 s after SIGTERM")
    took = time.monotonic() - sent
    generating.join(timeout=10)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert took < 5 and proc.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (took, proc.returncode)


def _quiet_post(url: str, body: dict) -> None:
    try:
        httpx.post(url, json=body, timeout=30)
    except httpx.HTTPError:
        pass  # the server stopped under it
