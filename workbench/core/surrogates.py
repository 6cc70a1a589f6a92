"""Text that is valid Unicode: lone surrogates (what Python makes of bytes that are not UTF-8, and what JSON's
``"\\ud800"`` decodes to) cannot be stored, encoded as UTF-8, or shown; messages name them instead.

>>> printable("caf\\udce9 \\ud800 ok")
'caf\\\\xe9 \\\\ud800 ok'
>>> has_surrogates("fine"), has_surrogates("\\ud800")
(False, True)
"""

from __future__ import annotations

import re

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (so it cannot be encoded as UTF-8)."""
    return bool(_SURROGATE.search(text))


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every lone surrogate written as an escape (``\\xe9`` for an undecodable byte, ``\\ud800``
    otherwise): always valid UTF-8, and the reader still sees what was there."""
    return _SURROGATE.sub(_escape, text) if isinstance(text, str) else str(text)
