"""Reading files that a user or a download put in place, trusting nothing about them: only regular files are read
(a FIFO would hang the import, ``/dev/zero`` would fill the memory, a directory or a dangling symlink would be a
traceback), and never more than :data:`MAX_FILE_BYTES`.

>>> read_regular(Path("release/svamp/llm/train_CoT_0.json"))     # doctest: +SKIP
b'["The answer is ..."]'
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from workbench.core.errors import ImportDataError
from workbench.core.text import printable

MAX_FILE_BYTES = 2 * 1024**3  # the largest file an import reads (the paper's biggest release file is ~60 MB)
_CHUNK = 1 << 20
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def iter_regular(path: Path, limit: int = MAX_FILE_BYTES) -> Iterator[bytes]:
    """The bytes of a regular file (symlinks followed) in chunks; :class:`ImportDataError` for anything else,
    or for a file larger than ``limit``. The file is opened non-blocking, so a FIFO is refused, not waited on."""
    shown = printable(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as err:
        what = "a symlink to a missing file" if os.path.islink(path) else "missing"
        raise ImportDataError(f"{shown} is {what}; restore the file or remove it") from err
    except PermissionError as err:
        raise ImportDataError(f"{shown} cannot be read (permission denied)") from err
    except OSError as err:
        raise ImportDataError(f"{shown} cannot be opened ({err.strerror or err})") from err
    mode = os.fstat(fd)
    if not stat.S_ISREG(mode.st_mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(mode.st_mode)), "not a regular file")
        raise ImportDataError(f"{shown} is {kind}, not a regular file; only regular files are read")
    if mode.st_size > limit:
        os.close(fd)
        raise ImportDataError(f"{shown} holds {mode.st_size:,} bytes, more than the {limit:,} an import reads")
    with os.fdopen(fd, "rb") as f:
        seen = 0
        while chunk := _read(f, shown):
            seen += len(chunk)
            if seen > limit:  # it grew while being read
                raise ImportDataError(f"{shown} holds more than the {limit:,} bytes an import reads")
            yield chunk


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole of a regular file (see :func:`iter_regular`)."""
    return b"".join(iter_regular(path, limit))


def _read(f, shown: str) -> bytes:
    try:
        return f.read(_CHUNK)
    except OSError as err:
        raise ImportDataError(f"{shown} cannot be read ({err.strerror or err})") from err
