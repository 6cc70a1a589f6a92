"""Admin-set connections, and the context a teacher spec is read in (who wrote it, hence which keys it may use).

Whoever starts the app decides which endpoints exist and which key each may use: ``workbench serve --connections
FILE`` or ``python app.py --connections FILE`` (also ``$WORKBENCH_CONNECTIONS``). A browser user picks one of those
by name; an address typed in the browser is sent no key. The CLI and notebooks, run by the key's owner, keep
``key_env=NAME`` and the default key variable. The file, TOML or JSON, is a list of entries::

    [[connections]]
    name = "local"                            # what the app's teacher picker shows; the spec says @conn:local
    base_url = "http://127.0.0.1:8000/v1"
    model = "qwen2.5-7b"                      # the default model (a spec may name another)
    mode = "chat"                             # a default option of the teacher (chat or completions for openai)
    key_env = "LOCAL_VLLM_KEY"                # the environment variable holding its key; "" or absent: no key
    kind = "openai"                           # the teacher kind (default openai)

    {"connections": [{"name": "local", "base_url": "http://127.0.0.1:8000/v1", "model": "qwen2.5-7b"}]}

A spec names a connection in place of a URL: ``openai:qwen2.5-7b@conn:local`` (``openai:@conn:local``: its default
model). The rules are the endpoint teachers' (:mod:`workbench.rationales.teachers.endpoint`), given a
:class:`SpecContext`; whatever builds a teacher without one gets :func:`current`, the process's context: the key's
owner, unless this process serves the app (:func:`serve_as_app`, which the jobs it starts inherit).

>>> ctx = SpecContext("app", (Connection("local", "http://127.0.0.1:8000/v1", "m", key_env="K"),))
>>> ctx.endpoint("", "conn:local", default_url="", default_key_env="OPENAI_API_KEY", key_env=None)
Endpoint(model='m', base_url='http://127.0.0.1:8000/v1', key_env='K', connection='local')
>>> ctx.endpoint("m", "http://10.0.0.9/v1", default_url="", default_key_env="OPENAI_API_KEY", key_env=None)
Endpoint(model='m', base_url='http://10.0.0.9/v1', key_env=None, connection=None)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

from workbench.core.errors import ConfigError, TeacherError

ORIGIN_ENV = "WORKBENCH_SPEC_ORIGIN"  # "app": specs in this process (and the jobs it starts) come from a browser
CONNECTIONS_ENV = "WORKBENCH_CONNECTIONS"
ORIGINS = ("owner", "app")
CONN_PREFIX = "conn:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Connection:
    """One endpoint the app's owner allows, with the variable holding its key (never the key itself)."""

    name: str
    base_url: str
    model: str = ""
    mode: str = ""
    key_env: str = ""
    kind: str = "openai"

    def __post_init__(self):
        where = f"connection {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(f"connection name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        for f in fields(self):
            if not isinstance(getattr(self, f.name), str):
                raise ConfigError(f"{where}: {f.name} must be text")
        object.__setattr__(self, "base_url", check_base_url(self.base_url, where))
        if self.key_env and not _ENV_NAME.fullmatch(self.key_env):
            raise ConfigError(f"{where}: key_env {self.key_env!r} must name an environment variable (letters, "
                              "digits and '_'), not hold the key")
        if not _NAME.fullmatch(self.kind):
            raise ConfigError(f"{where}: kind {self.kind!r} must be a teacher kind such as openai")

    @property
    def spec(self) -> str:
        """The teacher spec that picks this connection (what the app's picker fills in)."""
        return f"{self.kind}:{self.model}@{CONN_PREFIX}{self.name}"

    @property
    def defaults(self) -> dict[str, str]:
        """Teacher options this connection sets unless the spec does."""
        return {"mode": self.mode} if self.mode else {}

    def describe(self) -> dict:
        """What the app and ``workbench teachers`` show: everything but the key (whether it is set, at most)."""
        return {"name": self.name, "kind": self.kind, "base_url": self.base_url, "model": self.model,
                "mode": self.mode, "key_env": self.key_env, "key_set": bool(self.key_env and os.environ.get(
                    self.key_env)), "spec": self.spec}


