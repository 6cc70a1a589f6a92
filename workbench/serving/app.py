"""A small OpenAI-compatible server for a transformers checkpoint or a trained run (``workbench serve-model``).

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (no streaming), plus
``GET /_workbench/stats`` (request counters, for tests and the benchmark). Binds 127.0.0.1 unless told otherwise.

* A model folder (or hub id) is served through :class:`~workbench.rationales.teachers.hf.HFTeacher`'s loading and batched
  generation; requests that arrive together are generated as one batch (``max_batch``, a few ms of waiting).
* A trained run (a run folder, its ``model/`` folder, or ``run:NAME`` with the workspace) is served with its
  method's task prefix: model ``NAME`` (or ``NAME:label``) asks the label head (``[label] `` for dss),
  ``NAME:rationale`` the ``[rationale] `` head. Chat requests use the last user message as the input.
* Omitted sampling fields default to greedy (``temperature`` 0) and ``max_tokens`` 128.
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
import time
from dataclasses import dataclass, field, replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from workbench.core.errors import ConfigError
from workbench.distill.numbers import NO_SLOTS, NumberSlots
from workbench.rationales.teachers.hf import Completion
from workbench.serving.faults import FaultPlan, _DroppedResponse
from workbench.serving.model import Batcher, ServedModel
from workbench.serving.stats import ServerStats


@dataclass
class _State:
    served: ServedModel
    faults: FaultPlan
    latency_s: float
    batcher: Batcher
    stats: ServerStats = field(default_factory=ServerStats)
    planned: int = 0  # requests numbered for the fault plan

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
            texts, params, model, slots = self._parse(await request.json(), chat)
        except (ValueError, KeyError, TypeError, IndexError, ConfigError) as err:
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
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        model = body.get("model")
        if chat:
            messages = [{**m, "content": _content_text(m.get("content"))} for m in body["messages"]]
            if self.served.method is not None:  # a run answers one input: the last user message
                prepared = [self.served.prepare([m for m in messages if m.get("role") == "user"][-1]["content"],
                                                model)]
            else:
                prepared = [(self.served.teacher.render_messages(messages), NO_SLOTS)]
        else:
            prompt = body["prompt"]
            prompts = [prompt] if isinstance(prompt, str) else [str(p) for p in prompt]
            prepared = [self.served.prepare(p, model) for p in prompts]
        texts, slots = [t for t, _ in prepared], [s for _, s in prepared]
        stop = body.get("stop") or ()
        stops = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
        n, temperature = int(body.get("n") or 1), float(body.get("temperature") or 0.0)
        if not 1 <= n <= 16 or (n > 1 and temperature <= 0):
            raise ValueError("n must be 1..16, and n > 1 needs temperature > 0")
        max_tokens = min(4096, int(body.get("max_tokens") or body.get("max_completion_tokens") or 128))
        seed = body.get("seed")
        params = (n, temperature, float(body.get("top_p") or 1.0), max_tokens, stops,
                  None if seed is None else int(seed))
        return texts, params, model, slots


def _content_text(content) -> str:
    """Chat content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _error(status: int, message: str, record: dict, headers: dict | None = None):
    record["status"] = status
    kind = {400: "invalid_request_error", 429: "rate_limit_error"}.get(status, "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers=headers)


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
