"""Names people give things (runs, tasks, sweeps): one rule for all of them. A name becomes a folder name, a row in
a listing and a word on a command line, so it is one line of safe characters: letters, digits, ``_``, ``.``
and ``-``, starting with a letter or digit (never hidden, never a path, never a newline that breaks a listing).

>>> check_name("run", "svamp-dss-tiny_2.0")
'svamp-dss-tiny_2.0'
>>> check_name("run", "two\\nlines")
Traceback (most recent call last):
...
workbench.core.errors.ConfigError: run name 'two\\nlines' must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit (one line, no spaces)
"""

from __future__ import annotations

import re

from workbench.core.errors import ConfigError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # ASCII only: \w would take other scripts' digits and marks


def is_safe_name(name: object, *, longest: int = 64) -> bool:
    return isinstance(name, str) and len(name) <= longest and SAFE_NAME.fullmatch(name) is not None


def check_name(kind: str, name: object, *, longest: int = 64) -> str:
    """``name`` when it is a safe name of at most ``longest`` characters; else a :class:`ConfigError` saying the rule."""
    if not is_safe_name(name, longest=longest):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise ConfigError(f"{kind} name {shown} must be 1-{longest} letters, digits, '_', '.' or '-', starting with "
                          "a letter or digit (one line, no spaces)")
    return name
