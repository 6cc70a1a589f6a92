"""The range of a number a person types, stated once: it checks a value (a :class:`ConfigError` naming the setting
and its range), parses a command-line flag (an argparse ``type``: one line naming the flag and its range), and
says the range in ``--help``.

>>> SEED.describe()
'[0, 4294967295]'
>>> SEED.check("seed", -1)
Traceback (most recent call last):
...
workbench.core.errors.ConfigError: seed must be a whole number in [0, 4294967295], not -1
>>> Bounds(0, 1, integer=False, low_open=True)("0.5")
0.5
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from workbench.core.errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """``low <= value <= high`` (``low < value`` when ``low_open``); a whole number unless ``integer`` is False.

    Callable, so that it is its own argparse ``type``: ``p.add_argument("--limit", type=LIMIT)``."""

    low: float
    high: float
    integer: bool = True
    low_open: bool = False

    def describe(self) -> str:
        """The range in interval notation: ``[1, 1000000]``, ``(0, 1]``."""
        return f"{'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}]"

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def check(self, name: str, value) -> None:
        """Raise a :class:`ConfigError` naming ``name`` and the range when ``value`` is outside it."""
        if not self.contains(value):
            kind = "a whole number in" if self.integer else "in"
            raise ConfigError(f"{name} must be {kind} {self.describe()}, not {_shown(value)}")

    def __call__(self, text: str) -> int | float:
        """Parse a flag's text (argparse calls this; its message becomes ``argument --flag: …``)."""
        stripped = str(text).strip()
        try:
            value: int | float = int(stripped) if self.integer else float(stripped)
        except ValueError:
            what = "a whole number" if self.integer else "a number"
            raise argparse.ArgumentTypeError(f"expected {what} in {self.describe()}, not {_shown(text)}") from None
        if not self.contains(value):
            raise argparse.ArgumentTypeError(f"must be in {self.describe()}, not {_shown(text)}")
        return value

    def help(self, text: str = "") -> str:
        """``text`` with the range appended, for ``--help``."""
        return f"{text} (range {self.describe()})" if text else f"range {self.describe()}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.10g}"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


SEED = Bounds(0, 2**32 - 1)  # numpy and torch take seeds in 0 .. 2**32 - 1
LIMIT = Bounds(1, 10_000_000)  # "the first N examples": 0 would mean none, and SQLite reads a negative as "all"
PORT = Bounds(1, 65535)
UPLOAD_MB = Bounds(0, 2048, integer=False, low_open=True)  # imports.files.upload_limit's range (MAX_FILE_BYTES)
