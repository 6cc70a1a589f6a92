"""A small OpenAI-compatible server for a transformers checkpoint or a trained run (``workbench serve-model``).

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (no streaming), plus
``GET /_workbench/stats`` (request counters, for tests and the benchmark). Binds 127.0.0.1 unless told otherwise.

* A model folder (or hub id) is served through :class:`~workbench.teachers.hf.HFTeacher`'s loading and batched
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
import json
import logging
import socket
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .errors import ConfigError, RunError
from .numbers import NO_SLOTS, NumberSlots, slots_for
from .teachers.hf import Completion, HFTeacher

_FAULT_ORDER = ("fail_500", "rate_limit", "slow", "drop", "garbage", "empty", "unauthorized")


@dataclass
class FaultPlan:
    """Faults by request number (0-based; completion requests without poison), in this order: the first ``fail_500``
    requests get HTTP 500, the next ``rate_limit`` get 429 with ``Retry-After: retry_after``, the next ``slow``
    answer after ``slow_seconds``, then ``drop`` close the connection mid-body, ``garbage`` send broken JSON,
    ``empty`` send no choices and ``unauthorized`` get 401. Every request whose prompt contains ``poison`` (when set) gets 500, always.

    >>> plan = FaultPlan(fail_500=1, rate_limit=2)
    >>> [plan.fault_for(i) for i in range(4)]
    ['fail_500', 'rate_limit', 'rate_limit', None]
    >>> FaultPlan.parse("drop=2,retry_after=0.5").drop
    2
    """

    fail_500: int = 0
    rate_limit: int = 0
    retry_after: float = 1.0
    slow: int = 0
    slow_seconds: float = 5.0
    drop: int = 0
    garbage: int = 0
    empty: int = 0
    unauthorized: int = 0
    poison: str = ""

    def fault_for(self, number: int) -> str | None:
        for kind in _FAULT_ORDER:
            count = getattr(self, kind)
            if number < count:
                return kind
            number -= count
        return None

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """``"fail_500=3,rate_limit=2,retry_after=1"`` (the CLI's ``--faults``)."""
        defaults, values = cls(), {}
        for key, _, value in (p.strip().partition("=") for p in (text or "").split(",") if p.strip()):
            if not hasattr(defaults, key):
                raise ConfigError(f"unknown fault {key!r}; known: {', '.join(vars(defaults))}")
            try:
                values[key] = type(getattr(defaults, key))(value)  # each field's default gives its type
            except ValueError as err:
                raise ConfigError(f"bad value for fault {key!r}: {value!r}") from err
        return cls(**values)


@dataclass
class ServedModel:
    """What the server answers with: a loaded-on-demand teacher, and for a run its method (task prefixes)."""

    name: str
    teacher: HFTeacher
    method: object | None = None  # a workbench.methods.Method for runs
    numbers: str = "text"  # a run trained with number slots: inputs slotted, answers mapped back

    def model_ids(self) -> list[str]:
        if self.method is None:
            return [self.name]
        heads = ["label"] + (["rationale"] if self.method.rationale_source("") is not None else [])
        return [self.name] + [f"{self.name}:{h}" for h in heads]

    def prepare(self, text: str, model: str | None) -> tuple[str, NumberSlots]:
        """The model's input for ``text`` and the number slots that map its answer back."""
        slots = slots_for(self.numbers, text)
        return self.source(slots.encode(text), model), slots

    def source(self, text: str, model: str | None) -> str:
        """The model's input for ``text``: a run's task prefix (``model`` ending in ``:rationale`` or ``:label``)."""
        if self.method is None:
            return text
        head = (model or "").rpartition(":")[2] if ":" in (model or "") else "label"
        source = {"label": self.method.label_source, "rationale": self.method.rationale_source}.get(
            head, lambda _: None)(text)
        if source is None:
            raise ConfigError(f"run {self.name!r} ({self.method.name}) has no head {head!r}; models: "
                              f"{', '.join(self.model_ids())}")
        if self.teacher.loaded.is_causal:
            from .methods import CAUSAL_SEP

            source += CAUSAL_SEP  # decoder-only students were trained with this separator before the answer
        return source


def resolve_model(spec: str, workspace: str | Path | None = None, *, max_batch: int = 32, **options: str
                  ) -> ServedModel:
    """A model folder or hub id, a run folder (or its ``model/``), or ``run:NAME`` inside ``workspace``."""
    if spec.startswith("run:"):
        if workspace is None:
            raise ConfigError("run:NAME needs the workspace (--workspace)")
        folder = Path(workspace) / "runs" / spec[4:]
        if not folder.is_dir():
            raise RunError(f"no run {spec[4:]!r} in {workspace}; list runs with `workbench runs`")
    else:
        folder = Path(spec).expanduser()
    run_dir = None
    if (folder / "model" / "config.json").is_file() and (folder / "config.json").is_file():
        run_dir = folder
    elif folder.name == "model" and (folder.parent / "trainingset.jsonl").is_file():
        run_dir = folder.parent
    elif spec.startswith("run:"):
        raise RunError(f"run {spec[4:]!r} has no final model yet; resume it with `workbench train --resume`")
    opts = {"stop": "", "batch_size": str(max_batch), **options}
    if run_dir is None:
        return ServedModel(folder.name or spec, HFTeacher(spec, **opts))
    from .methods import get_method

    meta = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    method = get_method(meta["config"]["method"], alpha=meta["config"].get("alpha", 0.5))
    numbers = meta["config"].get("numbers", "text")
    return ServedModel(run_dir.name, HFTeacher(str(run_dir / "model"), **opts), method,
                       "slots" if numbers == "slots" else "text")


class Batcher:
    """Gathers requests that arrive within ``wait_s`` (up to ``max_batch``) and generates them as one batch;
    one generation runs at a time, in a worker thread, so the event loop keeps accepting requests."""

    def __init__(self, served: ServedModel, max_batch: int = 32, wait_s: float = 0.005):
        self.served, self.max_batch, self.wait_s = served, max_batch, wait_s
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, text: str, params: tuple) -> Completion:
        if self._worker is None:  # started on first use, inside the server's loop
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((text, params, future))
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            deadline = loop.time() + self.wait_s
            while len(items) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    items.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
            groups: dict[tuple, list] = defaultdict(list)
            for item in items:
                groups[item[1]].append(item)
            for params, group in groups.items():
                await self._run(params, group)

    async def _run(self, params: tuple, group: list) -> None:
        n, temperature, top_p, max_tokens, stops, seed = params
        texts = [text for text, _, _ in group]
        try:
            outs = await asyncio.to_thread(self.served.teacher.complete_rendered, texts, n=n, temperature=temperature,
                                           top_p=top_p, max_new_tokens=max_tokens, stops=stops, seed=seed)
        except Exception as err:  # a failed generation fails its requests (HTTP 500); the server lives on
            for _, _, future in group:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, _, future), out in zip(group, outs):
            if not future.done():  # the client may have gone away
                future.set_result(out)


