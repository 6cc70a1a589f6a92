"""Reading files that a user or a download put in place, trusting nothing about them: only regular files are read
(a FIFO would hang the import, ``/dev/zero`` would fill the memory, a directory or a dangling symlink would be a
traceback), and never more than :data:`MAX_FILE_BYTES`. A file a person uploads (the app's upload, ``workbench
task-add``) is held to a smaller, stated cap, :func:`upload_limit`: 50 MB unless ``--max-upload-mb`` or
``$WORKBENCH_MAX_UPLOAD_MB`` says otherwise, checked before anything is read or written.

>>> _ = Path("train_CoT_0.json").write_text('["The answer is ..."]')
>>> read_regular(Path("train_CoT_0.json"))
b'["The answer is ..."]'
>>> read_regular(Path("/dev/zero"))
Traceback (most recent call last):
...
workbench.core.errors.ImportDataError: /dev/zero is a character device, not a regular file; only regular files are read
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from workbench.core.bounds import UPLOAD_MB
from workbench.core.errors import ConfigError, ImportDataError
from workbench.core.surrogates import printable

MAX_FILE_BYTES = 2 * 1024**3  # the largest file an import reads (the paper's biggest release file is ~60 MB)
MB = 1024 * 1024
DEFAULT_MAX_UPLOAD_MB = 50.0  # a 200 MB CSV once grew the workspace's database by 850 MB
UPLOAD_ENV = "WORKBENCH_MAX_UPLOAD_MB"
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


def upload_limit(max_mb: float | None = None) -> int:
    """The upload cap in bytes: ``max_mb``, else ``$WORKBENCH_MAX_UPLOAD_MB``, else :data:`DEFAULT_MAX_UPLOAD_MB`
    (MB: 2**20 bytes). A value outside :data:`~workbench.core.bounds.UPLOAD_MB` is a :class:`ConfigError`.

    >>> upload_limit(1)
    1048576
    """
    where = "--max-upload-mb"
    if max_mb is None:
        text = os.environ.get(UPLOAD_ENV, "").strip()
        where = f"${UPLOAD_ENV}"
        max_mb = DEFAULT_MAX_UPLOAD_MB if not text else _number(text, where)
    UPLOAD_MB.check(f"{where} (megabytes)", max_mb)
    return int(max_mb * MB)


def check_upload_size(path: Path, max_mb: float | None = None) -> int:
    """The size of an uploaded file, or :class:`ImportDataError` when it is over :func:`upload_limit` (checked on the
    file's size, before it is read: nothing is stored for a file that is refused)."""
    limit = upload_limit(max_mb)
    try:
        size = os.stat(path).st_size
    except OSError:
        return 0  # missing or unreadable: the reader says so, with the reason
    if size > limit:
        raise ImportDataError(f"{printable(Path(path).name)} is {size / MB:,.1f} MB, over the upload limit of "
                              f"{limit / MB:g} MB; split the file, or raise the limit (whoever starts the app: "
                              "--max-upload-mb; task-add: --max-upload-mb)")
    return size


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where} must be a number of megabytes, not {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number of megabytes, not {text!r}")
    return value
