"""The ``openai`` teacher: any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, TGI, OpenAI).

Spec: ``openai:MODEL@BASE_URL?mode=chat|completions&concurrency=16&max_tokens=256&temperature=0&timeout=60
&max_retries=6`` (without ``@BASE_URL``: OpenAI itself). More options: ``top_p``, ``seed``, ``stop`` (several
joined by ``|``, ``\\n`` as written; default the next ``Q:``; empty: none), ``key_env`` (the environment variable
holding the key, default ``OPENAI_API_KEY``), ``backoff`` / ``backoff_max`` (seconds), ``batch_size``.

* The key is read from the environment when the first batch is sent and handed to the client only: it is not
  an option, not part of the id or the settings, and any echo of it in an error message is blanked. Unset, a dummy key is sent (local
  servers ignore it); a 401/403 stops the job with a message naming the variable.
* The official ``AsyncOpenAI`` client with its own retries off (``max_retries=0``), so this policy applies:
  at most ``concurrency`` requests in flight (a semaphore, released while a row waits to retry); retries on
  429/408/409/5xx, timeouts, dropped connections, malformed JSON and empty choices, with exponential backoff and
  full jitter, or exactly the server's ``Retry-After`` (``retry-after-ms``) when it sends one. A row whose retries
  run out gets ``TeacherReply(error=...)``; the other rows go on, and a re-run asks again for those rows only.
* ``batch_size`` defaults to 4 × concurrency: each batch is committed to the store as it finishes, so the UI sees
  the first results early while the semaphore keeps the endpoint busy.
* ``teacher.stats``: requests sent, retries, max in flight, failed rows and their reasons (for the benchmark and
  the job summary).

>>> teacher = get_teacher("openai:qwen2.5-7b@http://127.0.0.1:8000/v1?concurrency=32")   # doctest: +SKIP
>>> teacher.answer([TeacherRequest(example, prompt)])[0].raw                              # doctest: +SKIP
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
from urllib.parse import urlparse

from workbench.core.errors import TeacherError
from workbench.core.text import printable
from workbench.rationales.teachers.base import Option, Teacher, TeacherReply, TeacherRequest
from workbench.rationales.teachers.hf import DEFAULT_STOP, parse_stops

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DUMMY_KEY = "EMPTY"  # what vLLM and friends expect when they run without a key
_SECRET_HINTS = ("key", "token", "secret", "password", "authorization")
_RETRY_STATUS = {408, 409, 429}
_FATAL_STATUS = {401: "the endpoint refused the API key", 403: "the endpoint refused access",
                 404: "the endpoint does not know this model or path"}


MAX_ANSWER_CHARS = 1_000_000  # one answer longer than this is a per-row error, never stored
MAX_BODY_BYTES = 8 * 1024 * 1024  # a reply body is read up to this much (1 MB of text, JSON-escaped, fits)
MAX_DETAIL_CHARS = 200


class BadResponse(Exception):
    """The endpoint answered 200 but not with a usable completion (garbage JSON, no choices, no text)."""

    def __init__(self, message: str, retry: bool = True):
        super().__init__(message)
        self.retry = retry


class ReplyTooLarge(Exception):
    """A reply body larger than :data:`MAX_BODY_BYTES`: reading stops there (memory stays bounded)."""


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


def classify(err: BaseException) -> Fault:
    """Sort an exception from one attempt into a :class:`Fault`; anything else is a bug and propagates."""
    import httpx2
    import openai

    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        if status in _FATAL_STATUS:
            return Fault(f"HTTP {status}", retry=False, fatal=_FATAL_STATUS[status])
        retry = status in _RETRY_STATUS or status >= 500
        return Fault(f"HTTP {status}", retry=retry, retry_after=retry_after_seconds(err.response.headers))
    if isinstance(err, (openai.APITimeoutError, httpx2.TimeoutException)):
        return Fault("timeout", retry=True)
    if isinstance(err, (openai.APIConnectionError, httpx2.TransportError)):
        return Fault("connection error", retry=True)
    if isinstance(err, json.JSONDecodeError):
        return Fault("malformed JSON", retry=True)
    if isinstance(err, BadResponse):
        return Fault(str(err), retry=err.retry)
    if isinstance(err, ReplyTooLarge):
        return Fault("reply too large", retry=False)
    raise err


class OpenAITeacher(Teacher):
    """An OpenAI-compatible endpoint, concurrent with retries: ``openai:MODEL@BASE_URL?concurrency=16``."""

    kind = "openai"
    options = (
        Option("mode", str, "chat", "chat or completions API", choices=("chat", "completions")),
        Option("max_tokens", int, 256, "longest answer, in tokens", low=1, high=32768),
        Option("temperature", float, 0.0, "0: greedy", low=0, high=2),
        Option("top_p", float, None, "nucleus sampling mass", low=0, high=1, low_open=True),
        Option("seed", int, None, "sampling seed, for endpoints that take one", low=0, high=2**63 - 1),
        Option("stop", str, DEFAULT_STOP, "stop strings joined by |, \\n written as such; empty: none"),
        Option("concurrency", int, 16, "requests in flight at most", sampling=False, low=1, high=1024),
        Option("timeout", float, 60.0, "seconds per request", sampling=False, low=0, high=3600, low_open=True),
        Option("max_retries", int, 6, "retries of a failed request", sampling=False, low=0, high=100),
        Option("key_env", str, "OPENAI_API_KEY", "environment variable holding the key", sampling=False),
        Option("backoff", float, 0.5, "first retry wait (seconds, jittered)", sampling=False, low=0, high=600),
        Option("backoff_max", float, 8.0, "longest retry wait (seconds)", sampling=False, low=0, high=3600),
        Option("batch_size", int, None, "rows committed together (default 4 × concurrency)", sampling=False,
               low=1, high=100_000),
    )
    needs_target = True
    target_hint = "MODEL@http://127.0.0.1:8000/v1"
    cost = "money"

    def __init__(self, target: str = "", *, store=None, **options: str):
        super().__init__(target, store=store, **options)
        self.model, _, url = target.partition("@")
        self.base_url = (url or DEFAULT_BASE_URL).rstrip("/")
        _check_target(self.model, self.base_url)
        self.retry = RetryPolicy(self.max_retries, self.backoff, self.backoff_max)
        self.batch_size = self.batch_size or 4 * self.concurrency
        self.stops = parse_stops(self.stop)
        self._rng = random.Random()
        self._client = None  # made on the first batch, in the shared loop
        self._secrets: tuple[str, ...] = ()  # the key, blanked in every error detail before it is cut
        self.stats = {"requests": 0, "retries": 0, "in_flight": 0, "max_in_flight": 0, "rows": 0,
                      "failed_rows": 0, "reasons": Counter(), "retry_after_waits": []}

    @property
    def settings(self) -> dict:
        return {**super().settings, "stop": list(self.stops)}

    def refuse_unknown(self, names: list[str]) -> None:
        secret = [k for k in names if any(h in k.lower() for h in _SECRET_HINTS)]
        if secret:
            raise TeacherError(f"option {secret[0]!r} looks like a secret; specs are stored with every generation. "
                               "Put the key in an environment variable (default OPENAI_API_KEY; key_env=NAME)")
        super().refuse_unknown(names)

    def summary(self) -> dict:
        """How many rows failed and why (reasons counted), with the request counters."""
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.stats.items()
                if k != "retry_after_waits"}

    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        # One event loop per process and one client per teacher: connections are reused from batch to batch.
        future = asyncio.run_coroutine_threadsafe(self._answer_all(requests), _shared_loop())
        try:
            return future.result()
        except BaseException:  # Ctrl-C or an error here: the rows in flight must not keep sending
            future.cancel()
            raise

    async def _answer_all(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        from openai import AsyncOpenAI

        key = os.environ.get(self.key_env) or DUMMY_KEY  # read here, held by the client (in memory) only
        if self._client is None:
            self._client = AsyncOpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout,
                                       http_client=_bounded_http_client(self.timeout))
        self._secrets = (key,) if key != DUMMY_KEY else ()
        gate = asyncio.Semaphore(self.concurrency)
        tasks = [asyncio.ensure_future(self._one(self._client, gate, r.prompt)) for r in requests]
        try:
            replies = await asyncio.gather(*tasks)
        except BaseException:  # a fatal answer (401) or a bug: stop the other rows from sending, then raise
            for task in tasks:
                task.cancel()
            raise
        return list(replies)

    def close(self) -> None:
        """Close the client's connections (the next batch opens new ones)."""
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), _shared_loop()).result(timeout=30)
            self._client = None

    async def _one(self, client, gate: asyncio.Semaphore, prompt: str) -> TeacherReply:
        """One row: attempts until success, a non-retryable answer, or the retries run out."""
        started = time.monotonic()
        self.stats["rows"] += 1
        for attempt in range(self.retry.max_retries + 1):
            async with gate:
                self.stats["requests"] += 1
                self.stats["in_flight"] += 1
                self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
                try:
                    text = await self._call(client, prompt)
                    return TeacherReply(text, seconds=round(time.monotonic() - started, 4))
                except Exception as err:  # sorted by classify(); whatever it does not know is re-raised
                    fault, detail = classify(err), _detail(err, self._secrets)
                finally:
                    self.stats["in_flight"] -= 1
            if fault.fatal:
                raise TeacherError(f"{fault.fatal} ({fault.reason} from {self.base_url}); "
                                   f"check ${self.key_env}, the model name {self.model!r} and the base URL")
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

    async def _call(self, client, prompt: str) -> str:
        extra = {k: v for k, v in (("top_p", self.top_p), ("seed", self.seed)) if v is not None}
        if self.stops:
            extra["stop"] = list(self.stops[:4])  # the API takes at most four
        common = {"model": self.model, "max_tokens": self.max_tokens, "temperature": self.temperature,
                  "timeout": self.timeout, **extra}
        if self.mode == "chat":
            resp = await client.chat.completions.create(messages=[{"role": "user", "content": prompt}], **common)
        else:
            resp = await client.completions.create(prompt=prompt, **common)
        return answer_text(resp, self.mode)


