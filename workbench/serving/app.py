"""A small OpenAI-compatible server for a transformers checkpoint or a trained run (``workbench serve-model``).

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (no streaming), plus
``GET /_workbench/stats`` (request counters, for tests and the benchmark). Binds 127.0.0.1 unless told otherwise.

* A model folder (or hub id) is served through :class:`~workbench.rationales.teachers.hf.HFTeacher`'s loading and batched
  generation; requests that arrive together are generated as one batch (``max_batch``, a few ms of waiting).
* A trained run (a run folder, its ``model/`` folder, or ``run:NAME`` with the workspace) is served with its
  method's task prefix: model ``NAME`` (or ``NAME:label``) asks the label head (``[label] `` for dss),
  ``NAME:rationale`` the ``[rationale] `` head. Chat requests use the last user message as the input.
* Omitted sampling fields default to greedy (``temperature`` 0) and ``max_tokens`` 128; a field out of range
  (``max_tokens`` 0, ``top_p`` −1, ``seed`` 1e30, ``temperature`` NaN, ``n`` 2 when greedy) is an HTTP 400 that
  names it, as is text holding a lone surrogate.
* Prompts are bounded to what the model reads: a run's input is cut after its ``max_input_len`` tokens (as in
  training); a checkpoint's prompt loses its first tokens beyond its positions (less ``max_tokens``). A 10 MB
  prompt costs what a full-length one does; a body over 32 MB is refused (413).
* ``latency_ms``: every completion takes at least that long (generation time included), to stand in for a remote
  model in benchmarks. ``faults`` (:class:`FaultPlan`) injects deterministic failures by request number, for tests.

    workbench serve-model runs/quantnli-dss-tiny-20250101-120000 --port 8001
    curl -s 127.0.0.1:8001/v1/completions -d '{"model": "x:rationale", "prompt": "Premise: …"}'

>>> app = create_app(resolve_model("/models/tiny"), faults=FaultPlan(fail_500=2))    # doctest: +SKIP
>>> with ServerThread(app) as server: print(server.url)                              # doctest: +SKIP
http://127.0.0.1:41234/v1
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from workbench.core.errors import ConfigError
from workbench.core.text import has_surrogates, printable
from workbench.distill.methods import CAUSAL_SEP
from workbench.distill.numbers import NO_SLOTS, NumberSlots
from workbench.distill.runfolder import RunFolder
from workbench.rationales.teachers.hf import Completion
from workbench.serving.faults import FaultPlan, _DroppedResponse
from workbench.serving.model import Batcher, ServedModel
from workbench.serving.stats import ServerStats

MAX_TOKENS = 4096  # the longest answer a request may ask for
MAX_PROMPTS = 64  # prompts in one completions request
MAX_REQUEST_BYTES = 32 * 1024 * 1024
_CHARS_PER_TOKEN = 64  # a prompt is cut to limit × this many characters before it is tokenized at all
_MAX_PROMPT_CHARS = 4096 * _CHARS_PER_TOKEN
_DEFAULT_INPUT_TOKENS = 1024  # a relative-position model whose tokenizer names no length


@dataclass
class _State:
    served: ServedModel
    faults: FaultPlan
    latency_s: float
    batcher: Batcher
    stats: ServerStats = field(default_factory=ServerStats)
    planned: int = 0  # requests numbered for the fault plan
    _input_len: int | None = None  # a run's max_input_len, read from its config on first use

    async def handle(self, request, chat: bool):
        number = self.stats.requests
        self.stats.requests += 1
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        auth = request.headers.get("authorization", "")
        if auth:
            self.stats.key_hashes.add(hashlib.sha256(auth.removeprefix("Bearer ").encode()).hexdigest())
        record = {"n": number, "start": time.monotonic(), "status": None, "fault": None, "prompt": None}
        self.stats.log.append(record)  # now, so a request still in progress shows too
        try:
            return await self._respond(request, chat, number, record)
        finally:
            self.stats.in_flight -= 1
            record["end"] = time.monotonic()
            self.stats.statuses[str(record["status"])] += 1

    async def _respond(self, request, chat: bool, number: int, record: dict):
        try:
            body = json.loads(await _read_body(request))
            texts, params, model, slots = self._parse(body, chat)
        except _TooLarge as err:
            return _error(413, str(err), record)
        except (ValueError, KeyError, TypeError, IndexError, ConfigError) as err:  # JSON, UTF-8 and field errors
            return _error(400, f"bad request: {err}", record)
        record["prompt"] = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
        if self.faults.poison and any(self.faults.poison in t for t in texts):
            fault = "fail_500"  # poisoned prompts fail always and leave the numbered faults to the others
        else:
            fault = self.faults.fault_for(self.planned)
            self.planned += 1
        record["fault"] = fault
        if fault:
            self.stats.faults[fault] += 1
        if fault in ("fail_500", "rate_limit", "unauthorized"):
            headers = {"Retry-After": f"{self.faults.retry_after:g}"} if fault == "rate_limit" else None
            status = {"fail_500": 500, "rate_limit": 429, "unauthorized": 401}[fault]
            return _error(status, f"injected fault: {fault}", record, headers)
        started = time.monotonic()
        try:
            outs = await asyncio.gather(*(self.batcher.submit(t, params) for t in texts))
            outs = [replace(o, texts=[slot.decode(t) for t in o.texts]) for o, slot in zip(outs, slots)]
        except Exception as err:  # the model failed on this input: a 500 for this request, the server lives on
            return _error(500, f"generation failed: {type(err).__name__}: {err}", record)
        await asyncio.sleep(max(0.0, self.latency_s - (time.monotonic() - started)))
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        record["status"] = 200 if fault != "drop" else "dropped"
        if fault == "drop":
            return _DroppedResponse()
        if fault == "garbage":
            return Response(b'{"id": "cmpl-garbage", "choices": [{"text": "', media_type="application/json")
        payload = _payload(chat, model or self.served.name, number, [] if fault == "empty" else outs)
        return JSONResponse(payload)

    def _parse(self, body, chat: bool) -> tuple[list[str], tuple, str | None, list[NumberSlots]]:
        """Texts for the model (bounded to what it can read), sampling parameters, model name and number slots;
        a ValueError (HTTP 400) names the first field that is wrong."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise ValueError("model must be a string")
        params = sampling_params(body)
        max_tokens = params[3]
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise ValueError("messages must be a non-empty list of {role, content} objects")
            messages = [{**m, "content": _checked_text(_content_text(m.get("content")), "a message")}
                        for m in messages]
            if self.served.method is not None:  # a run answers one input: the last user message
                users = [m for m in messages if m.get("role") == "user"]
                if not users:
                    raise ValueError("a run answers the last user message, and there is none")
                prepared = [self._prepare_run(users[-1]["content"], model)]
            else:
                prepared = [(self._fit_checkpoint(self.served.teacher.render_messages(
                    [{**m, "content": m["content"][-_MAX_PROMPT_CHARS:]} for m in messages]), max_tokens),
                    NO_SLOTS)]
        else:
            prompt = body.get("prompt")
            prompts = [prompt] if isinstance(prompt, str) else prompt
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError("prompt must be a string or a non-empty list of strings (token ids are not taken)")
            if len(prompts) > MAX_PROMPTS:
                raise ValueError(f"at most {MAX_PROMPTS} prompts a request")
            prompts = [_checked_text(p, "the prompt") for p in prompts]
            if self.served.method is not None:
                prepared = [self._prepare_run(p, model) for p in prompts]
            else:
                prepared = [(self._fit_checkpoint(p, max_tokens), NO_SLOTS) for p in prompts]
        texts, slots = [t for t, _ in prepared], [s for _, s in prepared]
        return texts, params, model, slots

    # -- prompts bounded to what the model can read ------------------------------------------------------------
    def _prepare_run(self, text: str, model: str | None) -> tuple[str, NumberSlots]:
        """A run's input as in training: task prefix and slots, cut after ``max_input_len`` tokens (the start kept,
        so the prefix survives), the causal separator last."""
        source, slots = self.served.prepare(text[:_MAX_PROMPT_CHARS], model)
        tok, causal = self.served.teacher.loaded.tokenizer, self.served.teacher.loaded.is_causal
        sep = CAUSAL_SEP if causal and source.endswith(CAUSAL_SEP) else ""
        room = self._run_input_len() - (len(tok(sep, add_special_tokens=False).input_ids) if sep else 1)
        return keep_tokens(tok, source[:len(source) - len(sep)], max(1, room), start=True) + sep, slots

    def _run_input_len(self) -> int:
        if self._input_len is None:
            run = RunFolder.find(self.served.teacher.target)
            config = run.read_meta().get("config", {}) if run is not None else {}
            self._input_len = int(config.get("max_input_len") or 256)
        return self._input_len

    def _fit_checkpoint(self, text: str, max_tokens: int) -> str:
        """A checkpoint's prompt, its first tokens dropped when longer than the positions leave room for (an
        over-long few-shot prompt loses its first shots, never the question)."""
        teacher = self.served.teacher
        lm = teacher.loaded
        cfg = lm.model.config
        positions = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        if lm.is_causal and positions:
            if max_tokens >= positions:
                raise ValueError(f"max_tokens must be below the model's {positions} positions")
            limit = positions - max_tokens
        else:  # relative positions (T5): what the tokenizer says it was trained for, or a safe default
            known = getattr(lm.tokenizer, "model_max_length", None)
            limit = known if isinstance(known, int) and 0 < known < 100_000 else _DEFAULT_INPUT_TOKENS
        if teacher.max_input_tokens:
            limit = min(limit, teacher.max_input_tokens)
        return keep_tokens(lm.tokenizer, text, limit, start=False)


