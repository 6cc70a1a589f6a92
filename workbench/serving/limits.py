"""What one request may ask of ``serve-model``, and how much work it holds at once: memory stays bounded whatever
clients send (each limit is a flag; a request over one is refused with the limit and the flag in the message).

A request's *cost* is what it makes the server hold while it is queued and generated: every prompt's tokens (after
the chat template) plus its ``max_tokens``, times ``n`` (each sample is a row of its own with its own KV cache).
The sum over the requests in flight stays within ``max_tokens_in_flight``; the batcher also cuts batches so that a
batch, padding included, never needs more than that.

>>> limits = Limits(max_tokens_in_flight=100)
>>> budget = Budget(limits)
>>> budget.take(60), budget.take(60), budget.in_flight
(True, False, 60)
>>> budget.give(60); budget.in_flight
0
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# Defaults for SmolLM2-135M (the model the workbench ships) on 2 CPU cores, in fp32. Its KV cache costs 45 KB a
# token position (30 layers × 2 × 3 KV heads × 64 × 4 bytes), and one core decodes ~20 tokens a second.
MAX_PROMPT_TOKENS = 8192  # one full-context prompt of SmolLM2 (8,192 positions), or 64 prompts of 128 tokens
MAX_TOKENS = 1024  # 4× the longest rationale the workbench asks for (256), ~1 min of decoding on 2 cores;
# batches run to their end, so a longer answer would hold every other client back for minutes
MAX_N = 16  # samples of one prompt (self-consistency); their memory is counted in the budget below
MAX_TOKENS_IN_FLIGHT = 32_768  # ≈ 1.5 GB of KV cache for SmolLM2 beside its 0.54 GB of weights: a 4 GB machine
# serves it; 20 clients with 1,000-token prompts and 256-token answers fit at once
CEILING = 1 << 20  # no flag goes beyond this (a typo such as 10**12 is refused, not taken)


@dataclass(frozen=True)
class Limits:
    """Per request: prompt tokens, ``max_tokens``, ``n``; in flight: token positions, queued and generating.

    >>> Limits().max_tokens
    1024
    """

    max_prompt_tokens: int = MAX_PROMPT_TOKENS
    max_tokens: int = MAX_TOKENS
    max_n: int = MAX_N
    max_tokens_in_flight: int = MAX_TOKENS_IN_FLIGHT

    #: each field's command-line flag, named in every refusal so an operator knows what to raise
    FLAGS = {"max_prompt_tokens": "--max-prompt-tokens", "max_tokens": "--max-tokens", "max_n": "--max-n",
             "max_tokens_in_flight": "--max-tokens-in-flight"}

    def __post_init__(self):
        for name, flag in self.FLAGS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CEILING:
                raise ValueError(f"{flag} must be a whole number from 1 to {CEILING:,}, not {value!r}")


class Budget:
    """Token positions held by the requests in flight (queued or generating), never more than the limit."""

    def __init__(self, limits: Limits):
        self.limit = limits.max_tokens_in_flight
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def take(self, cost: int) -> bool:
        """Reserve ``cost`` positions; False (nothing reserved) when that would pass the limit."""
        with self._lock:
            if self.in_flight + cost > self.limit:
                return False
            self.in_flight += cost
            self.peak = max(self.peak, self.in_flight)
            return True

    def give(self, cost: int) -> None:
        with self._lock:
            self.in_flight -= cost