def _check_target(model: str, base_url: str) -> None:
    if not model:
        raise TeacherError("the openai teacher needs a model: openai:MODEL@BASE_URL, e.g. "
                           "openai:qwen2.5-7b@http://127.0.0.1:8000/v1")
    url = urlparse(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise TeacherError(f"base URL {base_url!r} must look like http://HOST:PORT/v1")
    if url.username or url.password:
        raise TeacherError("do not put credentials in the base URL: it is stored with every generation; put the "
                           "key in an environment variable and name it with key_env=NAME")


def answer_text(resp, mode: str) -> str:
    """The first choice's text from a parsed reply, whatever shape the endpoint sent; :class:`BadResponse` when it
    holds none (a body that is not JSON arrives as text; choices without a message or text; content that is not
    a string; an answer longer than :data:`MAX_ANSWER_CHARS`).

    >>> answer_text({"choices": [{"text": "4"}]}, "completions")
    '4'
    """
    choices = _field(resp, "choices")
    if isinstance(resp, (str, bytes)) or choices is None:
        raise BadResponse("malformed response")
    if not isinstance(choices, (list, tuple)):
        raise BadResponse(f"'choices' is a {type(choices).__name__}, not a list", retry=False)
    if not choices:
        raise BadResponse("empty choices")
    first = choices[0]
    text = _field(_field(first, "message"), "content") if mode == "chat" else _field(first, "text")
    if text is None:
        if mode == "chat" and _field(first, "message") is None:
            raise BadResponse("a choice without a message", retry=False)
        if mode != "chat" and not _has_field(first, "text"):
            raise BadResponse("a choice without text", retry=False)
        return ""  # no content (a refusal, a tool call) is an empty answer: a parse error, not a crash
    if not isinstance(text, str):
        raise BadResponse(f"the answer is not text ({type(text).__name__})", retry=False)
    if len(text) > MAX_ANSWER_CHARS:
        raise BadResponse(f"answer longer than {MAX_ANSWER_CHARS:,} characters", retry=False)
    return text


def _field(obj, name: str):
    """``obj.name`` or ``obj[name]`` (the client builds models without validating them), else None."""
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name) if isinstance(extra, dict) else None
    return value


