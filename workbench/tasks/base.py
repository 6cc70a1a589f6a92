"""Task base class and registry.

A :class:`Task` knows how its examples render to input text, its answer kind (``classes``, ``text`` or
``equation``), its label space, its metric and its default prompt template. Examples live in the workspace store
(generations point at them); :func:`load_task` materialises a built-in task into the store the first time it is
asked for, and reads imported tasks (paper folders, custom files) back from there.

>>> store = Store.open("workspace")                       # doctest: +SKIP
>>> task = load_task("wordproblems", store)               # doctest: +SKIP
>>> task.splits()["train"][0]["input"]                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import ConfigError, UnknownNameError
from ..metrics import METRICS
from ..prompts import PromptTemplate, get_template
from ..store import Example, Store

ANSWER_KINDS = ("classes", "text", "equation")


@dataclass
class Task:
    """A named problem. Subclasses that generate or import examples implement :meth:`build_examples`."""

    name: str
    answer_kind: str
    labels: tuple[str, ...] | None = None
    template_name: str = "generic-text"
    source: str = "custom"
    spec: dict = field(default_factory=dict)
    description: str = ""
    store: Store | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.answer_kind not in ANSWER_KINDS:
            raise ConfigError(f"answer kind must be one of {ANSWER_KINDS}, not {self.answer_kind!r}")
        if self.answer_kind == "classes" and not self.labels:
            raise ConfigError(f"task {self.name!r}: a classes task needs its label space")
        if self.labels is not None:
            self.labels = tuple(self.labels)

    # -- what a task is ---------------------------------------------------------------------------------------
    def is_correct(self, pred: str | None, gold: str | None) -> bool:
        return METRICS[self.answer_kind](pred, gold)

    @property
    def metric_name(self) -> str:
        return "equation value match" if self.answer_kind == "equation" else "exact match"

    def template(self) -> PromptTemplate:
        return get_template(self.template_name)

    def render_input(self, fields: dict) -> str:
        """Input text for a row of source fields (default: the ``input`` field)."""
        return str(fields["input"])

    def build_examples(self) -> Iterable[Example]:
        """Generate or read the task's examples (built-in and importer tasks implement this)."""
        raise NotImplementedError(f"task {self.name!r} has no generator; it is read from the store")

    # -- data -------------------------------------------------------------------------------------------------
    def _require_store(self) -> Store:
        if self.store is None:
            raise ConfigError(f"task {self.name!r} is not attached to a workspace store")
        return self.store

    def examples(self, split: str | None = None, limit: int | None = None) -> list[Example]:
        return self._require_store().examples(self.name, split, limit)

    def split_names(self) -> list[str]:
        counts = self.split_sizes()
        return [s for s in ("train", "valid", "test") if s in counts] + sorted(set(counts) - {"train", "valid", "test"})

    def split_sizes(self) -> dict[str, int]:
        for t in self._require_store().list_tasks():
            if t["name"] == self.name:
                return t["splits"]
        return {}

    def splits(self) -> datasets.DatasetDict:  # noqa: F821 - imported lazily
        """Splits as ``datasets.Dataset`` objects with columns ``id``, ``input``, ``label``."""
        import datasets  # imported here: it costs ~2 s, and most callers (CLI verbs, jobs) never need it

        out = {}
        for split in self.split_names():
            rows = self.examples(split)
            out[split] = datasets.Dataset.from_dict({
                "id": [e.id for e in rows], "input": [e.input for e in rows], "label": [e.label for e in rows],
            })
        return datasets.DatasetDict(out)

    def to_row(self) -> dict:
        return {"name": self.name, "source": self.source, "answer_kind": self.answer_kind,
                "labels": list(self.labels) if self.labels else None, "template": self.template_name}


# name → factory for tasks that can be built without any file (built-in generators).
BUILTIN_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    def deco(factory: Callable[..., Task]) -> Callable[..., Task]:
        BUILTIN_TASKS[name] = factory
        return factory

    return deco


def save_task(store: Store, task: Task, examples: Iterable[Example] | None = None, replace: bool = False) -> dict:
    """Store a task and its examples (one transaction); returns examples per split."""
    counts = store.add_task(
        task.name, source=task.source, answer_kind=task.answer_kind, labels=task.labels,
        template=task.template_name, spec=task.spec,
        examples=task.build_examples() if examples is None else examples, replace=replace,
    )
    task.store = store
    return counts


def load_task(name: str, store: Store, **options) -> Task:
    """A task by name: from the store if it is there, else a built-in one (materialised into the store)."""
    if store.has_task(name):
        row = store.task_row(name)
        if options:
            raise ConfigError(f"task {name!r} already exists in this workspace; options apply only when creating it")
        return Task(name=row["name"], answer_kind=row["answer_kind"], labels=row["labels"],
                    template_name=row["template"], source=row["source"], spec=row["spec"] or {}, store=store)
    if name not in BUILTIN_TASKS:
        known = sorted(set(BUILTIN_TASKS) | {t["name"] for t in store.list_tasks()})
        raise UnknownNameError("task", name, known)
    task = BUILTIN_TASKS[name](**options)
    save_task(store, task)
    return task


def list_tasks(store: Store) -> list[dict]:
    stored = store.list_tasks()
    names = {t["name"] for t in stored}
    return stored + [{"name": n, "source": "builtin", "splits": {}, "answer_kind": None}
                     for n in BUILTIN_TASKS if n not in names]
