"""Deterministic faults a test endpoint can inject (``serve-model --faults``): HTTP 500s, 429s with
``Retry-After``, slow answers, dropped connections, broken JSON, empty choices, refused keys.

>>> plan = FaultPlan(fail_500=1, rate_limit=2)
>>> [plan.fault_for(i) for i in range(4)]
['fail_500', 'rate_limit', 'rate_limit', None]
>>> FaultPlan.parse("drop=2,retry_after=0.5").drop
2
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from workbench.core.errors import ConfigError

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
