"""Names given by users stay inside the workspace: one resolved-path check for every name that becomes a path.

A run, job, sweep or upload name comes from a person (a CLI argument, a form, a spec such as ``run:NAME``), and is
joined to a folder of the workspace. :func:`inside` is the one place that decides whether the result is still in
that folder, after symlinks are followed: ``..``, an absolute path, a NUL, a line break, or a folder that is a
symlink to elsewhere are refused with one line that says what to do.

>>> inside("/ws/runs", "r1", "run")
PosixPath('/ws/runs/r1')
>>> inside("/ws/runs", "../../etc", "run")
Traceback (most recent call last):
...
workbench.core.errors.ConfigError: run name '../../etc' must stay inside /ws/runs: no '..' and no absolute path; use a name that `workbench` lists
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path, PurePath

from workbench.core.errors import ConfigError

MAX_PART = 255  # bytes of one path component on every common file system
_SHOWN = 80


def inside(root: str | os.PathLike, name: str, what: str = "name") -> Path:
    """``root / name``, refused (:class:`ConfigError`) unless it names something strictly inside ``root`` once every
    symlink is resolved. ``name`` may have several parts (``a/b``), never ``..``, an absolute path or a control
    character. The path returned is the lexical one (``root / name``); checking it again later is the caller's
    choice (a symlink swapped in after the check is the file system owner's doing)."""
    if not isinstance(name, str):
        raise ConfigError(f"{what} name must be text, not {type(name).__name__}")
    shown = _shown(name)
    where = Path(root)
    if not name or not name.strip():
        raise ConfigError(f"{what} name is empty; use a name that `workbench` lists")
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        raise ConfigError(f"{what} name {shown} holds a control character ({ascii(bad)}); names are one line of "
                          "printable characters")
    parts = PurePath(name).parts
    if PurePath(name).is_absolute() or ".." in parts or "\\" in name:
        raise ConfigError(f"{what} name {shown} must stay inside {where}: no '..' and no absolute path; use a name "
                          "that `workbench` lists")
    if any(len(p.encode("utf-8", "surrogatepass")) > MAX_PART for p in parts):
        raise ConfigError(f"{what} name {shown} is too long (at most {MAX_PART} bytes between slashes)")
    if not parts or all(p == "." for p in parts):
        raise ConfigError(f"{what} name {shown} names the folder itself; use a name that `workbench` lists")
    path = where / name
    real_root, real = where.resolve(), path.resolve()
    if real == real_root or not real.is_relative_to(real_root):
        raise ConfigError(f"{what} {shown} resolves to {_shown(str(real))}, outside {where} (a symlink to elsewhere?); "
                          f"the workbench reads and writes only inside the workspace")
    return path


def _shown(text: str) -> str:
    """A name as a message shows it: quoted, escaped (a newline is ``\\n``), cut."""
    quoted = repr(text)
    return quoted if len(quoted) <= _SHOWN else quoted[:_SHOWN] + "…'"