@dataclass(frozen=True)
class Endpoint:
    """Where an endpoint teacher sends its requests, and which variable's key goes with them (None: no key)."""

    model: str
    base_url: str
    key_env: str | None
    connection: str | None = None


@dataclass(frozen=True)
class SpecContext:
    """Who wrote a teacher spec: ``owner`` (the CLI, a notebook: the keys are theirs) or ``app`` (a browser user:
    keys only through the admin's connections), and the connections this process knows."""

    origin: str = "owner"
    connections: tuple[Connection, ...] = ()

    def __post_init__(self):
        if self.origin not in ORIGINS:
            raise ConfigError(f"spec origin must be one of {', '.join(ORIGINS)}, not {self.origin!r}")

    @property
    def from_app(self) -> bool:
        return self.origin == "app"

    def connection(self, name: str) -> Connection:
        for conn in self.connections:
            if conn.name == name:
                return conn
        known = ", ".join(c.name for c in self.connections)
        raise TeacherError(f"no connection named {name!r}; " + (
            f"known: {known}" if known else "none are set: whoever starts the app declares them with "
                                            "--connections FILE (or $WORKBENCH_CONNECTIONS)"))

    def matching(self, base_url: str) -> Connection | None:
        """The connection at this address (the same URL once normalised), if any."""
        url = _normal(base_url)
        return next((c for c in self.connections if _normal(c.base_url) == url), None)

    def endpoint(self, model: str, where: str, *, default_url: str, default_key_env: str,
                 key_env: str | None) -> Endpoint:
        """Resolve a spec's ``MODEL@WHERE`` (WHERE: a URL, ``conn:NAME`` or empty for ``default_url``) and its
        ``key_env`` option (None: not given) into an :class:`Endpoint`, by this context's rules."""
        if where.startswith(CONN_PREFIX):
            conn = self.connection(where[len(CONN_PREFIX):])
            if key_env is not None:
                raise TeacherError(f"connection {conn.name!r} sets its own key; drop key_env from the spec")
            if not (model or conn.model):
                raise TeacherError(f"connection {conn.name!r} has no default model: name one, "
                                   f"{conn.kind}:MODEL@{CONN_PREFIX}{conn.name}")
            return Endpoint(model or conn.model, conn.base_url, conn.key_env or None, conn.name)
        base_url = check_base_url(where or default_url, "the base URL", error=TeacherError)
        if not self.from_app:  # the key's owner: the variable they name, else the teacher's default one
            return Endpoint(model, base_url, (default_key_env if key_env is None else key_env) or None)
        if key_env is not None:  # Teacher refuses owner-only options first; this holds for direct callers too
            raise TeacherError(KEY_ENV_FROM_APP)
        conn = self.matching(base_url)
        if conn is not None:
            raise TeacherError(f"{base_url} is the connection {conn.name!r}: pick it ({conn.kind}:"
                               f"{model or conn.model}@{CONN_PREFIX}{conn.name}) to use its key; an address typed "
                               "in the app is sent no key")
        return Endpoint(model, base_url, None)


KEY_ENV_FROM_APP = ("key_env is not accepted from the app: keys are chosen by whoever starts it (--connections "
                    "FILE); pick a connection (openai:MODEL@conn:NAME, listed in the teacher picker), or use the "
                    "CLI, where the key is yours")
OWNER = SpecContext("owner")


def check_base_url(url: str, what: str = "the base URL", error: type[Exception] = ConfigError) -> str:
    """``url`` without a trailing slash, when it is http(s)://HOST… without credentials."""
    url = (url or "").strip().rstrip("/")
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError:
        parsed, host = None, None
    if parsed is None or parsed.scheme not in ("http", "https") or not host:
        raise error(f"{what} {url!r} must look like http://HOST:PORT/v1")
    if parsed.username or parsed.password:
        raise error(f"do not put credentials in {what}: it is stored with every generation; put the key in an "
                    "environment variable (a connection's key_env)")
    if any(ord(c) < 33 for c in url):
        raise error(f"{what} {url!r} holds a space or a control character")
    return url


