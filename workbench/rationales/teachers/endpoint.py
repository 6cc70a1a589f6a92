"""The endpoint teacher base: what every teacher behind an HTTP API shares, so a new API is a small subclass.

:class:`EndpointTeacher` owns the retries (exponential backoff with full jitter, or the server's ``Retry-After``),
bounded concurrency, timeouts, reply size caps, and keys: where the request goes and which key goes with it
(:meth:`workbench.core.connections.SpecContext.endpoint`: a typed URL from the app is sent no key, a connection
its own; the owner's CLI may name ``key_env``). Every request goes through one pooled ``httpx2`` client per
teacher, reused from batch to batch in one event loop per process; its hooks set the credential headers the key
rules chose (and only to the base URL's host) and stop reading a reply at :data:`MAX_BODY_BYTES`, whatever sends
the request. A subclass maps one prompt to a request and one reply to text, as smolagents' ``ApiModel``
subclasses and simonw/llm's model classes do:

* ``path(self)``, ``body(self, prompt) -> dict``: the POST request (JSON) for one prompt;
* ``reply_text(self, data) -> str``: the answer in the parsed JSON reply (raise :class:`BadResponse` when there is
  none; ``retry=False`` when asking again cannot help);
* optionally ``auth_headers(self, key)`` (default ``Authorization: Bearer KEY``), ``default_base_url`` and
  ``default_key_env`` (used when a spec names no URL / no key variable), ``options`` (add to :attr:`ENDPOINT_OPTIONS`);
* for an API with an SDK of its own, its client instead of the plain POST: ``make_client(self, http)`` builds the
  SDK's client over the base's ``http`` client, ``send(self, client, prompt)`` makes one call with it, and
  ``classify(self, err)`` sorts the SDK's exceptions (``openai`` does this with ``AsyncOpenAI``).

Answers are cached by the store, not here: a teacher's ``id`` and sampling ``settings`` are the key under which
generation keeps its answers, so an endpoint is never asked twice for one prompt (see ``generation.py``).

>>> class Echo(EndpointTeacher):
...     kind, default_base_url = "echo", "http://127.0.0.1:8080"
...     def path(self): return "/completion"
...     def body(self, prompt): return {"prompt": prompt}
...     def reply_text(self, data): return data["content"]
>>> echo = Echo("tiny")                       # no @URL: the default one; register_teacher(Echo) makes "echo:..." work
>>> echo.base_url + echo.path(), echo.body("Q: 1 + 2? A:")
('http://127.0.0.1:8080/completion', {'prompt': 'Q: 1 + 2? A:'})
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from workbench.core import connections
from workbench.core.connections import CONN_PREFIX, KEY_ENV_FROM_APP, SpecContext
from workbench.core.errors import TeacherError
from workbench.core.surrogates import printable
from workbench.rationales.teachers.base import Option, Teacher, TeacherReply, TeacherRequest

_SECRET_HINTS = ("key", "token", "secret", "password", "authorization")
_RETRY_STATUS = {408, 409, 429}
MAX_BODY_BYTES = 8 * 1024 * 1024  # a reply body is read up to this much (1 MB of text, JSON-escaped, fits)
MAX_ANSWER_CHARS = 1_000_000  # one answer longer than this is a per-row error, never stored
MAX_DETAIL_CHARS = 200

ENDPOINT_OPTIONS = (
    Option("concurrency", int, 16, "requests in flight at most", sampling=False, low=1, high=1024),
    Option("timeout", float, 60.0, "seconds per request", sampling=False, low=0, high=3600, low_open=True),
    Option("max_retries", int, 6, "retries of a failed request", sampling=False, low=0, high=100),
    Option("key_env", str, None, "environment variable holding the key (CLI only; the app uses connections)",
           sampling=False, owner_only=True, owner_note=KEY_ENV_FROM_APP),
    Option("backoff", float, 0.5, "first retry wait (seconds, jittered)", sampling=False, low=0, high=600),
    Option("backoff_max", float, 8.0, "longest retry wait (seconds)", sampling=False, low=0, high=3600),
    Option("batch_size", int, None, "rows committed together (default 4 × concurrency)", sampling=False,
           low=1, high=100_000),
)


class BadResponse(Exception):
    """The endpoint answered 200 but not with a usable answer (no choices, no text, text of the wrong type)."""

    def __init__(self, message: str, retry: bool = True):
        super().__init__(message)
        self.retry = retry


class ReplyTooLarge(Exception):
    """A reply body larger than :data:`MAX_BODY_BYTES`: reading stops there (memory stays bounded)."""


class StatusError(Exception):
    """The endpoint answered with an HTTP error status; the message holds its body (secrets are blanked later)."""

    def __init__(self, status: int, headers, body: str):
        super().__init__(f"Error code: {status} - {body}")
        self.status, self.headers = status, headers


@dataclass(frozen=True)
class Fault:
    """Why one attempt failed: a short reason (grouped in the summary), whether to retry, and the server's wait."""

    reason: str
    retry: bool
    retry_after: float | None = None
    fatal: str = ""  # set: no row can succeed (a refused key, an unknown model); the job stops with this message


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS architecture blog): ``uniform(0, min(cap, base·2^attempt))``.

    >>> RetryPolicy(base=1, cap=4).delay(10, retry_after=None, rng=random.Random(0)) <= 4
    True
    >>> RetryPolicy().delay(0, retry_after=2.5, rng=random.Random(0))
    2.5
    """

    max_retries: int = 6
    base: float = 0.5
    cap: float = 8.0
    retry_after_cap: float = 120.0

    def delay(self, attempt: int, *, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:  # the server knows when it will have room: wait exactly that long
            return min(max(0.0, retry_after), self.retry_after_cap)
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** attempt))


def retry_after_seconds(headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None when absent or unreadable.

    >>> retry_after_seconds({"retry-after": "3"})
    3.0
    """
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            continue
    return None


