"""Reading a request to ``serve-model``: the body (bounded), its fields (each checked, a wrong type anywhere is a
:class:`RequestError` naming the field), and the OpenAI error JSON every refusal is answered with.

>>> sampling_params({"max_tokens": 8, "temperature": 0.5, "n": 2})
(2, 0.5, 1.0, 8, (), None)
>>> sampling_params({"n": 99})
Traceback (most recent call last):
...
workbench.serving.request.RequestError: n must be a whole number from 1 to 16, not 99 (the server's limit; --max-n sets it)
>>> chat_messages({"messages": [{"content": "hi"}]})
Traceback (most recent call last):
...
workbench.serving.request.RequestError: messages[0].role must be one of system, developer, user, assistant, tool, not null
"""

from __future__ import annotations

import json
import math

from fastapi.responses import JSONResponse

from workbench.core.surrogates import has_surrogates, printable
from workbench.serving.limits import Limits

MAX_PROMPTS = 64  # prompts in one completions request
MAX_MESSAGES = 1024  # messages in one chat request
MAX_REQUEST_BYTES = 32 * 1024 * 1024
CHARS_PER_TOKEN = 64  # a prompt is cut to limit × this many characters before it is tokenized at all
ROLES = ("system", "developer", "user", "assistant", "tool")
# OpenAI fields this server does not implement: refused unless they hold their no-op value, so a client never
# silently gets something other than what it asked for (a wrong type is refused too).
UNSUPPORTED = {"logprobs": (None, False, 0), "top_logprobs": (None, 0), "echo": (None, False), "best_of": (None, 1),
               "suffix": (None, ""), "logit_bias": (None, {}), "presence_penalty": (None, 0),
               "frequency_penalty": (None, 0), "tools": (None, []), "functions": (None, []),
               "response_format": (None, {"type": "text"})}
_DEFAULT_MAX_TOKENS = 128
_CODES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
          405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}


class RequestError(ValueError):
    """A request refused with HTTP ``status`` (400 unless said) and the OpenAI error's ``param`` and ``code``."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.param, self.status, self.code, self.headers = param, status, code, headers


def error_json(status: int, message: str, param: str | None = None, code: str | None = None,
               headers: dict | None = None) -> JSONResponse:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it; the message is always valid UTF-8."""
    kind = _CODES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": printable(message)[:2000], "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status, headers=headers)


async def read_body(request) -> dict:
    """The request's JSON object, refused (HTTP 413) beyond :data:`MAX_REQUEST_BYTES` so memory stays bounded, and
    (400) when it is not UTF-8 JSON holding an object."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise RequestError(f"request body of {int(length):,} bytes, more than {MAX_REQUEST_BYTES:,}", status=413,
                           code="request_too_large")
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > MAX_REQUEST_BYTES:
            raise RequestError(f"request body larger than {MAX_REQUEST_BYTES:,} bytes", status=413,
                               code="request_too_large")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as err:  # not UTF-8, not JSON, or nested beyond the parser's depth
        raise RequestError(f"the body is not JSON: {err}"[:300]) from err
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    return body


def check_fields(body: dict) -> tuple[str | None, bool, bool]:
    """(model, stream, include usage in the stream) after checking the fields every request may hold."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(f"model must be a string, not {shown(model)}", param="model")
    for name, allowed in UNSUPPORTED.items():
        value = body.get(name)
        if not any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed):
            raise RequestError(f"{name} is not supported by this server (got {shown(value)}); leave it out",
                               param=name, code="unsupported_parameter")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RequestError(f"stream must be true or false, not {shown(stream)}", param="stream")
    options = body.get("stream_options")
    if options is not None and not (isinstance(options, dict)
                                    and isinstance(options.get("include_usage", False), bool)):
        raise RequestError("stream_options must be an object such as {\"include_usage\": true}",
                           param="stream_options")
    return model, bool(stream), bool((options or {}).get("include_usage"))


