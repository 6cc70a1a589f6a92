"""Request counters a test endpoint keeps (``GET /_workbench/stats``): never the key itself."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field


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