def _normal(url: str) -> str:
    parsed = urlparse(url.rstrip("/"))
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return f"{parsed.scheme}://{(parsed.hostname or '').lower()}:{port}{parsed.path.rstrip('/')}"


# -- the file --------------------------------------------------------------------------------------------------
def load_connections(path: str | os.PathLike) -> tuple[Connection, ...]:
    """The connections of a TOML or JSON file (by its suffix; otherwise JSON is tried, then TOML). A mistake is
    one :class:`ConfigError` naming the file and what to fix."""
    path = Path(path).expanduser()
    try:
        if not path.is_file():
            raise ConfigError(f"connections file {path} does not exist (or is not a file)")
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"connections file {path} cannot be read ({err.strerror or err})") from err
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"connections file {path} is larger than {MAX_FILE_BYTES:,} bytes")
    doc = _parse(path, data)
    entries = doc.get("connections") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"connections file {path} must hold a list 'connections' ([[connections]] in TOML)")
    known = {f.name for f in fields(Connection)}
    out: list[Connection] = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"connections file {path}: entry {i} must be a table of name, base_url, model, …")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ConfigError(f"connections file {path}: entry {i} has unknown field(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        if "name" not in entry or "base_url" not in entry:
            raise ConfigError(f"connections file {path}: entry {i} needs a name and a base_url")
        try:
            conn = Connection(**entry)
        except ConfigError as err:
            raise ConfigError(f"connections file {path}: {err}") from None
        if any(c.name == conn.name for c in out):
            raise ConfigError(f"connections file {path}: the name {conn.name!r} is used twice")
        out.append(conn)
    return tuple(out)


def _parse(path: Path, data: bytes):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"connections file {path} is not UTF-8 text") from None
    as_toml = path.suffix.lower() == ".toml" or (path.suffix.lower() != ".json" and not text.lstrip().startswith("{"))
    if as_toml:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ConfigError(f"connections file {path}: TOML needs Python 3.11; write it as JSON") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"connections file {path} is not valid TOML ({err})") from None
    try:
        return json.loads(text)
    except ValueError as err:
        raise ConfigError(f"connections file {path} is not valid JSON ({err})") from None


# -- the process's context -------------------------------------------------------------------------------------
_CACHE: dict[tuple, tuple[Connection, ...]] = {}


def current() -> SpecContext:
    """This process's context: ``app`` when it serves the app (or is a job the app started), else ``owner``; with
    the connections of ``$WORKBENCH_CONNECTIONS`` (read again when the file changes)."""
    origin = "app" if os.environ.get(ORIGIN_ENV, "").strip().lower() == "app" else "owner"
    path = os.environ.get(CONNECTIONS_ENV, "").strip()
    return SpecContext(origin, _cached(path) if path else ())


def _cached(path: str) -> tuple[Connection, ...]:
    try:
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (path, None, None)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_connections(path)
    return _CACHE[key]


def serve_as_app(path: str | os.PathLike | None = None) -> SpecContext:
    """Make this process (and every job it starts) read specs as the app: called by whoever launches the app,
    before the first request. ``path`` (default ``$WORKBENCH_CONNECTIONS``) is checked now: a mistake in it stops
    the launch with one line, not the first generation."""
    path = path or os.environ.get(CONNECTIONS_ENV) or None
    if path:
        resolved = str(Path(path).expanduser().resolve())
        load_connections(resolved)
        os.environ[CONNECTIONS_ENV] = resolved  # jobs may run in another folder: an absolute path
    else:
        os.environ.pop(CONNECTIONS_ENV, None)
    os.environ[ORIGIN_ENV] = "app"
    return current()


def connection_choices() -> list[dict]:
    """The connections the app offers (for its teacher picker and ``workbench teachers``), keys never included."""
    return [c.describe() for c in current().connections]