@dataclass
class ServerStats:
    """Counters the tests and the benchmark read (``GET /_workbench/stats``); never the key itself."""

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    statuses: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    key_hashes: set = field(default_factory=set)  # sha256 of the bearer tokens seen, to check which key was sent
    # per request: number, start, end, status, fault, prompt sha; bounded, as serve-model may run for days
    log: deque = field(default_factory=lambda: deque(maxlen=100_000))

    def to_dict(self) -> dict:
        prompts = Counter(r["prompt"] for r in self.log if r["status"] == 200)
        took = sorted(r["end"] - r["start"] for r in self.log if "end" in r)
        return {"requests": self.requests, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                "statuses": dict(self.statuses), "faults": dict(self.faults),
                "seconds_median": round(took[len(took) // 2], 4) if took else None,
                "seconds_p90": round(took[int(len(took) * 0.9)], 4) if took else None,
                "duplicate_prompts": sum(c - 1 for c in prompts.values() if c > 1)}


class _DroppedResponse:
    """Starts a response, sends part of the body, and returns: uvicorn then closes the connection mid-body."""

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"id": "cmpl-dropped", "cho', "more_body": True})


class _QuietDrops(logging.Filter):
    """The dropped-connection fault is on purpose; keep uvicorn from logging it as an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


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


class ServerThread:
    """Run an app with uvicorn in a background thread on 127.0.0.1 (a free port unless given), for tests.

    >>> with ServerThread(app) as server:           # doctest: +SKIP
    ...     get_teacher(f"openai:tiny@{server.url}")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))  # bound here, so the port is known before the server runs
        self.host, self.port = host, self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", backlog=2048)
        self.server = uvicorn.Server(config)
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
        self.server.should_exit = True
        self.thread.join(timeout=10)

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(spec: str, *, host: str = "127.0.0.1", port: int = 8000, workspace: str | None = None,
          latency_ms: float = 0.0, faults: FaultPlan | None = None, max_batch: int = 32,
          options: dict | None = None, log_level: str = "info") -> None:
    """Serve until interrupted (what ``workbench serve-model`` runs); ``options`` are HFTeacher options.
    Loads the model before listening, so a bad checkpoint fails here rather than on the first request."""
    import uvicorn

    served = resolve_model(spec, workspace, max_batch=max_batch, **(options or {}))
    served.teacher.loaded  # noqa: B018 - load now
    app = create_app(served, faults=faults, latency_ms=latency_ms, max_batch=max_batch)
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, backlog=2048)
