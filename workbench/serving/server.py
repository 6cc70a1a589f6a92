"""Running the endpoint: :class:`ServerThread` (uvicorn in a background thread, for tests and notebooks) and
:func:`serve` (what ``workbench serve-model`` runs).

Stopping (SIGTERM, Ctrl-C, :meth:`ServerThread.stop`) first tells the batcher to stop: the batch being generated
ends after its next token and its requests are answered 503, so uvicorn's graceful shutdown has nothing to wait
for; what still runs after :data:`GRACE_S` is cancelled. The server exits within seconds, never after the batch."""

from __future__ import annotations

import logging
import socket
import threading
import time

from workbench.core.errors import ConfigError
from workbench.serving.app import create_app
from workbench.serving.faults import FaultPlan, _QuietDrops
from workbench.serving.limits import Limits
from workbench.serving.model import resolve_model

GRACE_S = 2.0  # how long stopping waits for responses still being written


def _server(app, **config):
    """A uvicorn server whose exit (a signal, or ``should_exit`` from :meth:`ServerThread.stop`) first stops the
    app's generation."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            _stop_generating(app)
            super().handle_exit(sig, frame)

    return _Server(uvicorn.Config(app, access_log=False, lifespan="off", backlog=2048,
                                  timeout_graceful_shutdown=GRACE_S, **config))


def _stop_generating(app) -> None:
    state = getattr(getattr(app, "state", None), "workbench", None)
    if state is not None:
        state.batcher.stop()


class ServerThread:
    """Run an app with uvicorn in a background thread on 127.0.0.1 (a free port unless given), for tests.

    >>> from workbench.rationales.teachers import get_teacher
    >>> from workbench.serving import create_app, resolve_model
    >>> app = create_app(resolve_model("run:quantnli-dss", store.workspace))   # a tiny student of the session
    >>> with ServerThread(app) as server:
    ...     get_teacher(f"openai:tiny@{server.url}?mode=completions").id.startswith("openai:tiny@http://127.0.0.1:")
    True
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))  # bound here, so the port is known before the server runs
        self.host, self.port = host, self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        self.server = _server(app, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> ServerThread:
        logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the test server on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        _stop_generating(self.app)
        self.server.should_exit = True
        self.thread.join(timeout=10)

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(spec: str, *, host: str = "127.0.0.1", port: int = 8000, workspace: str | None = None,
          latency_ms: float = 0.0, faults: FaultPlan | None = None, max_batch: int = 32,
          options: dict | None = None, log_level: str = "info", announce=None, limits: Limits | None = None) -> None:
    """Serve until interrupted (what ``workbench serve-model`` runs); ``options`` are HFTeacher options.

    Binds the address first (a taken port is a :class:`ConfigError` at once, before minutes of loading), then
    loads the model (a bad checkpoint fails here rather than on the first request), then calls ``announce(url)``
    — so nothing says "serving" before the server can answer."""
    sock = bind(host, port)
    try:
        served = resolve_model(spec, workspace, max_batch=max_batch, **(options or {}))
        served.teacher.loaded  # noqa: B018 - load now
        app = create_app(served, faults=faults, latency_ms=latency_ms, max_batch=max_batch, limits=limits)
        logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
        server = _server(app, log_level=log_level)
        if announce is not None:
            announce(f"http://{host}:{sock.getsockname()[1]}/v1")
        server.run(sockets=[sock])
    finally:
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a taken port or an address not of this machine is a ConfigError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err}); check --host") from err
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err}); pick another --port") from err
    return sock