def sampling_params(body: dict, limits: Limits | None = None) -> tuple:
    """(n, temperature, top_p, max_tokens, stops, seed) from a request, each checked; a RequestError names the first
    one out of range (an omitted field takes its default: greedy, 128 tokens or the server's limit if lower)."""
    limits = limits or Limits()
    n = _whole(body, "n", 1, 1, limits.max_n, flag="--max-n")
    temperature = _real(body, "temperature", 0.0, 0.0, 2.0)
    if n > 1 and temperature <= 0:
        raise RequestError("n > 1 needs temperature > 0 (several greedy answers would all be the same)", param="n")
    top_p = _real(body, "top_p", 1.0, 0.0, 1.0, low_open=True)
    key = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    max_tokens = _whole(body, key, min(_DEFAULT_MAX_TOKENS, limits.max_tokens), 1, limits.max_tokens,
                        flag="--max-tokens")
    seed = body.get("seed")
    if seed is not None:
        seed = _whole(body, "seed", 0, 0, 2**63 - 1)
    stop = body.get("stop")
    stops = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if not isinstance(stops, (list, tuple)) or len(stops) > 4 or not all(isinstance(x, str) for x in stops):
        raise RequestError("stop must be a string or a list of at most 4 strings", param="stop")
    stops = tuple(checked_text(x, "a stop string", "stop") for x in stops if x)
    return n, temperature, top_p, max_tokens, stops, seed


def prompts_of(body: dict) -> list[str]:
    """A completions request's prompts: a string or a non-empty list of at most :data:`MAX_PROMPTS` strings."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise RequestError("prompt must be a string or a non-empty list of strings (token ids are not taken)",
                           param="prompt")
    if len(prompts) > MAX_PROMPTS:
        raise RequestError(f"at most {MAX_PROMPTS} prompts a request", param="prompt")
    return [checked_text(p, "the prompt", "prompt") for p in prompts]


def chat_messages(body: dict) -> list[dict]:
    """A chat request's messages as ``{role, content}`` with text content, every field checked (the model's chat
    template then sees only well-formed messages)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise RequestError(f"at most {MAX_MESSAGES} messages a request", param="messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object with role and content, not {shown(message)}", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(f"{where}.role must be one of {', '.join(ROLES)}, not {shown(role)}",
                               param=f"{where}.role")
        content = checked_text(_content_text(message.get("content"), f"{where}.content"), "a message",
                               f"{where}.content")
        out.append({"role": role, "content": content})
    return out


def _content_text(content, where: str) -> str:
    """Chat content as text: a string, null, or a list of ``{"type": "text", "text": ...}`` parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise RequestError(f"{where} must be a string or a list of text parts ({{\"type\": \"text\", \"text\": ...}}); "
                       f"this server reads text only, not {shown(content)}", param=where)


def _whole(body: dict, name: str, default: int, low: int, high: int, flag: str = "") -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        limit = f" (the server's limit; {flag} sets it)" if flag and isinstance(value, int) and value > high else ""
        raise RequestError(f"{name} must be a whole number from {low} to {high}, not {shown(value)}{limit}",
                           param=name)
    return value


def _real(body: dict, name: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (low < value if low_open else low <= value) and value <= high)
    if not ok:
        bound = f"above {low:g}" if low_open else f"from {low:g}"
        raise RequestError(f"{name} must be a number {bound} to {high:g}, not {shown(value)}", param=name)
    return float(value)


def shown(value) -> str:
    """A value as JSON, cut short, for a message."""
    return printable(json.dumps(value, default=str, allow_nan=True)[:40])


def checked_text(text: str, what: str, param: str | None = None) -> str:
    if has_surrogates(text):
        raise RequestError(f"{what} holds a lone surrogate (such as \\ud800), which is not valid Unicode text",
                           param=param)
    return text


def keep_tokens(tok, text: str, limit: int, *, start: bool) -> str:
    """``text`` cut to its first (``start``) or last ``limit`` tokens, by the tokenizer's character offsets, so
    the model never sees more than it can read; at most ``limit`` × 64 characters are ever tokenized."""
    cap = limit * CHARS_PER_TOKEN
    text = text[:cap] if start else text[-cap:]
    try:
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, ValueError, TypeError):  # a slow tokenizer has no offsets: the character cap
        return text
    if len(offsets) <= limit:
        return text
    return text[:offsets[limit - 1][1]] if start else text[offsets[-limit][0]:]
