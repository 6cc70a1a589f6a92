"""The Gradio workbench: one ``gr.Blocks`` with a tab per step, built over one workspace store.

>>> demo = build_app("workspace")          # the folder is created if missing, the demo task stored in it
>>> type(demo).__name__, Store.open("workspace").has_task("wordproblems")
('Blocks', True)

``launch("workspace", port=7860)`` serves it on 127.0.0.1 (what ``workbench serve`` and ``make run`` do).

The app is a thin layer: every handler calls the library (tasks, teachers, generation, review, jobs, runs,
compare). Long work runs as detached jobs, so the page can be closed and reopened at any time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from workbench.core.connections import serve_as_app
from workbench.core.loopback import is_loopback
from workbench.core.store import Store
from workbench.data.tasks import TASKS, load_task
from workbench.imports.files import MB, UPLOAD_ENV, upload_limit
from workbench.rationales.trainingset import exports_dir
from workbench.ui import about, rationales, task_teacher
from workbench.ui.common import CSS, THEME

log = logging.getLogger(__name__)
TITLE = "Distilling step by step — workbench"


def prepare_demo(store: Store) -> None:
    """Materialise the built-in demo task on first start, so the first page already has data to show."""
    if task_teacher.DEMO_TASK in TASKS:
        load_task(task_teacher.DEMO_TASK, store)


def _optional_tab(name: str):
    """Tabs 3–4 need the training side; without it the app still serves tabs 1–2 (and says why)."""
    import importlib

    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("workbench."):
            raise
        log.warning("tab %s unavailable: %s", name, err)
        return None


def build_app(workspace: str | os.PathLike) -> gr.Blocks:
    """The whole app over ``workspace`` (created if missing; the demo task is materialised there)."""
    store = Store.open(workspace)
    prepare_demo(store)
    with gr.Blocks(title=TITLE, fill_width=False) as demo:
        gr.Markdown(f"# {TITLE}\nA teacher model answers with a rationale; a small student learns the label "
                    f"*and* the rationale. Workspace: `{store.workspace}`", elem_id="wb-title")
        with gr.Tabs():
            with gr.Tab("Task & teacher", id="task"):
                sel = task_teacher.render(store, demo)
            with gr.Tab("Rationales", id="rationales"):
                rationales.render(store, demo, sel)
            train = _optional_tab("train")
            with gr.Tab("Train", id="train"):
                if train is not None:
                    train.render(store, demo, sel)
                else:
                    gr.Markdown("Training is not part of this build (`workbench.distill.runs` is missing).")
            compare = _optional_tab("compare")
            with gr.Tab("Compare", id="compare") as compare_tab:
                if compare is not None:
                    compare.render(store, demo, sel, compare_tab)
                else:
                    gr.Markdown("Comparison is not part of this build (`workbench.results.compare` is missing).")
            sweeps = _optional_tab("sweeps")
            with gr.Tab("Sweeps", id="sweeps") as sweeps_tab:
                if sweeps is not None:
                    sweeps.render(store, demo, sel, sweeps_tab)
                else:
                    gr.Markdown("Sweeps are not part of this build (`workbench.distill.sweeps` is missing).")
            with gr.Tab("About", id="about"):
                about.render()
    demo.workbench_store = store  # tests and embedding apps reach the store the handlers use
    return demo


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """``user:pass`` → tuple; the password may itself contain ``:``."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth takes USER:PASSWORD")
    return user, password


def exposure_warning(host: str, auth) -> str | None:
    """The loud warning for an app reachable from other machines without a password (None when safe)."""
    if is_loopback(host) or auth:
        return None
    return (f"WARNING: the workbench listens on {host}, reachable from other machines, WITHOUT a password. "
            "Anyone who can reach this port can read your data and start jobs. Add --auth USER:PASSWORD "
            "or bind 127.0.0.1.")


def launch(workspace: str | os.PathLike, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
           prevent_thread_lock: bool = False, quiet: bool = False, connections: str | os.PathLike | None = None,
           max_upload_mb: float | None = None) -> gr.Blocks:
    """Serve the app (never through a share link). With ``prevent_thread_lock`` it returns at once: the running
    Blocks, with ``.local_url`` and ``.workbench_store`` (tests use this); otherwise it blocks until stopped.

    This process becomes the app's: teacher specs are read as a browser user's (keys only through the
    ``connections`` file, default ``$WORKBENCH_CONNECTIONS``), uploads are capped at ``max_upload_mb`` (default
    ``$WORKBENCH_MAX_UPLOAD_MB`` or 50), and with ``auth`` every route but the login page and static assets needs
    the login (:class:`RequireLogin`). The jobs it starts inherit all three."""
    credentials = parse_auth(auth)
    limit = upload_limit(max_upload_mb)  # a bad value stops the launch with one line
    os.environ[UPLOAD_ENV] = f"{limit / MB:g}"
    serve_as_app(connections)
    warning = exposure_warning(host, credentials)
    if warning:
        log.warning(warning)
        print("\n" + "!" * 100 + f"\n{warning}\n" + "!" * 100 + "\n", flush=True)
    demo = build_app(workspace)
    exports = exports_dir(demo.workbench_store)
    demo.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, auth=credentials, share=False, inbrowser=False,
        prevent_thread_lock=prevent_thread_lock, quiet=quiet, show_error=True, theme=THEME, css=CSS,
        footer_links=["api", "settings"], allowed_paths=[str(Path(exports).resolve())], enable_monitoring=False,
        pwa=False, mcp_server=False, run_history=False, max_file_size=limit,
        app_kwargs={"middleware": [Middleware(RequireLogin)]} if credentials else None,
    )
    return demo


class RequireLogin:
    """ASGI middleware: with ``--auth``, every route needs the login cookie except the login page itself
    (``GET /``, ``POST /login``, ``/logout``) and static assets. Gradio checks the login on its data routes only;
    ``/gradio_api/cancel``, ``/heartbeat`` and others answered without it. Listed in ``tests/test_security_app.py``,
    which asks every route of the running app with and without the cookie."""

    OPEN = {("GET", "/"), ("HEAD", "/"), ("POST", "/login"), ("POST", "/login/"), ("GET", "/logout")}
    OPEN_PREFIXES = ("/assets/", "/static/", "/svelte/", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
                     "/robots.txt")
    STARTUP = "/gradio_api/startup-events"  # launch() calls it once, without a cookie; then it is closed too

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and not self.is_open(scope) and not self.logged_in(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = b'{"detail":"Not authenticated: log in first"}'
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def is_open(self, scope) -> bool:
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path == self.STARTUP and method == "GET":
            return not getattr(scope.get("app"), "startup_events_triggered", True)
        return (method, path) in self.OPEN or (method in ("GET", "HEAD") and path.startswith(self.OPEN_PREFIXES))

    @staticmethod
    def logged_in(scope) -> bool:
        from starlette.requests import HTTPConnection

        app = scope.get("app")  # gradio's App: its cookie name and the tokens of logged-in users
        cookie_id, tokens = getattr(app, "cookie_id", None), getattr(app, "tokens", None)
        if cookie_id is None or tokens is None:
            return False  # not gradio's app: refuse rather than guess
        cookies = HTTPConnection(scope).cookies
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return token is not None and tokens.get(token) is not None
