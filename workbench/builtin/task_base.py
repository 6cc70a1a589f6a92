"""What the built-in tasks share: names and objects of their stories, seeded splits, and the interface through
which a built-in task answers as the offline teacher (:class:`BuiltinTask`).

Every built-in task keeps its structure in ``Example.fields`` (the quantities that matter, the distractors, the
operations, the facts), and owns the writer that turns that structure into an LLM-shaped answer, right or wrong
the way an LLM would be. The ``builtin`` teacher (:mod:`workbench.builtin.teacher`) only rolls the dice.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from typing import ClassVar

from workbench.core.errors import ConfigError
from workbench.core.store_records import Example
from workbench.data.tasks import Task
from workbench.rationales.teachers.base import TeacherReply

SHE = ("Anne", "Mia", "Lily", "Emma", "Sara", "Lucy", "Nora", "Kate", "Rosa", "Ella")
HE = ("Tom", "Peter", "Sam", "Ben", "Jack", "Leo", "Max", "Paul", "Omar", "Dan")
NAMES = SHE + HE
OBJECTS = ("apples", "pears", "oranges", "cookies", "cakes", "pencils", "pens", "books", "cards", "stickers",
           "marbles", "balls", "toys", "shells", "stamps", "flowers", "eggs", "candies", "coins", "cups")
# Test first, then valid, then train: inputs are unique across splits, and the test split stays the same when
# only n_train changes.
_SPLIT_ORDER = ("test", "valid", "train")


class BuiltinTask(Task):
    """A generated task that can also answer as the offline teacher: ``write_answer`` and ``injected_error``."""

    #: The fields an example needs for the writer to answer it (an example without them gets a request error).
    required_fields: ClassVar[tuple[str, ...]] = ()

    def can_write(self, example: Example) -> bool:
        fields = example.fields if isinstance(example.fields, dict) else {}
        return bool(self.required_fields) and all(k in fields for k in self.required_fields)

    def read_input(self, text: str) -> dict | None:
        """The fields of a new input typed by a person (None: the offline teacher cannot read it)."""
        return None

    def injected_error(self, example: Example, teacher) -> str | None:
        """The mistake ``teacher`` makes on ``example`` (None: it answers right)."""
        raise NotImplementedError

    def write_answer(self, example: Example, teacher) -> TeacherReply:
        """The teacher's raw answer (with a class distribution where the task has a label space)."""
        raise NotImplementedError


def uniform(*parts) -> float:
    """A uniform number in [0, 1) from its parts: stable across processes, unlike ``hash()``."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:.2f}".rstrip("0")


def truncate(text: str) -> str:
    """Cut off mid-sentence, as when a model runs out of tokens before its answer."""
    words = text.split()
    return " ".join(words[: max(3, len(words) * 2 // 3)])


def generate(spec: dict, make: Callable[[random.Random, int], tuple[str, str, dict]]) -> Iterator[Example]:
    """Examples of every split from ``make(rng, index)``; duplicates of earlier inputs are drawn again."""
    seen: set[str] = set()
    for split in _SPLIT_ORDER:
        rng = random.Random(f"{spec['seed']}/{split}")  # str seeds hash with SHA-512: same in every process
        for i in range(spec[f"n_{split}"]):
            text, label, fields = make(rng, i)
            while text in seen:
                text, label, fields = make(rng, i)
            seen.add(text)
            yield Example(f"{split}-{i:05d}", split, text, label, fields)


def sizes(n_train, n_valid, n_test, seed) -> dict:
    spec = {"n_train": int(n_train), "n_valid": int(n_valid), "n_test": int(n_test), "seed": int(seed)}
    if min(spec["n_train"], spec["n_valid"], spec["n_test"]) < 0:
        raise ConfigError(f"split sizes must be zero or more, not {spec}")
    return spec
