"""The ``openai`` teacher: any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, TGI, OpenAI).

Spec: ``openai:MODEL@BASE_URL?mode=chat|completions&concurrency=16&max_tokens=256&temperature=0&timeout=60
&max_retries=6`` (without ``@BASE_URL``: OpenAI itself; ``@conn:NAME``: a connection set by whoever started the
app). More options: ``top_p``, ``seed``, ``stop`` (several joined by ``|``, ``\\n`` as written; default the next
``Q:``; empty: none), and the endpoint options every HTTP teacher shares (``concurrency``, ``timeout``,
``max_retries``, ``backoff`` / ``backoff_max``, ``batch_size``, ``key_env``: see
:mod:`workbench.rationales.teachers.endpoint`, which also owns the transport, the retries and the key rules).

This module is only the OpenAI mapping: a prompt becomes the arguments of the official ``openai`` client's
``chat.completions.create`` or ``completions.create`` (``AsyncOpenAI``, built over the base's bounded ``httpx2``
client with its own retries off, so the base's policy applies: ``Retry-After`` honoured, reasons counted per row),
and the reply's first choice becomes the answer, whatever shape the endpoint sent. The client's exceptions
(``APIStatusError``, ``APITimeoutError``, ``APIConnectionError``) are sorted into retry, fatal or a row's reason.

* The key is read from the environment when a batch is sent (``$OPENAI_API_KEY`` from the CLI, or the variable a
  connection names) and sent as a bearer token only: it is not an option, not part of the id or the settings,
  and any echo of it in an error message is blanked. The client itself never holds it: it insists on a key, so
  it gets :data:`DUMMY_KEY`, and the base's transport hook replaces its ``Authorization`` header with the one the
  key rules chose. No key: no ``Authorization`` header at all (nor the ``OpenAI-Organization`` / ``-Project``
  headers the client reads from the environment).

>>> from workbench.rationales.teachers import get_teacher
>>> from workbench.rationales.teachers.base import TeacherRequest
>>> teacher = get_teacher("openai:qwen2.5-7b@http://127.0.0.1:9/v1?concurrency=32&max_retries=0")
>>> teacher.settings                       # what goes into the id: the key and the transport options never do
{'mode': 'chat', 'max_tokens': 256, 'temperature': 0.0, 'stop': ['\\nQ:']}
>>> reply = teacher.answer([TeacherRequest(example, prompt)])[0]     # nothing listens on port 9
>>> reply.raw, reply.error                  # a failed request is a row's error, retried by the next run
(None, 'connection error after 1 attempt(s): Connection error. (All connection attempts failed)')
"""

from __future__ import annotations

import json

from workbench.rationales.teachers.base import Option
from workbench.rationales.teachers.endpoint import (  # noqa: F401 - re-exported: the names tests and notebooks use
    ENDPOINT_OPTIONS,
    MAX_ANSWER_CHARS,
    MAX_BODY_BYTES,
    MAX_DETAIL_CHARS,
    BadResponse,
    EndpointTeacher,
    Fault,
    ReplyTooLarge,
    RetryPolicy,
    _detail,
    retry_after_seconds,
)
from workbench.rationales.teachers.hf import DEFAULT_STOP, parse_stops

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DUMMY_KEY = "EMPTY"  # what the client is given (it insists on one); the transport hook sends the real one or none


class OpenAITeacher(EndpointTeacher):
    """An OpenAI-compatible endpoint, concurrent with retries: ``openai:MODEL@BASE_URL?concurrency=16``."""

    kind = "openai"
    options = (
        Option("mode", str, "chat", "chat or completions API", choices=("chat", "completions")),
        Option("max_tokens", int, 256, "longest answer, in tokens", low=1, high=32768),
        Option("temperature", float, 0.0, "0: greedy", low=0, high=2),
        Option("top_p", float, None, "nucleus sampling mass", low=0, high=1, low_open=True),
        Option("seed", int, None, "sampling seed, for endpoints that take one", low=0, high=2**63 - 1),
        Option("stop", str, DEFAULT_STOP, "stop strings joined by |, \\n written as such; empty: none"),
        *ENDPOINT_OPTIONS,
    )
    target_hint = "MODEL@http://127.0.0.1:8000/v1"
    default_base_url = DEFAULT_BASE_URL
    default_key_env = "OPENAI_API_KEY"
    # The client adds these from $OPENAI_ORG_ID / $OPENAI_PROJECT_ID: the key rules, not the environment, decide.
    credential_headers = (*EndpointTeacher.credential_headers, "openai-organization", "openai-project")

    def __init__(self, target: str = "", *, store=None, **options: str):
        super().__init__(target, store=store, **options)
        self.stops = parse_stops(self.stop)

    @property
    def settings(self) -> dict:
        return {**super().settings, "stop": list(self.stops)}

    def make_client(self, http):
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=DUMMY_KEY, base_url=self.base_url, max_retries=0, timeout=self.timeout,
                           http_client=http)

    async def send(self, client, prompt: str) -> str:
        api = client.chat.completions if self.mode == "chat" else client.completions
        return self.reply_text(await api.create(**self.body(prompt)))

    def body(self, prompt: str) -> dict:
        body = {"model": self.model, "max_tokens": self.max_tokens, "temperature": self.temperature}
        body.update({k: v for k, v in (("top_p", self.top_p), ("seed", self.seed)) if v is not None})
        if self.stops:
            body["stop"] = list(self.stops[:4])  # the API takes at most four
        if self.mode == "chat":
            return {**body, "messages": [{"role": "user", "content": prompt}]}
        return {**body, "prompt": prompt}

    def reply_text(self, data) -> str:
        return answer_text(data, self.mode)

    def classify(self, err: BaseException) -> Fault:
        import openai

        if isinstance(err, openai.APIStatusError):
            return self.status_fault(err.status_code, err.response.headers)
        if isinstance(err, openai.APIConnectionError) and isinstance(err.__cause__, ReplyTooLarge):
            return super().classify(err.__cause__)  # older clients wrap whatever the transport raised
        if isinstance(err, openai.APITimeoutError):  # before its base class, APIConnectionError
            return Fault("timeout", retry=True)
        if isinstance(err, openai.APIConnectionError):
            return Fault("connection error", retry=True)
        if isinstance(err, (json.JSONDecodeError, UnicodeDecodeError)):  # the client parses a JSON content type
            return Fault("malformed JSON", retry=True)
        return super().classify(err)


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
    """``obj.name`` or ``obj[name]`` (a parsed JSON object, or a client's model object), else None."""
    if isinstance(obj, dict):
        return obj.get(name)
    if isinstance(obj, (list, tuple, str, bytes, int, float, bool)) or obj is None:
        return None
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
