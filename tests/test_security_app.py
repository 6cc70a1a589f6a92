"""The app's security rules (issue 24, §1 and §3), each against the real thing: a running app with ``--auth`` and
``--connections``, a local endpoint that records the Authorization header it receives, every route Gradio exposes
asked with and without the login, uploads over the cap, and the CLI started in a clean environment (offline)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import APP_PROCESS_ENV
from workbench.cli import main as cli
from workbench.core.connections import Connection, SpecContext, load_connections
from workbench.core.errors import ConfigError, ImportDataError, TeacherError
from workbench.core.jobs import read_log, wait_job
from workbench.rationales.teachers import get_teacher

ROOT = Path(__file__).resolve().parents[1]
OWNER_KEY, ANY_SECRET, ADMIN_KEY = "sk-owner-KEY-5b1e", "ANY-VAR-SECRET-77c2", "sk-admin-KEY-9d4a"
GOOD = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "The answer is (1 + 3)."}}]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """An OpenAI-shaped endpoint on 127.0.0.1 that records the Authorization header of every request."""

    def __init__(self):
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.auth.append(self.headers.get("Authorization"))
                data = GOOD.encode()
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The app as an admin would start it: --auth, --connections (one endpoint, its key in $ADMIN_KEY), a 1 MB
    upload cap; the process also holds the owner's $OPENAI_API_KEY and an unrelated secret."""
    from workbench.ui import launch

    root = tmp_path_factory.mktemp("secapp")
    endpoint = Recorder()
    conns = root / "connections.toml"
    conns.write_text(f'[[connections]]\nname = "local"\nbase_url = "http://127.0.0.1:{endpoint.port}/v1"\n'
                     f'model = "m"\nmode = "chat"\nkey_env = "ADMIN_KEY"\n')
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "ANY_VAR", "ADMIN_KEY")}
    os.environ.update({"OPENAI_API_KEY": OWNER_KEY, "ANY_VAR": ANY_SECRET, "ADMIN_KEY": ADMIN_KEY})
    demo = launch(root / "ws", port=free_port(), auth="me:secret", connections=conns, max_upload_mb=1,
                  prevent_thread_lock=True, quiet=True)
    made = {k: os.environ[k] for k in APP_PROCESS_ENV if k in os.environ}  # what launch made of this process
    try:
        yield demo, endpoint, made
    finally:
        demo.close()
        endpoint.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def app(launched, monkeypatch):
    """The running app, with this process as launch left it (conftest resets that after every test)."""
    demo, endpoint, made = launched
    assert made["WORKBENCH_SPEC_ORIGIN"] == "app" and made["WORKBENCH_MAX_UPLOAD_MB"] == "1"
    for key, value in made.items():
        monkeypatch.setenv(key, value)
    return demo, endpoint


