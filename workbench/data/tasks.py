"""The Task concept: base class, the registry of built-in task factories, and loading tasks from a workspace.

A :class:`Task` owns what makes a problem a problem: how its answers are scored (its answer kind's metric), its
label space, and its prompt template (which carries the parser). Examples live in the workspace store
(generations point at them). :func:`load_task` materialises a built-in task into the store the first time it is
asked for and reads any stored task back, as the same class: a built-in task comes back as its own subclass, so
what it owns beyond the data (the offline teacher's writer, a reader for new inputs) comes back with it.

Built-in tasks register in :data:`TASKS` (entry-point group ``workbench.tasks``), a factory each, and that is
all: a task class owns its prompt and parser (:attr:`Task.prompt`), so adding a task is one module and one
registration (the README's "How to add a task").

>>> sorted(TASKS.names())[:2]
['quantnli', 'wordproblems']
>>> store = Store.open("my-workspace")
>>> task = load_task("wordproblems", store, n_train=40, n_valid=10, n_test=10)    # stored on first use
>>> task.split_sizes(), task.answer_kind
({'test': 10, 'train': 40, 'valid': 10}, 'equation')
>>> task.examples("train", 1)[0].input
"Sam has 10 coins. He buys 2 more. There are 17 kids in Jack's class. How many coins does Sam have now?"
>>> type(load_task("wordproblems", store)).__name__                               # read back as its own class
'WordProblemsTask'
>>> task.template().name, task.template().parser_name                             # its own prompt and parser
('wordproblems', 'equation')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from workbench.core.errors import ConfigError, UnknownNameError
from workbench.core.names import check_name
from workbench.core.registry import Registry
from workbench.core.store import Store
from workbench.core.store_records import Example
from workbench.data.metrics import METRIC_NAMES, is_correct
from workbench.data.prompts import PromptTemplate, get_template

ANSWER_KINDS = ("classes", "text", "equation")
NLI_LABELS = ("entailment", "neutral", "contradiction")  # the order of the NLI datasets' 0, 1, 2
SPLITS = ("train", "valid", "test")


@dataclass
class Task:
    """A named problem. Built-in subclasses generate their examples (:meth:`build_examples`) and own their prompt
    (:attr:`prompt`); imported tasks are plain ``Task`` objects read back from the store, naming one of the
    library's templates (``template_name``, :data:`workbench.data.prompts.TEMPLATES`)."""

    #: The prompt a task class owns: its few-shot text (with ``{input}``) and the name of the parser that reads a
    #: teacher's answer. A class that sets it needs nothing in the library's templates; its name becomes the
    #: task's ``template_name`` (stored with the task, and how generations find their template again).
    prompt: ClassVar[PromptTemplate | None] = None

    name: str
    answer_kind: str
    labels: tuple[str, ...] | None = None
    template_name: str = "generic-text"
    source: str = "custom"
    spec: dict = field(default_factory=dict)
    store: Store | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if type(self).prompt is not None:
            self.template_name = type(self).prompt.name
        if self.answer_kind not in ANSWER_KINDS:
            raise ConfigError(f"answer kind must be one of {ANSWER_KINDS}, not {self.answer_kind!r}")
        if self.answer_kind == "classes" and not self.labels:
            raise ConfigError(f"task {self.name!r}: a classes task needs its label space")
        if self.labels is not None:
            self.labels = tuple(self.labels)

    # -- what a task is ---------------------------------------------------------------------------------------
    def is_correct(self, pred: str | None, gold: str | None) -> bool:
        return is_correct(pred, gold, self.answer_kind)

    @property
    def metric_name(self) -> str:
        return METRIC_NAMES[self.answer_kind]

    def template(self) -> PromptTemplate:
        """The task's own prompt when its class has one, else the library's template it names."""
        return type(self).prompt or get_template(self.template_name)

    def build_examples(self) -> Iterable[Example]:
        """Generate the task's examples (built-in tasks implement this; imported ones are read from the store)."""
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
        return [s for s in SPLITS if s in counts] + sorted(set(counts) - set(SPLITS))

    def split_sizes(self) -> dict[str, int]:
        for t in self._require_store().list_tasks():
            if t["name"] == self.name:
                return t["splits"]
        return {}


TaskFactory = Callable[..., Task]
# name → factory of a task that can be built without any file (built-in generators).
TASKS: Registry[TaskFactory] = Registry("task", group="workbench.tasks")


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    return TASKS.register(name)


def check_task_name(name: str, *, new: bool = True) -> str:
    """A valid task name; a new custom or imported task may not take a built-in task's name."""
    check_name("task", name)  # the one rule for names people give (workbench.core.names)
    if new and name in TASKS:
        raise ConfigError(f"task name {name!r} is a built-in task's; pick another name")
    return name


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
        if options:
            raise ConfigError(f"task {name!r} already exists in this workspace; options apply only when creating it")
        return _stored_task(store, store.task_row(name))
    if name not in TASKS:
        known = sorted(set(TASKS.names()) | {t["name"] for t in store.list_tasks()})
        raise UnknownNameError("task", name, known)
    task = TASKS[name](**options)
    save_task(store, task)
    return task


def _stored_task(store: Store, row: dict) -> Task:
    spec = row["spec"] or {}
    if row["source"] == "builtin" and row["name"] in TASKS:
        # The factory rebuilds the subclass from the stored spec (no examples are generated for it).
        task = TASKS[row["name"]](**{k: v for k, v in spec.items()})
    else:
        task = Task(name=row["name"], answer_kind=row["answer_kind"], labels=row["labels"],
                    template_name=row["template"], source=row["source"], spec=spec)
    task.store = store
    return task


def list_tasks(store: Store) -> list[dict]:
    stored = store.list_tasks()
    names = {t["name"] for t in stored}
    return stored + [{"name": n, "source": "builtin", "splits": {}, "answer_kind": None}
                     for n in TASKS.names() if n not in names]
