"""``stream: true``: answers sent as they are generated, as server-sent events in OpenAI's chunk format
(``text_completion`` or ``chat.completion.chunk``; a chat stream opens each choice with its role), ending with
``data: [DONE]``. With ``stream_options: {"include_usage": true}`` a last chunk holds the token counts.

Text is sent only once it is certain: a tail that may still become a stop string, trailing spaces (answers are
stripped) and half a UTF-8 character wait for the next token, so the chunks joined are exactly the unstreamed
answer. A run trained with number slots sends each answer whole at its end (its slots map back only then).

>>> d = TextDelta(("\\nQ:",))
>>> [d.feed(t) for t in (" 4 +", " 4 + 3 =", " 4 + 3 = 7\\n", " 4 + 3 = 7\\nQ")], d.finish("4 + 3 = 7")
(['4 +', ' 3 =', ' 7', ''], '')
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from workbench.rationales.teachers.hf import cut_at_stop
from workbench.serving.batcher import Gone, Job, Stopping


class TextDelta:
    """What of one choice's text may be sent now: the part the final answer certainly begins with."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops, self.sent = stops, ""

    def feed(self, text: str) -> str:
        """The new safe part of ``text`` (everything generated so far, decoded)."""
        safe = cut_at_stop(text, self.stops).lstrip().rstrip().rstrip("\ufffd")
        for stop in self.stops:  # a tail that may begin a stop string waits
            for k in range(min(len(stop) - 1, len(safe)), 0, -1):
                if safe.endswith(stop[:k]):
                    safe = safe[:-k]
                    break
        safe = safe.rstrip()
        if len(safe) <= len(self.sent) or not safe.startswith(self.sent):
            return ""
        delta, self.sent = safe[len(self.sent):], safe
        return delta

    def finish(self, final: str) -> str:
        """The rest of the final answer (what was sent is always its beginning)."""
        return final[len(self.sent):] if final.startswith(self.sent) else ""


class Stream:
    """One streaming request: the generation thread hands each job's tokens to :meth:`hook`; :meth:`events` sends
    them as chunks, then each choice's finish, the usage if asked, and ``[DONE]``."""

    def __init__(self, *, tokenizer, chat: bool, model: str, number: int, n: int, stops: tuple[str, ...],
                 include_usage: bool):
        self.tok, self.chat, self.model, self.n, self.include_usage = tokenizer, chat, model, n, include_usage
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{number}"
        self.created = int(time.time())
        self.stops = stops
        self.queue: asyncio.Queue = asyncio.Queue()
        self.deltas: list[list[TextDelta]] = []

    def hook(self, job_index: int, tokens: bool):
        """``on_tokens`` for job ``job_index``, or None when its answer is sent whole at the end."""
        deltas = [TextDelta(self.stops) for _ in range(self.n)]
        self.deltas.append(deltas)
        if not tokens:
            return None
        loop = asyncio.get_running_loop()

        def on_tokens(choice: int, ids: list[int]) -> None:  # in the generation thread
            delta = deltas[choice].feed(self.tok.decode(ids, skip_special_tokens=True))
            if delta:
                loop.call_soon_threadsafe(self.queue.put_nowait, (job_index, choice, delta))

        return on_tokens

    async def events(self, jobs: list[Job], decode, on_end, latency_until: float) -> AsyncIterator[str]:
        """The SSE body. ``decode(job_index, text)`` maps an answer back (number slots); ``on_end(status)`` is
        called once with 200, 499 (the client left: its jobs are cancelled by the caller) or the error status."""
        status = 499
        for k, job in enumerate(jobs):
            job.future.add_done_callback(lambda _, k=k: self.queue.put_nowait((k, None, None)))
        try:
            if self.chat:
                for index in range(len(jobs) * self.n):
                    yield self._choice(index, role=True)
            usage, left = [0, 0], len(jobs)
            while left:
                k, choice, delta = await self.queue.get()
                if choice is not None:
                    yield self._choice(k * self.n + choice, delta)
                    continue
                left -= 1
                error = jobs[k].future.exception()
                if error is not None:
                    status = 503 if isinstance(error, Stopping) else 499 if isinstance(error, Gone) else 500
                    message = ("the server is stopping" if status == 503 else
                               f"generation failed: {type(error).__name__}: {error}")
                    yield _data({"error": {"message": message, "type": "server_error", "param": None,
                                           "code": None}})
                    return
                out = jobs[k].future.result()
                usage[0], usage[1] = usage[0] + out.prompt_tokens, usage[1] + out.completion_tokens
                for j, (text, finish) in enumerate(zip(out.texts, out.finish_reasons)):
                    tail = self.deltas[k][j].finish(decode(k, text))
                    if tail:
                        yield self._choice(k * self.n + j, tail)
                    yield self._choice(k * self.n + j, finish=finish)
            if self.include_usage:
                yield self._chunk({"choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                                            "total_tokens": sum(usage)}})
            await asyncio.sleep(max(0.0, latency_until - time.monotonic()))
            status = 200
            yield "data: [DONE]\n\n"
        finally:  # also when the client leaves: the server cancels this generator at its await
            on_end(status)

    def _choice(self, index: int, text: str | None = None, *, finish: str | None = None, role: bool = False) -> str:
        if self.chat:
            delta = {"role": "assistant", "content": ""} if role else {} if text is None else {"content": text}
            return self._chunk({"choices": [{"index": index, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]})
        return self._chunk({"choices": [{"index": index, "text": text or "", "logprobs": None,
                                         "finish_reason": finish}]})

    def _chunk(self, fields: dict) -> str:
        return _data({"id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                      "created": self.created, "model": self.model, **fields})


def _data(body: dict) -> str:
    return f"data: {json.dumps(body)}\n\n"
