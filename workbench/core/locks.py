"""Owner locks that a killed process cannot leave held: an exclusive ``flock`` on a file, which the kernel drops
when the process holding it ends, however it ends (``kill -9`` included).

A run folder has one (``runs/<name>/.lock``: one training process at a time), and so does every generation
process (``<workspace>/locks/<owner>.lock``: its claims on examples live as long as it does). The file holds the
owner's pid, for messages only; whether the owner lives is what the lock says, never the pid.

>>> lock = OwnerLock.acquire("owner.lock")
>>> is_held("owner.lock")                     # another process, or another open file in this one
True
>>> lock.release()
>>> is_held("owner.lock")                     # released (or its owner died): free, the file stays
False
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path


class LockHeld(Exception):
    """Another process (or another open file of this one) holds the lock; ``holder`` is what it wrote (its pid)."""

    def __init__(self, path: Path, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by {holder or 'another process'}")


class OwnerLock:
    """An exclusive lock on ``path``, held until :meth:`release` or the end of the process."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, path: str | os.PathLike, *, wait: float = 0.0, note: str = "") -> OwnerLock:
        """Take the lock (creating the file), retrying for up to ``wait`` seconds; raises :class:`LockHeld`.

        A reader that checks a lock takes it for a moment (:func:`settle`), so a short ``wait`` keeps a
        starting owner from mistaking that check for a rival."""
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise LockHeld(path, holder) from None
                    raise
                time.sleep(0.05)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}{' ' + note if note else ''}\n".encode())
        except OSError:  # a full disk: the lock holds all the same, only the note is missing
            pass
        return cls(path, fd)

    def release(self, *, remove: bool = False) -> None:
        if self._fd is None:
            return
        if remove:  # before unlocking: a waiting owner then locks a fresh file, never a removed one
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> OwnerLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def is_held(path: str | os.PathLike) -> bool:
    """Whether a live process holds the lock at ``path`` (no file: nobody does). Never creates the file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # also drops the shared lock just taken


@contextlib.contextmanager
def settle(path: str | os.PathLike):
    """Hold the lock at ``path`` for a moment if nobody does: yields True then (the owner is gone and this caller
    may record so while no new owner can start), False when a live owner holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)


def holder_of(path: str | os.PathLike) -> str:
    """What the lock's owner wrote (``pid N``), or '' when unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
