"""Teacher base class, spec grammar and registry.

A teacher answers a batch of :class:`TeacherRequest` (the rendered prompt plus the example it came from) with
raw text, the way an LLM would; the task's parser turns that text into a rationale and a label.

Spec grammar (one string, as on the CLI and in run configs)::

    builtin                       the offline teacher for the built-in tasks (``builtin?error_rate=0.2&seed=0``)
    released:palm-540b            the paper's released PaLM outputs, imported with ``workbench import-paper``
    hf:PATH_OR_HUB_ID             a transformers checkpoint (local folder or hub id when online)
    openai:MODEL@BASE_URL         an OpenAI-compatible endpoint; the key comes from $OPENAI_API_KEY
    run:RUN_NAME                  a trained student run, answering with its [rationale] head

Options follow a ``?`` as ``key=value`` pairs joined by ``&``.

>>> parse_spec("builtin?error_rate=0.1")
('builtin', '', {'error_rate': '0.1'})
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import parse_qsl

from ..errors import TeacherError, UnknownNameError
from ..store import Example


@dataclass(frozen=True)
class TeacherRequest:
    example: Example
    prompt: str
    labels: tuple[str, ...] | None = None


@dataclass
class TeacherReply:
    """Raw text, or ``error`` when the request itself failed (not the model's mistake: that is a parse error)."""

    raw: str | None
    label_dist: dict[str, float] | None = None
    error: str | None = None
    seconds: float | None = None


class Teacher(ABC):
    """Subclass, set ``kind``, implement :meth:`answer`, and register with :func:`register_teacher`."""

    kind: ClassVar[str] = ""
    #: Teachers whose answers already sit in the store (``released``) cannot generate new ones.
    can_generate: ClassVar[bool] = True
    batch_size: int = 32

    def __init__(self, target: str = "", *, store=None, **options: str):
        self.target = target
        self.store = store  # the workspace store, for teachers that read from it (released, run)
        self.options = options

    @property
    def id(self) -> str:
        """Stable identity stored with every generation (no secrets in it)."""
        return self.kind if not self.target else f"{self.kind}:{self.target}"

    @property
    def settings(self) -> dict:
        """Sampling settings that change the answer; part of the cache key."""
        return dict(sorted(self.options.items()))

    @abstractmethod
    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        """One reply per request, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, connection pools)."""


TEACHERS: dict[str, type[Teacher]] = {}


def register_teacher(cls: type[Teacher]) -> type[Teacher]:
    TEACHERS[cls.kind] = cls
    return cls


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    spec = (spec or "").strip()
    if not spec:
        raise TeacherError("empty teacher spec; try 'builtin'")
    head, _, query = spec.partition("?")
    kind, _, target = head.partition(":")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as err:
        raise TeacherError(f"bad teacher options {query!r}: use key=value&key=value") from err
    return kind.strip(), target.strip(), options


def teacher_id(spec: str) -> str:
    """The id a spec's answers are stored under (``kind`` or ``kind:target``; options excluded), without building
    the teacher."""
    kind, target, _ = parse_spec(spec)
    return f"{kind}:{target}" if target else kind


def compose_spec(kind: str, target: str = "", settings: str = "") -> str:
    """A spec string from its parts (the inverse of :func:`parse_spec`), validated."""
    spec = kind.strip() + (f":{target.strip()}" if target and target.strip() else "")
    settings = (settings or "").strip().lstrip("?")
    if settings:
        spec += "?" + settings
    parse_spec(spec)  # raises TeacherError with a message that says what to fix
    return spec


def get_teacher(spec: str, store=None) -> Teacher:
    """Build a teacher from its spec string; ``store`` is the workspace store for teachers that read from it."""
    kind, target, options = parse_spec(spec)
    if kind not in TEACHERS:
        raise UnknownNameError("teacher", kind, list(TEACHERS))
    return TEACHERS[kind](target, store=store, **options)


def teacher_kinds() -> list[dict]:
    return [{"kind": k, "doc": (cls.__doc__ or "").strip().split("\n")[0]} for k, cls in sorted(TEACHERS.items())]