class EndpointTeacher(Teacher):
    """Base class of teachers behind an HTTP API: ``kind:MODEL@BASE_URL`` or ``kind:MODEL@conn:NAME``."""

    options = ENDPOINT_OPTIONS
    needs_target = True
    cost = "money"
    default_base_url: ClassVar[str] = ""
    default_key_env: ClassVar[str] = ""
    fatal_status: ClassVar[dict[int, str]] = {401: "the endpoint refused the API key",
                                              403: "the endpoint refused access",
                                              404: "the endpoint does not know this model or path"}
    # Removed from every request before the key rules add theirs: whatever a client library picked up from the
    # process's environment (an SDK's own key variable, its default headers) is not what the rules decided.
    credential_headers: ClassVar[tuple[str, ...]] = ("authorization", "proxy-authorization")

    def __init__(self, target: str = "", *, store=None, context: SpecContext | None = None, **options: str):
        context = context or connections.current()
        model, _, where = (target or "").partition("@")
        model, where = model.strip(), where.strip()
        if where.startswith(CONN_PREFIX):  # the connection's defaults (its mode), unless the spec sets them
            known = {o.name for o in self.options}
            conn = context.connection(where[len(CONN_PREFIX):])
            options = {**{k: v for k, v in conn.defaults.items() if k in known}, **options}
        super().__init__(target, store=store, context=context, **options)
        endpoint = self.context.endpoint(model, where, default_url=self.default_base_url,
                                         default_key_env=self.default_key_env, key_env=self.key_env)
        if not endpoint.model:
            raise TeacherError(f"the {self.kind} teacher needs a model: {self.kind}:MODEL@BASE_URL (or @conn:NAME), "
                               f"e.g. {self.example_spec()}")
        self.model, self.base_url, self.key_env = endpoint.model, endpoint.base_url, endpoint.key_env
        self.connection = endpoint.connection
        self.retry = RetryPolicy(self.max_retries, self.backoff, self.backoff_max)
        self.batch_size = self.batch_size or 4 * self.concurrency
        self._rng = random.Random()
        self._http = self._client = None  # made on the first batch, in the shared loop
        self._auth: dict[str, str] = {}  # the headers that carry this batch's key; empty: no key is sent
        self._secrets: tuple[str, ...] = ()  # the key, blanked in every error detail before it is cut
        self.stats = {"requests": 0, "retries": 0, "in_flight": 0, "max_in_flight": 0, "rows": 0,
                      "failed_rows": 0, "reasons": Counter(), "retry_after_waits": []}

    # -- what a subclass maps ----------------------------------------------------------------------------------
    def path(self) -> str:
        """The path under the base URL that one prompt is POSTed to."""
        raise NotImplementedError

    def body(self, prompt: str) -> dict[str, Any]:
        """The JSON body of the request for one prompt."""
        raise NotImplementedError

    def reply_text(self, data: Any) -> str:
        """The answer in the parsed JSON reply; :class:`BadResponse` when it holds none."""
        raise NotImplementedError

    def auth_headers(self, key: str) -> dict[str, str]:
        """The headers that carry the key (only called with one)."""
        return {"Authorization": f"Bearer {key}"}

    # -- the transport: a plain JSON POST, unless the API has an SDK -------------------------------------------
    def make_client(self, http):
        """What :meth:`send` talks through, made once over ``http`` (the base's pooled ``httpx2`` client): ``http``
        itself, or an SDK's client built with ``http_client=http`` and its own retries off."""
        return http

    async def send(self, client, prompt: str) -> str:
        """One attempt for one prompt: the answer's text, or an exception for :meth:`classify`."""
        resp = await client.post(self.base_url + self.path(), json=self.body(prompt))
        if resp.status_code >= 400:
            raise StatusError(resp.status_code, resp.headers, resp.content.decode("utf-8", "replace"))
        try:
            parsed = json.loads(resp.content)
        except ValueError as err:  # not JSON, or not text at all
            raise BadResponse("malformed JSON") from err
        return self.reply_text(parsed)

    def classify(self, err: BaseException) -> Fault:
        """Sort an exception from one attempt into a :class:`Fault` (a subclass with an SDK sorts the SDK's, then
        hands the rest here); anything else is a bug and propagates."""
        import httpx2

        if isinstance(err, StatusError):
            return self.status_fault(err.status, err.headers)
        if isinstance(err, httpx2.TimeoutException):
            return Fault("timeout", retry=True)
        if isinstance(err, httpx2.TransportError):
            return Fault("connection error", retry=True)
        if isinstance(err, BadResponse):
            return Fault(str(err), retry=err.retry)
        if isinstance(err, ReplyTooLarge):
            return Fault("reply too large", retry=False)
        raise err

    def status_fault(self, status: int, headers) -> Fault:
        """An HTTP error status: fatal (a refused key, an unknown model), retried (429, 408, 409, 5xx; after the
        server's ``Retry-After`` when it sends one), or the row's error."""
        if status in self.fatal_status:
            return Fault(f"HTTP {status}", retry=False, fatal=self.fatal_status[status])
        retry = status in _RETRY_STATUS or status >= 500
        return Fault(f"HTTP {status}", retry=retry, retry_after=retry_after_seconds(headers))

    # -- the shared machinery ----------------------------------------------------------------------------------
    def refuse_unknown(self, names: list[str]) -> None:
        secret = [k for k in names if any(h in k.lower() for h in _SECRET_HINTS)]
        if secret:
            raise TeacherError(f"option {secret[0]!r} looks like a secret; specs are stored with every generation. "
                               "Put the key in an environment variable (a connection's key_env, or key_env=NAME "
                               "on the command line)")
        super().refuse_unknown(names)

    def summary(self) -> dict:
        """How many rows failed and why (reasons counted), with the request counters."""
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.stats.items()
                if k != "retry_after_waits"}

    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        # One event loop per process and one client per teacher: connections are reused from batch to batch.
        future = asyncio.run_coroutine_threadsafe(self._answer_all(requests), shared_loop())
        try:
            return future.result()
        except BaseException:  # Ctrl-C or an error here: the rows in flight must not keep sending
            future.cancel()
            raise

    def close(self) -> None:
        """Close the client's connections (the next batch opens new ones)."""
        if self._http is not None:
            asyncio.run_coroutine_threadsafe(self._http.aclose(), shared_loop()).result(timeout=30)
            self._http = self._client = None

    async def _answer_all(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        key = os.environ.get(self.key_env) if self.key_env else None  # read now, held in memory only
        self._auth = self.auth_headers(key) if key else {}
        self._secrets = (key,) if key else ()
        if self._client is None:
            self._http = _http_client(self)
            self._client = self.make_client(self._http)
        gate = asyncio.Semaphore(self.concurrency)
        tasks = [asyncio.ensure_future(self._one(gate, r.prompt)) for r in requests]
        try:
            replies = await asyncio.gather(*tasks)
        except BaseException:  # a fatal answer (401) or a bug: stop the other rows from sending, then raise
            for task in tasks:
                task.cancel()
            raise
        return list(replies)

    async def _one(self, gate: asyncio.Semaphore, prompt: str) -> TeacherReply:
        """One row: attempts until success, a non-retryable answer, or the retries run out."""
        started = time.monotonic()
        self.stats["rows"] += 1
        for attempt in range(self.retry.max_retries + 1):
            async with gate:
                self.stats["requests"] += 1
                self.stats["in_flight"] += 1
                self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
                try:
                    text = _checked(await self.send(self._client, prompt))
                    return TeacherReply(text, seconds=round(time.monotonic() - started, 4))
                except Exception as err:  # sorted by classify(); whatever it does not know is re-raised
                    fault, detail = self.classify(err), _detail(err, self._secrets)
                finally:
                    self.stats["in_flight"] -= 1
            if fault.fatal:
                where = f"${self.key_env}" if self.key_env else "the key (none was sent)"
                raise TeacherError(f"{fault.fatal} ({fault.reason} from {self.base_url}); "
                                   f"check {where}, the model name {self.model!r} and the base URL")
            if not fault.retry or attempt == self.retry.max_retries:
                break
            self.stats["retries"] += 1
            wait = self.retry.delay(attempt, retry_after=fault.retry_after, rng=self._rng)
            if fault.retry_after is not None:
                self.stats["retry_after_waits"].append(wait)
            await asyncio.sleep(wait)
        self.stats["failed_rows"] += 1
        self.stats["reasons"][fault.reason] += 1
        return TeacherReply(None, error=f"{fault.reason} after {attempt + 1} attempt(s): {detail}",
                            seconds=round(time.monotonic() - started, 4))


def _checked(text) -> str:
    if not isinstance(text, str):
        raise BadResponse(f"the answer is not text ({type(text).__name__})", retry=False)
    if len(text) > MAX_ANSWER_CHARS:
        raise BadResponse(f"answer longer than {MAX_ANSWER_CHARS:,} characters", retry=False)
    return text


def _detail(err: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """A short, single-line description of one failed attempt (with the cause an SDK wrapped, e.g. ``Connection
    error. (All connection attempts failed)``). Secrets are blanked first, then the text is cut: cut first, a key
    straddling the cut would leave its start behind."""
    text, cause = str(err), str(err.__cause__ or "")
    if cause and cause not in text:
        text = f"{text} ({cause})"
    for secret in secrets:
        text = text.replace(secret, "***")
    text = " ".join(text.split()) or type(err).__name__
    for secret in secrets:  # a key broken across lines is whole again once whitespace is joined
        text = text.replace(secret, "***")
    return printable(text)[:MAX_DETAIL_CHARS]


def _http_client(teacher: EndpointTeacher):
    """The teacher's pooled client: a connection per row in flight, a short connect timeout, no redirects (a key
    never follows one), and hooks that hold for whatever sends through it (the plain POST or an SDK): a request
    carries exactly the credential headers the key rules chose, and only to the base URL's host; a reply is read
    up to :data:`MAX_BODY_BYTES` (a 50 MB answer costs 8 MB of memory and one row's error)."""
    import httpx2

    origin = httpx2.URL(teacher.base_url)

    async def credentials(request) -> None:
        for name in teacher.credential_headers:
            request.headers.pop(name, None)
        if (request.url.scheme, request.url.host, request.url.port) == (origin.scheme, origin.host, origin.port):
            request.headers.update(teacher._auth)

    async def cap(response) -> None:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise ReplyTooLarge(f"reply of {int(length):,} bytes, more than {MAX_BODY_BYTES:,}")
        response.stream = _capped(response.stream, MAX_BODY_BYTES)

    timeout, n = teacher.timeout, teacher.concurrency
    return httpx2.AsyncClient(timeout=httpx2.Timeout(timeout, connect=min(timeout, 5.0)), follow_redirects=False,
                              limits=httpx2.Limits(max_connections=n, max_keepalive_connections=n),
                              event_hooks={"request": [credentials], "response": [cap]})


def _capped(stream, limit: int):
    """``stream`` (a response body) raising :class:`ReplyTooLarge` once more than ``limit`` bytes arrived."""
    import httpx2

    class CappedStream(httpx2.AsyncByteStream):
        async def __aiter__(self):
            seen = 0
            async for chunk in stream:
                seen += len(chunk)
                if seen > limit:
                    raise ReplyTooLarge(f"reply larger than {limit:,} bytes")
                yield chunk

        async def aclose(self) -> None:
            await stream.aclose()

    return CappedStream()


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for endpoint teachers, in a daemon thread; sync callers (generation, jobs, the UI's
    worker threads, even code already inside a loop) hand it coroutines."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="workbench-endpoint-teachers", daemon=True).start()
        return _LOOP