def sampling_params(body: dict) -> tuple:
    """(n, temperature, top_p, max_tokens, stops, seed) from a request, each checked; a ValueError names the first
    one out of range (an omitted field takes its default: greedy, 128 tokens)."""
    n = _whole(body, "n", 1, 1, 16)
    temperature = _real(body, "temperature", 0.0, 0.0, 2.0)
    if n > 1 and temperature <= 0:
        raise ValueError("n > 1 needs temperature > 0 (several greedy answers would all be the same)")
    top_p = _real(body, "top_p", 1.0, 0.0, 1.0, low_open=True)
    key = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    max_tokens = _whole(body, key, 128, 1, MAX_TOKENS)
    seed = body.get("seed")
    if seed is not None:
        seed = _whole(body, "seed", 0, 0, 2**63 - 1)
    stop = body.get("stop")
    stops = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if not isinstance(stops, (list, tuple)) or len(stops) > 4 or not all(isinstance(x, str) for x in stops):
        raise ValueError("stop must be a string or a list of at most 4 strings")
    stops = tuple(_checked_text(x, "a stop string") for x in stops if x)
    return n, temperature, top_p, max_tokens, stops, seed


def _whole(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {_shown(value)}")
    return value


def _real(body: dict, name: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (low < value if low_open else low <= value) and value <= high)
    if not ok:
        bound = f"above {low:g}" if low_open else f"from {low:g}"
        raise ValueError(f"{name} must be a number {bound} to {high:g}, not {_shown(value)}")
    return float(value)


def _shown(value) -> str:
    return printable(json.dumps(value, default=str, allow_nan=True)[:40])


def _checked_text(text: str, what: str) -> str:
    if has_surrogates(text):
        raise ValueError(f"{what} holds a lone surrogate (such as \\ud800), which is not valid Unicode text")
    return text


def keep_tokens(tok, text: str, limit: int, *, start: bool) -> str:
    """``text`` cut to its first (``start``) or last ``limit`` tokens, by the tokenizer's character offsets, so
    the model never sees more than it can read; at most ``limit`` × 64 characters are ever tokenized."""
    cap = limit * _CHARS_PER_TOKEN
    text = text[:cap] if start else text[-cap:]
    try:
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, ValueError, TypeError):  # a slow tokenizer has no offsets: the character cap
        return text
    if len(offsets) <= limit:
        return text
    return text[:offsets[limit - 1][1]] if start else text[offsets[-limit][0]:]


