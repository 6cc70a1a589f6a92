"""A generation's progress and its cancel: what the batch in flight is doing (prompts sent, tokens generated), an
ETA, and a cancel that lands at once even while a teacher is busy with a batch.

:class:`Reporter` folds the counts of :func:`~workbench.rationales.generation.generate_rationales` into
:class:`~workbench.core.events.GenerationProgress` events; its :meth:`Reporter.watch` is the
:class:`~workbench.rationales.teachers.base.Watch` a teacher that generates token by token reports to.

>>> seen = []
>>> report = Reporter(seen.append, total=8, batch=4)
>>> watch = report.watch(0, 4, should_stop=None)
>>> seen[-1].phase, seen[-1].in_flight
('batch 1 of 2: 4 prompts sent', 4)
>>> watch.tokens(32, 128); report.send()
>>> seen[-1].phase, seen[-1].fraction
('batch 1 of 2: 32/128 tokens', 0.125)
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable

from workbench.core.events import GenerationProgress
from workbench.core.store_records import Generation
from workbench.rationales.teachers.base import Watch

ProgressFn = Callable[[GenerationProgress], None]
TOKEN_REPORT_SECONDS = 1.0  # token progress of the batch in flight is reported at most this often


class GenerationCancelled(Exception):
    """Raised inside a teacher's answer by a cancel in a ``generate`` job (:func:`cancel_on_sigterm`)."""


ANSWERING = threading.Event()  # a teacher is answering a batch (what a cancel may interrupt)


@contextlib.contextmanager
def cancel_on_sigterm():
    """In a job's main thread, a cancel (``cancel_job`` sends SIGTERM) that arrives while a teacher answers a batch
    stops it at once: a local model reading 16 long prompts takes minutes on a CPU before its first token, which
    no per-token check can cut, and an endpoint teacher cancels its requests in flight. The batch in flight is
    never stored (its rows stay to do); between batches the job's own handler asks the loop to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        if callable(previous):
            previous(signum, frame)  # the job's own: marks it stopping
        if ANSWERING.is_set():
            raise GenerationCancelled

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Reporter:
    """A generation's progress: rows done, the batch in flight (tokens so far), counts, and an ETA."""

    def __init__(self, progress: ProgressFn | None, total: int, batch: int):
        self.progress, self.total, self.batch = progress, total, batch
        self.counts = {"generated": 0, "parsed": 0, "parse_errors": 0, "errors": 0}
        self.done = self.in_flight = 0
        self.partial, self.phase = 0.0, ""
        self.started = time.monotonic()
        self._last = 0.0

    def watch(self, start: int, rows: int, should_stop: Callable[[], bool] | None) -> Watch:
        """The :class:`Watch` for the batch starting at row ``start``: token progress comes back here."""
        self.in_flight, self.partial = rows, 0.0
        batches = -(-self.total // self.batch)
        where = f"batch {start // self.batch + 1} of {batches}" if batches > 1 else "the batch"
        self.phase = f"{where}: {rows} prompt{'s' if rows != 1 else ''} sent"
        self.send()

        def tokens(done: int, most: int) -> None:
            self.partial = min(1.0, done / max(1, most))
            self.phase = f"{where}: {done}/{most} tokens"
            if time.monotonic() - self._last >= TOKEN_REPORT_SECONDS:  # a token can take milliseconds
                self.send()

        return Watch(on_tokens=tokens, stop=should_stop)

    def count(self, gens: list[Generation]) -> None:
        self.in_flight, self.partial, self.phase = 0, 0.0, ""
        for g in gens:
            self.counts["generated"] += 1
            key = "errors" if g.error else "parse_errors" if g.parse_error else "parsed"
            self.counts[key] += 1

    def send(self) -> None:
        self._last = time.monotonic()
        if self.progress is None:
            return
        elapsed = self._last - self.started
        so_far = self.done + self.in_flight * self.partial
        eta = elapsed / so_far * (self.total - so_far) if so_far else None
        self.progress(GenerationProgress(done=self.done, total=self.total, elapsed=round(elapsed, 3),
                                         eta=None if eta is None else round(eta, 3), in_flight=self.in_flight,
                                         partial=round(self.partial, 4), phase=self.phase, **self.counts))
