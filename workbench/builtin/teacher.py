"""The offline teacher: ``builtin?error_rate=0.2&seed=0``, for the built-in tasks.

It knows no task itself. Each built-in task owns the writer that turns an example's structure into raw text
the way an LLM would (:meth:`~workbench.builtin.task_base.BuiltinTask.write_answer`), so the same parser runs
on it as on a real model; this teacher only rolls the dice. Mistakes are seeded per example (a SHA-256 of
seed, task and example id, never ``hash()``), so the same spec gives the same answers in every process.

>>> from workbench.rationales.teachers import get_teacher
>>> teacher = get_teacher("builtin?error_rate=0.1&seed=3")
>>> example.input               # a word problem of the built-in task
"Sam has 10 coins. He buys 2 more. There are 17 kids in Jack's class. How many coins does Sam have now?"
>>> teacher.answer([TeacherRequest(example, prompt, task=task)])[0].raw
'Sam starts with 10 coins. He buys 2 more, so 10 + 2 = 12. We do not need the 17 kids in the class, because the question is about coins. The answer is 10 + 2.'
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from workbench.builtin.task_base import BuiltinTask, uniform
from workbench.core.store_records import Example
from workbench.data.tasks import TASKS
from workbench.rationales.teachers.base import Option, Teacher, TeacherReply, TeacherRequest

UNKNOWN_TASK = ("the builtin teacher only knows the built-in tasks (wordproblems, quantnli); "
                "use hf:… or openai:…")


class BuiltinTeacher(Teacher):
    """Offline teacher for the built-in tasks, with a seeded error rate: ``builtin?error_rate=0.2&seed=0``."""

    kind = "builtin"
    options = (Option("error_rate", float, 0.2, "share of answers that are wrong or unparseable", low=0, high=1),
               Option("seed", int, 0, "which examples it gets wrong"))
    cost = "free"
    batch_size = 256  # it is instant; big batches just mean fewer store transactions

    def __init__(self, target: str = "", *, store=None, **options: str):
        super().__init__(target, store=store, **options)
        self._writers: dict[str, BuiltinTask | None] = {}

    def can_answer(self, task) -> str | None:
        return None if isinstance(task, BuiltinTask) else (
            f"the builtin teacher writes answers only for the built-in tasks, not for {task.name!r}; pick a teacher "
            "that can read it (hf:…, openai:…, or released:… when the task came with answers)")

    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        replies = []
        for r in requests:
            example, writer = r.example, self.writer_for(r.example, r.task)
            if writer is None and isinstance(r.task, BuiltinTask):  # a new input: read it as the task's own text
                fields = r.task.read_input(example.input)
                if fields is None:
                    replies.append(TeacherReply(f"I cannot follow this {r.task.name} input; I will not guess."))
                    continue
                digest = hashlib.sha256(example.input.encode("utf-8", "replace")).hexdigest()[:12]
                example, writer = replace(example, id=f"read-{digest}", fields=fields), r.task
            replies.append(writer.write_answer(example, self) if writer else TeacherReply(None, error=UNKNOWN_TASK))
        return replies

    def dice(self, example: Example, purpose: str) -> float:
        """A uniform number in [0, 1) for one decision about one example (the same in every process)."""
        return uniform(self.seed, example.fields["task"], example.id, purpose)

    def writer_for(self, example: Example, task=None) -> BuiltinTask | None:
        """The built-in task that writes this example's answer: the request's own task, or the task family named
        in the example's fields; None when the example lacks the structure to answer it."""
        if not isinstance(task, BuiltinTask):
            family = example.fields.get("task") if isinstance(example.fields, dict) else None
            if family not in self._writers:
                made = TASKS[family]() if isinstance(family, str) and family in TASKS else None
                self._writers[family] = made if isinstance(made, BuiltinTask) else None
            task = self._writers[family]
        return task if task is not None and task.can_write(example) else None

    def injected_error(self, example: Example) -> str | None:
        """The mistake this teacher makes on ``example``, or None when it answers correctly (or cannot answer)."""
        writer = self.writer_for(example)
        return writer.injected_error(example, self) if writer else None

    def confidence(self, example: Example) -> float:
        """quantnli: probability that the answer is right (its ``label_dist`` peak)."""
        return self.writer_for(example).confidence(example, self)