class _TooLarge(ValueError):
    pass


async def _read_body(request) -> bytes:
    """The request body, refused (HTTP 413) beyond :data:`MAX_REQUEST_BYTES`: memory stays bounded."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise _TooLarge(f"request body of {int(length):,} bytes, more than {MAX_REQUEST_BYTES:,}")
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > MAX_REQUEST_BYTES:
            raise _TooLarge(f"request body larger than {MAX_REQUEST_BYTES:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _content_text(content) -> str:
    """Chat content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _error(status: int, message: str, record: dict, headers: dict | None = None):
    record["status"] = status
    kind = {400: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}.get(
        status, "server_error")
    body = {"error": {"message": printable(message)[:2000], "type": kind, "code": status}}  # always valid UTF-8
    return JSONResponse(body, status, headers=headers)


def _payload(chat: bool, model: str, number: int, outs: list[Completion]) -> dict:
    choices = []
    for out in outs:
        for text, finish in zip(out.texts, out.finish_reasons):
            body = {"message": {"role": "assistant", "content": text}} if chat else {"text": text, "logprobs": None}
            choices.append({"index": len(choices), **body, "finish_reason": finish})
    prompt_tokens = sum(o.prompt_tokens for o in outs)
    completion_tokens = sum(o.completion_tokens for o in outs)
    return {"id": f"{'chatcmpl' if chat else 'cmpl'}-{number}", "object": "chat.completion" if chat else
            "text_completion", "created": int(time.time()), "model": model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def create_app(served: ServedModel, *, faults: FaultPlan | None = None, latency_ms: float = 0.0,
               max_batch: int = 32):
    """The FastAPI app; ``app.state.workbench`` holds the stats and the fault plan (tests may swap it)."""
    app = FastAPI(title="workbench serve-model", docs_url=None, redoc_url=None, openapi_url=None)
    state = _State(served, faults or FaultPlan(), latency_ms / 1000.0, Batcher(served, max_batch))
    app.state.workbench = state

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "workbench"}
                                           for m in served.model_ids()]}

    @app.get("/_workbench/stats")
    async def stats() -> dict:
        return state.stats.to_dict()

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await state.handle(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await state.handle(request, chat=True)

    return app
