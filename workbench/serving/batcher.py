"""The batcher: prompts that arrive together are generated as one batch, one batch at a time, in a daemon thread
(the event loop keeps answering; a stopping server never waits for the thread).

Each prompt is a :class:`Job`. Its memory is reserved in the :class:`~workbench.serving.limits.Budget` before it is
queued and given back when it is settled, however that happens. While a batch generates, a stopping criterion
checks, after every token, whether a job's client has left (its rows stop) or the server is stopping (all rows
stop), and hands each streaming job its tokens. Batches are cut so that one batch, padding included, never holds
more token positions than the budget; after each, memory the allocator kept is given back to the system.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.rationales.teachers.hf import Completion
from workbench.serving.limits import Budget


class Gone(Exception):
    """The client left before its answer was generated."""


class Stopping(Exception):
    """The server is stopping (SIGTERM, Ctrl-C)."""


@dataclass(eq=False)
class Job:
    """One prompt of a request: its rendered text, its length in tokens, sampling parameters and memory cost; the
    future its answer (a :class:`Completion`) lands in; ``left`` once the client is gone; ``on_tokens(choice,
    token_ids)`` for a streaming request (called from the generation thread after every token)."""

    text: str
    prompt_tokens: int
    params: tuple  # (n, temperature, top_p, max_tokens, stops, seed)
    on_tokens: Callable | None = None
    left: threading.Event = field(default_factory=threading.Event)
    future: asyncio.Future | None = None
    running: bool = False  # in the batch being generated

    @property
    def cost(self) -> int:
        """Token positions held: prompt and answer, for each of the ``n`` rows."""
        return (self.prompt_tokens + self.params[3]) * self.params[0]


class Batcher:
    """Gathers jobs that arrive within ``wait_s`` (up to ``max_batch``) and generates them as one batch."""

    def __init__(self, served, budget: Budget, max_batch: int = 32, wait_s: float = 0.005):
        self.served, self.budget, self.max_batch, self.wait_s = served, budget, max_batch, wait_s
        self.stopping = threading.Event()
        self.cancelled_rows = 0  # rows cut short because their client left (for /_workbench/stats)
        self._queue: asyncio.Queue | None = None
        self._worker_task: asyncio.Task | None = None
        self._worker = _Worker()

    def submit(self, job: Job) -> asyncio.Future:
        """Queue a job whose cost the caller has taken from the budget; the batcher gives it back."""
        loop = asyncio.get_running_loop()
        if self._worker_task is None:  # started on first use, inside the server's loop
            self._queue = asyncio.Queue()
            self._worker_task = loop.create_task(self._loop())
        job.future = loop.create_future()
        if self.stopping.is_set():
            self._settle(job, error=Stopping())
        else:
            self._queue.put_nowait(job)
        return job.future

    def stop(self) -> None:
        """Stop generating (thread-safe: called from a signal handler): the batch in progress ends after its next
        token, and every job waiting or generating fails with :class:`Stopping`."""
        self.stopping.set()

    def _settle(self, job: Job, result: Completion | None = None, error: Exception | None = None) -> None:
        if job.future.done():
            return
        self.budget.give(job.cost)
        if error is not None:
            job.future.set_exception(error)
            job.future.exception()  # retrieved here: a request that is gone never reads it
        else:
            job.future.set_result(result)

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
            groups: dict[tuple, list[Job]] = defaultdict(list)
            for job in items:
                if self.stopping.is_set():
                    self._settle(job, error=Stopping())
                elif not job.future.done():  # else settled when its client left
                    groups[job.params].append(job)
            for params, group in groups.items():
                for chunk in self._chunks(group, params):
                    await self._run(params, chunk)

    def _chunks(self, group: list[Job], params: tuple) -> list[list[Job]]:
        """Jobs in order of length, cut so that rows × (longest prompt + max_tokens) stays within the budget."""
        n, max_tokens = params[0], params[3]
        chunks: list[list[Job]] = []
        for job in sorted(group, key=lambda j: j.prompt_tokens):
            last = chunks[-1] if chunks else None
            if (last is None or len(last) >= self.max_batch
                    or (len(last) + 1) * n * (job.prompt_tokens + max_tokens) > self.budget.limit):
                chunks.append([job])
            else:
                last.append(job)
        return chunks

    def cancel(self, job: Job) -> None:
        """The client left: a queued job is settled now (its memory given back), a generating one stops after
        its next token."""
        job.left.set()
        if not job.running and job.future is not None:
            self._settle(job, error=Gone())

    async def _run(self, params: tuple, jobs: list[Job]) -> None:
        jobs = [j for j in jobs if not j.future.done()]  # settled while queued: its client left
        if not jobs:
            return
        for job in jobs:
            job.running = True
        n, temperature, top_p, max_tokens, stops, seed = params

        def generate() -> list[Completion]:
            try:
                return self.served.teacher.complete_rendered(
                    [j.text for j in jobs], n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_tokens,
                    stops=stops, seed=seed, step_hook=self._hook(jobs, n))
            finally:
                give_back_memory()

        try:
            outs = await self._worker.run(generate)
        except Exception as err:  # a failed generation fails its requests (HTTP 500); the server lives on
            for job in jobs:
                self._settle(job, error=err)
            return
        for job, out in zip(jobs, outs):
            if self.stopping.is_set():
                self._settle(job, error=Stopping())
            elif job.left.is_set():
                self.cancelled_rows += n
                self._settle(job, error=Gone())
            else:
                self._settle(job, result=out)

    def _hook(self, jobs: list[Job], n: int):
        """The stopping criterion for a batch of ``jobs`` (``n`` rows each): streams tokens, stops rows whose
        client left, and every row once the server stops."""
        stopping = self.stopping

        def make(indices: list[int], start: int):
            import torch
            from transformers import StoppingCriteria

            rows = [jobs[i] for i in indices for _ in range(n)]  # rows are prompt-major: n samples each

            class _Watch(StoppingCriteria):
                def __call__(self, input_ids, scores, **kwargs):
                    for r, job in enumerate(rows):
                        if job.on_tokens is not None and not job.left.is_set():
                            job.on_tokens(r % n, input_ids[r, start:].tolist())
                    stop = stopping.is_set()
                    return torch.tensor([stop or job.left.is_set() for job in rows], device=input_ids.device)

            return _Watch()

        return make


class _Worker:
    """One daemon thread that runs the batches, one after another: a server that exits never waits for it (it is
    told to stop, and stops within a token, but interpreter exit does not depend on that), and the allocator
    keeps one arena for generation rather than one per thread."""

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable):
        """``await`` ``fn()`` run in the worker thread."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, daemon=True, name="serve-model-generate")
            self._thread.start()
        self._jobs.put((fn, loop, future))
        return await future

    def _serve(self) -> None:
        while True:
            fn, loop, future = self._jobs.get()
            result = error = None
            try:
                result = fn()
            except Exception as err:  # handed to the awaiting request, which answers 500
                error = err
            try:
                loop.call_soon_threadsafe(_settle_future, future, result, error)
            except RuntimeError:  # the loop is closed: the server has stopped, nobody is waiting
                pass


def _settle_future(future: asyncio.Future, result, error) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator gives memory back by itself
        return None


_TRIM = _malloc_trim()


def give_back_memory() -> None:
    """Return freed memory to the system: glibc keeps the KV caches of a big batch in its heap otherwise, and the
    process stays gigabytes larger after one big request. (Tensors are freed by reference counting; a full
    ``gc.collect()`` would cost more than the generation of a short answer.)"""
    if _TRIM is not None:
        _TRIM(0)