# -- 1. keys: only through the admin's connections ---------------------------------------------------------------
def test_a_hostile_spec_from_the_app_sends_no_key(app):
    """The issue's example, through the app's own generate handler and the job it starts: `key_env=ANY_VAR` is
    refused with a clear message; a typed URL (even one reaching the connection's server) is sent no key, although
    the process holds $OPENAI_API_KEY; the admin's connection is sent its key."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    demo, endpoint = app
    store = demo.workbench_store
    client = Client(demo.local_url, auth=("me", "secret"), verbose=False)
    typed = f"http://localhost:{endpoint.port}/v1"

    def generate(spec):
        return client.predict("wordproblems", spec, "", "2", "train", False, api_name="/generate")

    with pytest.raises(AppError, match="key_env is not accepted from the app"):
        generate(f"openai:x@{typed}?key_env=ANY_VAR")
    with pytest.raises(AppError, match="is the connection 'local'"):
        generate(f"openai:x@http://127.0.0.1:{endpoint.port}/v1")
    assert endpoint.auth == []
    for spec in (f"openai:x@{typed}?max_retries=0", "openai:m@conn:local?max_retries=0"):
        job_id = generate(spec)[0]
        row = wait_job(store, job_id, timeout=120)
        assert row["status"] == "done", read_log(store, job_id)
    assert endpoint.auth == [None, None, f"Bearer {ADMIN_KEY}", f"Bearer {ADMIN_KEY}"]
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in (p for p in store.workspace.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not any(k.encode() in data for k in (OWNER_KEY, ANY_SECRET, ADMIN_KEY)), path


def test_the_teacher_picker_lists_the_connections_never_their_keys(app):
    from workbench.core.connections import connection_choices
    from workbench.ui.task_teacher import on_connection

    demo, _ = app
    choices = connection_choices()
    assert [c["name"] for c in choices] == ["local"] and choices[0]["spec"] == "openai:m@conn:local"
    assert choices[0]["key_set"] is True and ADMIN_KEY not in json.dumps(choices)
    kind, target, settings, _, spec = on_connection("local")
    assert (kind["value"], target, settings, spec) == ("openai", "m@conn:local", "", "openai:m@conn:local")
    picker = [c["props"] for c in demo.config["components"] if c["props"].get("elem_id") == "teacher-connection"]
    assert picker and picker[0]["visible"] is True and [ch[0] for ch in picker[0]["choices"]] == ["local"]


@pytest.mark.parametrize("spec, match", [
    ("openai:x@http://evil.example/v1?key_env=ANY_VAR", "key_env is not accepted from the app"),
    ("openai:x@conn:nope", "no connection named 'nope'; known: local"),
    ("openai:x@conn:local?key_env=ANY_VAR", "key_env is not accepted from the app"),
    ("hf:/tmp/model?trust_remote_code=true", "not accepted from the app"),
    ("openai:x@http://evil.example/v1?api_key=sk-1", "looks like a secret"),
])
def test_specs_from_the_app_are_read_by_the_apps_rules(spec, match):
    app_ctx = SpecContext("app", (Connection("local", "http://127.0.0.1:9/v1", "m", key_env="ADMIN_KEY"),))
    with pytest.raises(TeacherError, match=re.escape(match)):
        get_teacher(spec, context=app_ctx)


def test_the_cli_keeps_key_env_and_the_owners_default_key():
    owner = SpecContext("owner")
    assert get_teacher("openai:x@http://127.0.0.1:9/v1?key_env=MY_KEY", context=owner).key_env == "MY_KEY"
    assert get_teacher("openai:x@http://127.0.0.1:9/v1", context=owner).key_env == "OPENAI_API_KEY"
    typed = get_teacher("openai:x@http://127.0.0.1:9/v1", context=SpecContext("app"))
    assert typed.key_env is None and typed.id == "openai:x@http://127.0.0.1:9/v1"


@pytest.mark.parametrize("text, match", [
    ('[[connections]]\nname = "a"\n', "needs a name and a base_url"),
    ('[[connections]]\nname = "a"\nbase_url = "ftp://h"\n', "must look like http://HOST:PORT/v1"),
    ('[[connections]]\nname = "a"\nbase_url = "http://u:p@h/v1"\n', "do not put credentials"),
    ('[[connections]]\nname = "a"\nbase_url = "http://h/v1"\nkey_env = "sk-123456"\n', "must name an environment"),
    ('[[connections]]\nname = "a"\nbase_url = "http://h/v1"\napi_key = "x"\n', "unknown field(s) api_key"),
    ('[[connections]]\nname = "../a"\nbase_url = "http://h/v1"\n', "connection name"),
    ('[[connections]]\nname = "a"\nbase_url = "http://h"\n[[connections]]\nname = "a"\nbase_url = "http://g"\n',
     "used twice"),
    ("connections = 3\n", "must hold a list"),
    ("[[connections]\n", "not valid TOML"),
])
def test_a_bad_connections_file_stops_the_launch_with_one_line(tmp_path, capsys, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(match)):
        load_connections(path)
    assert cli(["serve", "--workspace", str(tmp_path / "ws"), "--connections", str(path), "--port",
                str(free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "connections file" in err


def test_a_connections_file_may_be_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"connections": [{"name": "gpu", "base_url": "https://llm.lab:8443/v1/",
                                                 "model": "qwen", "key_env": "LAB_KEY"}]}))
    (conn,) = load_connections(path)
    assert (conn.base_url, conn.spec) == ("https://llm.lab:8443/v1", "openai:qwen@conn:gpu")


# -- 3. every route needs the login --------------------------------------------------------------------------------
OPEN = {("GET", "/"), ("HEAD", "/"), ("POST", "/login"), ("POST", "/login/"), ("GET", "/logout")}
STATIC = ("/assets/", "/static/", "/svelte/", "/favicon.ico", "/theme.css", "/gradio_api/theme.css", "/robots.txt")


def app_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the running app serves, read from the app itself (Gradio's router included)."""
    out = []

    def walk(routes, prefix=""):
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI's included router
                walk(r.original_router.routes, prefix + (getattr(r.include_context, "prefix", "") or ""))
            elif getattr(r, "path", None) is not None:
                out.extend((m, prefix + r.path) for m in sorted(getattr(r, "methods", None) or ["GET"]))

    walk(app.routes)
    return sorted(set(out))


def _ask(client: httpx.Client, method: str, path: str) -> int:
    url = re.sub(r"\{[^}]+\}", "x", path)
    with client.stream(method, url, timeout=10) as resp:  # SSE routes: the status is enough
        return resp.status_code


def test_every_route_but_the_login_page_and_assets_needs_the_login(app):
    demo, _ = app
    routes = app_routes(demo.server_app)
    assert ("POST", "/gradio_api/cancel") in routes and len(routes) > 50
    base = demo.local_url.rstrip("/")
    with httpx.Client(base_url=base) as anonymous:
        for method, path in routes:
            status = _ask(anonymous, method, path)
            if (method, path) in OPEN or path.startswith(STATIC):
                assert status != 401, (method, path)
            else:
                assert status == 401, (method, path, status)
    with httpx.Client(base_url=base) as member:
        assert member.post("/login", data={"username": "me", "password": "secret"}).status_code == 200
        for method, path in routes:
            if path != "/logout":  # it would end the session
                assert _ask(member, method, path) != 401, (method, path)
        assert member.post("/gradio_api/cancel", json={"session_hash": "x", "fn_index": 0,
                                                       "event_id": "x"}).status_code != 401


