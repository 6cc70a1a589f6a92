"""A small OpenAI-compatible server for a transformers checkpoint or a trained run (``workbench serve-model``).

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (``stream: true`` too: see
:mod:`.streaming`), plus ``GET /_workbench/stats`` (counters, for tests and the benchmark). Binds 127.0.0.1 unless
told otherwise. Every error is OpenAI's error JSON (``{"error": {"message", "type", "param", "code"}}``).

* A model folder (or hub id) is served through :class:`~workbench.rationales.teachers.hf.HFTeacher`'s loading and batched
  generation; requests that arrive together are generated as one batch (``max_batch``, a few ms of waiting).
* A trained run (a run folder, its ``model/`` folder, or ``run:NAME`` with the workspace) is served with its
  method's task prefix: model ``NAME`` (or ``NAME:label``) asks the label head (``[label] `` for dss),
  ``NAME:rationale`` the ``[rationale] `` head. Chat requests use the last user message as the input.
* Omitted sampling fields default to greedy (``temperature`` 0) and ``max_tokens`` 128; a field out of range
  (``max_tokens`` 0, ``top_p`` −1, ``seed`` 1e30, ``temperature`` NaN, ``n`` 2 when greedy), of the wrong type
  anywhere (a chat message without ``role``, an object where text belongs), holding a lone surrogate, or asking for
  what this server does not do (``logprobs``, ``echo``, ``tools``) is an HTTP 400 that names it.
* Prompts are bounded to what the model reads: a run's input is cut after its ``max_input_len`` tokens (as in
  training); a checkpoint's prompt loses its first tokens beyond its positions (less ``max_tokens``). A body over
  32 MB is refused (413).
* Memory is bounded (:mod:`.limits`): prompt tokens, ``max_tokens`` and ``n`` per request (413 or 400 naming the
  flag that sets the limit), and the token positions in flight across requests (a request that can never fit:
  413; one that does not fit now: 429 with ``Retry-After``).
* A client that leaves stops its own generation (within a token; other requests in its batch go on); SIGTERM stops
  the whole server within seconds (:mod:`.server`).
* ``latency_ms``: every completion takes at least that long (generation time included), to stand in for a remote
  model in benchmarks. ``faults`` (:class:`FaultPlan`) injects deterministic failures by request number, for tests.

    workbench serve-model runs/quantnli-dss-tiny-20250101-120000 --port 8001
    curl -s 127.0.0.1:8001/v1/completions -d '{"model": "x:rationale", "prompt": "Premise: …"}'

>>> from workbench.serving.model import resolve_model
>>> from workbench.serving.server import ServerThread
>>> app = create_app(resolve_model("run:quantnli-dss", store.workspace), faults=FaultPlan(fail_500=2))
>>> with ServerThread(app) as server: print(server.url)                              # doctest: +ELLIPSIS
http://127.0.0.1:.../v1
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field, replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from workbench.core.errors import ConfigError
from workbench.distill.number_slots import NO_SLOTS, NumberSlots
from workbench.distill.runfolder import RunFolder
from workbench.rationales.teachers.hf import Completion
from workbench.serving.batcher import Batcher, Gone, Job, Stopping
from workbench.serving.faults import FaultPlan, _DroppedResponse
from workbench.serving.limits import Budget, Limits
from workbench.serving.model import ServedModel
from workbench.serving.request import (  # noqa: F401 - sampling_params and keep_tokens are this module's API too
    CHARS_PER_TOKEN,
    MAX_PROMPTS,
    MAX_REQUEST_BYTES,
    RequestError,
    chat_messages,
    check_fields,
    error_json,
    keep_tokens,
    prompts_of,
    read_body,
    sampling_params,
)
from workbench.serving.stats import ServerStats
from workbench.serving.streaming import Stream

_MAX_PROMPT_CHARS = 4096 * CHARS_PER_TOKEN  # text beyond this is cut before it is tokenized at all
_DEFAULT_INPUT_TOKENS = 1024  # a relative-position model whose tokenizer names no length
_STATUS_FAULTS = {"fail_500": 500, "rate_limit": 429, "unauthorized": 401}


@dataclass
class _Parsed:
    """A request, checked: the model's texts, their token counts and number slots, sampling parameters."""

    texts: list[str]
    tokens: list[int]
    slots: list[NumberSlots]
    params: tuple
    model: str | None
    stream: bool
    include_usage: bool
    chat: bool