def _has_field(obj, name: str) -> bool:
    if isinstance(obj, dict):
        return name in obj
    fields = getattr(obj, "model_fields_set", None)
    return name in fields if fields is not None else hasattr(obj, name)


def _detail(err: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """A short, single-line description of one failed attempt. Secrets are blanked first, then the text is cut:
    cut first, a key straddling the cut would leave its start behind."""
    text = str(err)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = " ".join(text.split()) or type(err).__name__
    for secret in secrets:  # a key broken across lines is whole again once whitespace is joined
        text = text.replace(secret, "***")
    return printable(text)[:MAX_DETAIL_CHARS]


def _bounded_http_client(timeout: float):
    """The client's own HTTP client, but reading at most :data:`MAX_BODY_BYTES` of any reply: a 50 MB answer
    costs 8 MB of memory and one per-row error, not the job."""
    import httpx2
    from openai import DefaultAsyncHttpxClient

    async def cap(response) -> None:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise ReplyTooLarge(f"reply of {int(length):,} bytes, more than {MAX_BODY_BYTES:,}")
        response.stream = _capped(response.stream, MAX_BODY_BYTES)

    return DefaultAsyncHttpxClient(timeout=httpx2.Timeout(timeout, connect=min(timeout, 5.0)),
                                   event_hooks={"response": [cap]})


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


def _shared_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for endpoint teachers, in a daemon thread; sync callers (generation, jobs, the UI's
    worker threads, even code already inside a loop) hand it coroutines."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="workbench-endpoint-teachers", daemon=True).start()
        return _LOOP