# -- 4. uploads are capped before anything is written ----------------------------------------------------------------
def _big_csv(path: Path, mb: float) -> Path:
    row = "a question that is long enough to fill the file quickly,yes\n"
    path.write_text("text,label\n" + row * int(mb * 1024 * 1024 / len(row) + 1))
    return path


def _workspace_bytes(ws: Path) -> int:
    return sum(p.stat().st_size for p in ws.rglob("*") if p.is_file())


def test_an_upload_over_the_cap_is_refused_before_anything_is_written(app, tmp_path):
    from workbench.imports.custom import ColumnMapping, import_custom
    from workbench.ui.imports import on_import_custom, on_upload

    demo, _ = app
    store = demo.workbench_store
    big = _big_csv(tmp_path / "big.csv", 1.2)
    before = _workspace_bytes(store.workspace)
    with pytest.raises(Exception, match=r"over the upload limit of 1 MB"):
        on_upload(str(big))
    with pytest.raises(Exception, match=r"over the upload limit of 1 MB"):
        on_import_custom(store, str(big), "big", ["text"], "label", None, None, None, "infer", "")
    with pytest.raises(ImportDataError, match=r"big.csv is 1.2 MB, over the upload limit of 0.5 MB"):
        import_custom(store, "big", big, ColumnMapping(inputs=("text",), label="label"), max_upload_mb=0.5)
    assert not store.has_task("big") and _workspace_bytes(store.workspace) == before
    with httpx.Client(base_url=demo.local_url.rstrip("/")) as member:  # Gradio's own upload route, same cap
        member.post("/login", data={"username": "me", "password": "secret"})
        reply = member.post("/gradio_api/upload", files={"files": ("big.csv", big.read_bytes(), "text/csv")})
        assert reply.status_code == 413


def test_task_add_states_and_applies_its_cap(tmp_path, capsys):
    ws = tmp_path / "ws"
    big = _big_csv(tmp_path / "big.csv", 0.3)
    assert cli(["task-add", "big", str(big), "--input", "text", "--label", "label", "--max-upload-mb", "0.25",
                "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "over the upload limit of 0.25 MB" in err and "--max-upload-mb" in err
    assert not (ws / "uploads").exists()
    assert cli(["task-add", "big", str(big), "--input", "text", "--label", "label", "--workspace", str(ws)]) == 0
    with pytest.raises(SystemExit):
        cli(["task-add", "--help"])
    assert "--max-upload-mb" in capsys.readouterr().out


def test_a_bad_upload_cap_is_one_line(tmp_path, capsys, monkeypatch):
    from workbench.imports.files import upload_limit
    from workbench.ui import launch

    with pytest.raises(SystemExit) as stop:
        cli(["serve", "--workspace", str(tmp_path / "ws"), "--max-upload-mb", "-1", "--port", str(free_port())])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "--max-upload-mb" in err and "(0, 2048]" in err
    with pytest.raises(ConfigError, match=r"--max-upload-mb \(megabytes\) must be in \(0, 2048\]"):
        launch(tmp_path / "ws", port=free_port(), max_upload_mb=0, prevent_thread_lock=True, quiet=True)
    monkeypatch.setenv("WORKBENCH_MAX_UPLOAD_MB", "lots")
    with pytest.raises(ConfigError, match=r"\$WORKBENCH_MAX_UPLOAD_MB must be a number of megabytes"):
        upload_limit()
    assert upload_limit(0.5) == 512 * 1024


# -- 5. offline is the program's default -----------------------------------------------------------------------------
def _clean_env(**extra) -> dict:
    keep = ("PATH", "HOME", "LANG", "WORKBENCH_MODELS", "XDG_CACHE_HOME", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


@pytest.mark.parametrize("how", ["default", "--online", "WORKBENCH_ONLINE=1"])
def test_the_cli_is_offline_unless_asked(tmp_path, how):
    """Started as `workbench …` without make (no HF_HUB_OFFLINE in the environment), hub models are unavailable
    and said to be so; --online or WORKBENCH_ONLINE=1 opts in."""
    env = _clean_env(**({"WORKBENCH_ONLINE": "1"} if how.startswith("WORKBENCH") else {}))
    argv = [sys.executable, "-m", "workbench", *(["--online"] if how == "--online" else []), "models", "--json",
            "--workspace", str(tmp_path / "ws")]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    hub = {m["name"]: m for m in result["models"] if not m.get("offline_source") and not m.get("base")}
    assert "flan-t5-small" in hub
    assert result["offline"] is (how == "default")
    assert all(m["available"] is (how != "default") for m in hub.values()), hub
    assert all(m["usable_offline"] is False for m in hub.values())
    if how == "default":
        assert "offline here" in hub["flan-t5-small"]["reason"]


def test_the_app_entry_point_is_offline_by_default():
    code = "import os, app; print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('GRADIO_ANALYTICS_ENABLED'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["1", "False"], done.stderr