@dataclass
class _State:
    served: ServedModel
    faults: FaultPlan
    latency_s: float
    limits: Limits
    budget: Budget
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
            if record["status"] != "streaming":  # else counted when the stream ends
                self._ended(record, record["status"])

    def _ended(self, record: dict, status) -> None:
        self.stats.in_flight -= 1
        record["status"], record["end"] = status, time.monotonic()
        self.stats.statuses[str(status)] += 1

    async def _respond(self, request, chat: bool, number: int, record: dict):
        try:
            req = self._parse(await read_body(request), chat)
            cost = self._admit(req)
        except RequestError as err:
            prefix = "bad request: " if err.status == 400 else ""
            return _error(err.status, f"{prefix}{err}", record, err.param, err.code, err.headers)
        except (ValueError, KeyError, TypeError, IndexError, ConfigError) as err:  # e.g. a run without that head
            return _error(400, f"bad request: {err}", record)
        record["prompt"] = hashlib.sha256("\0".join(req.texts).encode()).hexdigest()[:16]
        fault = self._fault(req.texts)
        record["fault"] = fault
        if fault in _STATUS_FAULTS:
            self.budget.give(cost)  # nothing is queued
            headers = {"Retry-After": f"{self.faults.retry_after:g}"} if fault == "rate_limit" else None
            return _error(_STATUS_FAULTS[fault], f"injected fault: {fault}", record, headers=headers)
        started = time.monotonic()
        jobs = [Job(text, tokens, req.params) for text, tokens in zip(req.texts, req.tokens)]
        if req.stream and fault in (None, "slow"):  # the other faults break an answer: given unstreamed
            return await self._stream(req, jobs, number, record, fault, started)
        futures = [self.batcher.submit(job) for job in jobs]
        try:
            outs = await self._answers(request, jobs, futures)
        except Gone:
            record["status"] = 499  # the client left: nobody reads this
            return Response(status_code=499)
        except Stopping:
            return _error(503, "the server is stopping; send the request again once it is back", record,
                          code="server_stopping")
        except Exception as err:  # the model failed on this input: a 500 for this request, the server lives on
            return _error(500, f"generation failed: {type(err).__name__}: {err}", record)
        outs = [replace(o, texts=[slot.decode(t) for t in o.texts]) for o, slot in zip(outs, req.slots)]
        await asyncio.sleep(max(0.0, self.latency_s - (time.monotonic() - started)))
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        record["status"] = 200 if fault != "drop" else "dropped"
        if fault == "drop":
            return _DroppedResponse()
        if fault == "garbage":
            return Response(b'{"id": "cmpl-garbage", "choices": [{"text": "', media_type="application/json")
        payload = _payload(chat, req.model or self.served.name, number, [] if fault == "empty" else outs)
        return JSONResponse(payload)

    def _fault(self, texts: list[str]) -> str | None:
        if self.faults.poison and any(self.faults.poison in t for t in texts):
            fault = "fail_500"  # poisoned prompts fail always and leave the numbered faults to the others
        else:
            fault = self.faults.fault_for(self.planned)
            self.planned += 1
        if fault:
            self.stats.faults[fault] += 1
        return fault

    async def _answers(self, request, jobs: list[Job], futures: list) -> list[Completion]:
        """The jobs' answers; :class:`Gone` (their generation stopped) when the client leaves first."""
        answers = asyncio.gather(*futures, return_exceptions=True)
        watcher = asyncio.ensure_future(_client_left(request))
        try:
            await asyncio.wait({answers, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not answers.done():
            for job in jobs:
                self.batcher.cancel(job)
            raise Gone()
        outs = answers.result()
        for out in outs:
            if isinstance(out, BaseException):
                raise out
        return outs

    async def _stream(self, req: _Parsed, jobs: list[Job], number: int, record: dict, fault, started: float):
        n = req.params[0]
        stream = Stream(tokenizer=self.served.teacher.loaded.tokenizer, chat=req.chat, number=number, n=n,
                        model=req.model or self.served.name, stops=req.params[4], include_usage=req.include_usage)
        for k, job in enumerate(jobs):
            job.on_tokens = stream.hook(k, tokens=not req.slots[k].slots)
        if fault == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
        for job in jobs:
            self.batcher.submit(job)
        record["status"] = "streaming"

        def on_end(status: int) -> None:  # once: when the events end, or after a stream that never started
            if record["status"] == "streaming":
                self._ended(record, status)
            for job in jobs:
                if not job.future.done():
                    self.batcher.cancel(job)

        events = stream.events(jobs, lambda k, text: req.slots[k].decode(text), on_end, started + self.latency_s)
        return StreamingResponse(events, media_type="text/event-stream", background=BackgroundTask(on_end, 499),
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- a request, checked and bounded -------------------------------------------------------------------------
    def _parse(self, body: dict, chat: bool) -> _Parsed:
        """Texts for the model (bounded to what it can read) and their token counts, sampling parameters, model
        name and number slots; a RequestError (HTTP 4xx) names the first field that is wrong."""
        model, stream, include_usage = check_fields(body)
        params = sampling_params(body, self.limits)
        max_tokens = params[3]
        if chat:
            messages = chat_messages(body)
            if self.served.method is not None:  # a run answers one input: the last user message
                users = [m for m in messages if m["role"] == "user"]
                if not users:
                    raise RequestError("a run answers the last user message, and there is none", param="messages")
                prepared = [self._prepare_run(users[-1]["content"], model)]
            else:
                prepared = [(self._fit_checkpoint(self._render(messages), max_tokens), NO_SLOTS)]
        else:
            prompts = prompts_of(body)
            if self.served.method is not None:
                prepared = [self._prepare_run(p, model) for p in prompts]
            else:
                prepared = [(self._fit_checkpoint(p, max_tokens), NO_SLOTS) for p in prompts]
        texts, slots = [t for t, _ in prepared], [s for _, s in prepared]
        tokens = [len(self.served.teacher._encode(t)) for t in texts]  # exactly what generation will read
        return _Parsed(texts, tokens, slots, params, model, stream, include_usage, chat)

    def _admit(self, req: _Parsed) -> int:
        """Reserve the request's memory (its cost, see :mod:`.limits`); a RequestError when it cannot be had."""
        limits, n, max_tokens = self.limits, req.params[0], req.params[3]
        prompt = sum(req.tokens)
        if prompt > limits.max_prompt_tokens:
            raise RequestError(f"the prompt{'s' if len(req.tokens) > 1 else ''} hold {prompt:,} tokens (after the "
                               f"chat template), more than the {limits.max_prompt_tokens:,} a request may have "
                               "(the server's limit; --max-prompt-tokens sets it)", status=413,
                               param="messages" if req.chat else "prompt", code="context_length_exceeded")
        cost = sum(tokens + max_tokens for tokens in req.tokens) * n
        if cost > limits.max_tokens_in_flight:
            raise RequestError(f"this request needs {cost:,} token positions ((prompt + max_tokens) × n, over its "
                               f"prompts), more than the {limits.max_tokens_in_flight:,} the server holds at once "
                               "(--max-tokens-in-flight sets it); ask for fewer prompts, a smaller n or max_tokens",
                               status=413, param="max_tokens", code="request_too_large")
        if not self.budget.take(cost):
            raise RequestError(f"the server is busy: {self.budget.in_flight:,} of its {limits.max_tokens_in_flight:,}"
                               f" token positions are in flight and this request needs {cost:,} "
                               "(--max-tokens-in-flight sets the limit); retry in a moment", status=429,
                               code="rate_limit_exceeded", headers={"Retry-After": "1"})
        return cost

    def _render(self, messages: list[dict]) -> str:
        from jinja2 import TemplateError

        try:
            return self.served.teacher.render_messages(
                [{**m, "content": m["content"][-_MAX_PROMPT_CHARS:]} for m in messages])
        except TemplateError as err:  # e.g. a template that wants user and assistant turns to alternate
            raise RequestError(f"the model's chat template cannot render these messages: {err}",
                               param="messages") from err

    def _prepare_run(self, text: str, model: str | None) -> tuple[str, NumberSlots]:
        """A run's input as in training: number slots, the input cut after ``max_input_len`` tokens (its start
        kept), its task marker and a decoder-only student's separator where the run's encoder put them."""
        (before, body, after), slots = self.served.prepare(text[:_MAX_PROMPT_CHARS], model)
        tok, causal = self.served.teacher.loaded.tokenizer, self.served.teacher.loaded.is_causal
        fixed = len(tok(before + after, add_special_tokens=False).input_ids) + (0 if causal else 1)  # T5: eos
        room = max(1, self._run_input_len() - fixed)
        return before + keep_tokens(tok, body, room, start=True) + after, slots

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
                raise RequestError(f"max_tokens must be below the model's {positions} positions", param="max_tokens")
            limit = positions - max_tokens
        else:  # relative positions (T5): what the tokenizer says it was trained for, or a safe default
            known = getattr(lm.tokenizer, "model_max_length", None)
            limit = known if isinstance(known, int) and 0 < known < 100_000 else _DEFAULT_INPUT_TOKENS
        if teacher.max_input_tokens:
            limit = min(limit, teacher.max_input_tokens)
        return keep_tokens(lm.tokenizer, text, limit, start=False)


async def _client_left(request) -> None:
    """Returns once the client has closed its connection (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _error(status: int, message: str, record: dict, param: str | None = None, code: str | None = None,
           headers: dict | None = None):
    record["status"] = status
    return error_json(status, message, param, code, headers)


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
               max_batch: int = 32, limits: Limits | None = None):
    """The FastAPI app; ``app.state.workbench`` holds the stats and the fault plan (tests may swap it) and its
    batcher (``stop()`` it to end generation at once: :mod:`.server` does on SIGTERM)."""
    app = FastAPI(title="workbench serve-model", docs_url=None, redoc_url=None, openapi_url=None)
    limits = limits or Limits()
    budget = Budget(limits)
    state = _State(served, faults or FaultPlan(), latency_ms / 1000.0, limits, budget,
                   Batcher(served, budget, max_batch))
    app.state.workbench = state

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):  # an unknown path or method: still OpenAI's JSON
        what = {404: "no such endpoint", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return error_json(exc.status_code, f"{what}: {request.method} {request.url.path} (this server answers GET "
                          "/v1/models, POST /v1/completions and POST /v1/chat/completions)",
                          code={404: "not_found", 405: "method_not_allowed"}.get(exc.status_code))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):  # a bug: JSON for the client, the traceback in the log
        return error_json(500, f"internal error: {type(exc).__name__}", code="internal_error")

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "workbench"}
                                           for m in served.model_ids()]}

    @app.get("/_workbench/stats")
    async def stats() -> dict:
        return {**state.stats.to_dict(), "tokens_in_flight": budget.in_flight, "tokens_in_flight_peak": budget.peak,
                "cancelled_rows": state.batcher.cancelled_rows}

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await state.handle(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await state.handle(request, chat=True)

    return app
