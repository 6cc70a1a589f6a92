"""The Teacher concept: base class, typed options, the spec grammar and the registry.

A teacher answers a batch of :class:`TeacherRequest` (the rendered prompt, the example it came from and its task)
with raw text, the way an LLM would; the task's parser turns that text into a rationale and a label.

Spec grammar (one string, as on the CLI and in run configs)::

    builtin                       the offline teacher for the built-in tasks (``builtin?error_rate=0.2&seed=0``)
    released:palm-540b            the paper's released PaLM outputs, imported with ``workbench import-paper``
    hf:PATH_OR_HUB_ID             a transformers checkpoint (local folder, a named model, or a hub id when online)
    openai:MODEL@BASE_URL         an OpenAI-compatible endpoint; the key comes from $OPENAI_API_KEY
    openai:MODEL@conn:NAME        the same through a connection set by whoever started the app (its URL and key)
    run:RUN_NAME                  a trained student run, answering with its [rationale] head

Options follow a ``?`` as ``key=value`` pairs joined by ``&``. Each teacher class declares its options
(:class:`Option`: type, default, bounds, help), which are parsed and checked once, here, for every teacher, and
listed by ``workbench teachers``. A spec is read in a context (:class:`~workbench.core.connections.SpecContext`):
who wrote it. From the app, options marked ``owner_only`` (which key to send, whether to run a checkpoint's code)
are refused; the CLI and notebooks, run by the owner of the keys and the machine, may use them. A teacher class
also declares whether it needs a target, what a target looks like, and what an answer costs (``free``, ``compute``
or ``money``). Teachers register in :data:`TEACHERS` (entry-point group ``workbench.teachers``).

>>> parse_spec("builtin?error_rate=0.1")
('builtin', '', {'error_rate': '0.1'})
>>> Option("timeout", float, 60.0, "seconds", low=0, low_open=True).parse("nan")
Traceback (most recent call last):
...
workbench.core.errors.TeacherError: option timeout must be a finite number above 0, not 'nan'
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from workbench.core import connections
from workbench.core.connections import SpecContext
from workbench.core.errors import TeacherError
from workbench.core.registry import Registry
from workbench.core.store_records import Example

COSTS = ("free", "compute", "money")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option of a teacher spec: its type, default, bounds and help.

    ``sampling`` options change the answers, so they are part of the teacher's settings (the cache key of its
    generations); runtime options (batch size, timeouts) are not.
    """

    name: str
    type: type
    default: Any
    help: str
    sampling: bool = True
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed (``timeout`` > 0)
    choices: tuple[str, ...] | None = None
    #: Only the owner of the machine may set it (a key's variable, remote code): refused in a spec from the app,
    #: with ``owner_note`` saying what to do instead.
    owner_only: bool = False
    owner_note: str = ""

    def parse(self, text: str) -> Any:
        """The value of ``text`` for this option; a :class:`TeacherError` names the option and says what fits."""
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered in _TRUE or lowered in _FALSE:
                return lowered in _TRUE
            raise TeacherError(f"option {self.name} must be true or false, not {text!r}")
        if self.type is str:
            if self.choices and text not in self.choices:
                raise TeacherError(f"option {self.name} must be one of {', '.join(self.choices)}, not {text!r}")
            return text
        try:
            value = self.type(float(text)) if self.type is int and _is_whole(text) else self.type(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not self._in_range(value):
            raise TeacherError(f"option {self.name} must be {self.describe()}, not {text!r}")
        return value

    def _in_range(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        what = "a whole number" if self.type is int else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{what} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{what} {'above' if self.low_open else 'of at least'} {self.low:g}"
        return what

    def to_dict(self) -> dict:
        out = {"name": self.name, "type": self.type.__name__, "default": self.default, "help": self.help,
               "sampling": self.sampling}
        if self.low is not None or self.high is not None:
            out["range"] = self.describe()
        if self.choices:
            out["choices"] = list(self.choices)
        if self.owner_only:
            out["owner_only"] = True
        return out


def _is_whole(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value == int(value) and abs(value) < 2**63


@dataclass(frozen=True)
class TeacherRequest:
    """One prompt. ``task`` is the example's task (teachers that read task structure, like ``builtin``, use it)."""

    example: Example
    prompt: str
    labels: tuple[str, ...] | None = None
    task: Any = None  # a workbench.data.tasks.Task


@dataclass
class TeacherReply:
    """Raw text, or ``error`` when the request itself failed (not the model's mistake: that is a parse error)."""

    raw: str | None
    label_dist: dict[str, float] | None = None
    error: str | None = None
    seconds: float | None = None


@dataclass
class Watch:
    """What a generation hands a teacher for one batch: where to report how far it is, and whether to stop.

    A teacher that generates token by token (``hf``) calls :meth:`tokens` as it goes and, once :meth:`should_stop`
    is true, cuts the batch short and sets ``stopped`` (its replies are then incomplete and are not stored). Any
    other teacher may ignore it: the generation still stops between batches."""

    on_tokens: Callable[[int, int], None] | None = None  # (tokens generated so far, the most it may generate)
    stop: Callable[[], bool] | None = None
    stopped: bool = False

    def tokens(self, done: int, most: int) -> None:
        if self.on_tokens is not None:
            self.on_tokens(done, most)

    def should_stop(self) -> bool:
        self.stopped = self.stopped or bool(self.stop is not None and self.stop())
        return self.stopped


class Teacher(ABC):
    """Subclass, set ``kind`` and ``options``, implement :meth:`answer`, and register (entry point or
    :func:`register_teacher`). Parsed option values are attributes of the same name."""

    kind: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    #: Whether the spec needs ``kind:TARGET``, and what a target looks like (shown as the form's placeholder).
    needs_target: ClassVar[bool] = False
    target_hint: ClassVar[str] = ""
    #: What an answer costs: ``free`` (instant, offline), ``compute`` (a local model's time), ``money`` (an endpoint).
    cost: ClassVar[str] = "free"
    #: Teachers whose answers already sit in the store (``released``) cannot generate new ones.
    can_generate: ClassVar[bool] = True
    batch_size: int = 32
    #: Set by a generation around each batch (:class:`Watch`); None when nobody is watching.
    watch: Watch | None = None

    def __init__(self, target: str = "", *, store=None, context: SpecContext | None = None, **options: str):
        self.target = target
        self.store = store  # the workspace store, for teachers that read from it (released, run)
        self.context = context or connections.current()  # who wrote the spec: the owner, or the app's user
        self.raw_options = dict(options)
        if self.needs_target and not target:
            raise TeacherError(f"the {self.kind} teacher needs a target: {self.kind}:{self.target_hint}")
        if not self.needs_target and target and not self.target_hint:
            raise TeacherError(f"the {self.kind} teacher takes no target ({target!r}); e.g. {self.example_spec()}")
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            self.refuse_unknown(unknown)
        if self.context.from_app:
            for opt in self.options:
                if opt.owner_only and opt.name in options:
                    raise TeacherError(opt.owner_note or f"option {opt.name} is not accepted from the app; whoever "
                                       "started it may set it from the command line")
        for opt in self.options:
            setattr(self, opt.name, opt.parse(options[opt.name]) if opt.name in options else opt.default)

    def refuse_unknown(self, names: list[str]) -> None:
        """Raise for options this teacher does not know (subclasses may say more, e.g. about secrets)."""
        raise TeacherError(f"unknown {self.kind} teacher option(s) {', '.join(names)}; known: "
                           f"{', '.join(o.name for o in self.options) or 'none'}")

    @classmethod
    def example_spec(cls) -> str:
        return cls.kind + (f":{cls.target_hint}" if cls.needs_target else "")

    @property
    def id(self) -> str:
        """Stable identity stored with every generation (no secrets in it)."""
        return self.kind if not self.target else f"{self.kind}:{self.target}"

    @property
    def settings(self) -> dict:
        """Sampling settings that change the answer, normalised (defaults filled in); part of the cache key."""
        return {o.name: getattr(self, o.name) for o in self.options
                if o.sampling and getattr(self, o.name) is not None}

    def can_answer(self, task) -> str | None:
        """Why this teacher cannot answer ``task``'s examples (None: it can). Checked before a job starts."""
        return None

    @abstractmethod
    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        """One reply per request, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, connection pools)."""

    @classmethod
    def describe(cls) -> dict:
        """What ``workbench teachers`` lists: the kind, its first doc line, target, cost and options."""
        return {"kind": cls.kind, "doc": (cls.__doc__ or "").strip().split("\n")[0], "example": cls.example_spec(),
                "needs_target": cls.needs_target, "target_hint": cls.target_hint, "cost": cls.cost,
                "can_generate": cls.can_generate, "options": [o.to_dict() for o in cls.options]}


TEACHERS: Registry[type[Teacher]] = Registry("teacher", group="workbench.teachers")


def register_teacher(cls: type[Teacher]) -> type[Teacher]:
    """Register a teacher class in this process (a notebook's own, a test's); packages use an entry point."""
    return TEACHERS.register(cls.kind, cls)


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


def teacher_class(spec: str) -> type[Teacher]:
    """The registered class of a spec's kind (raises UnknownNameError with the known kinds)."""
    return TEACHERS[parse_spec(spec)[0]]


def compose_spec(kind: str, target: str = "", settings: str = "") -> str:
    """A spec string from its parts (the inverse of :func:`parse_spec`), validated."""
    spec = kind.strip() + (f":{target.strip()}" if target and target.strip() else "")
    settings = (settings or "").strip().lstrip("?")
    if settings:
        spec += "?" + settings
    parse_spec(spec)  # raises TeacherError with a message that says what to fix
    return spec


def get_teacher(spec: str, store=None, context: SpecContext | None = None) -> Teacher:
    """Build a teacher from its spec string; ``store`` is the workspace store for teachers that read from it;
    ``context`` who wrote the spec (default: this process's, :func:`workbench.core.connections.current`)."""
    kind, target, options = parse_spec(spec)
    return TEACHERS[kind](target, store=store, context=context or connections.current(), **options)


def teacher_kinds() -> list[dict]:
    return [cls.describe() for _, cls in TEACHERS.items()]
