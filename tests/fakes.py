"""A fake teacher with queued answers (registered as ``fake``), and a toy task, for unit tests."""

from __future__ import annotations

from workbench.core.store import Example
from workbench.data.prompts import PromptTemplate
from workbench.data.tasks import Task, save_task
from workbench.rationales.teachers.base import Teacher, TeacherReply, register_teacher

TOY_TEMPLATE = PromptTemplate("toy", "Q: What is 2 + 2?\nA: 2 + 2 is 4. The answer is (2 + 2).\n\nQ: {input}\nA:",
                              "equation")


@register_teacher
class FakeTeacher(Teacher):
    """Answers from a queue keyed by example id; ``calls`` records every prompt it was asked."""

    kind = "fake"
    answers: dict[str, str] = {}
    calls: list[str] = []

    def __init__(self, target="", *, store=None, **options):
        super().__init__(target, store=store, **options)
        self.batch_size = int(options.get("batch_size", 4))

    def answer(self, requests):
        out = []
        for r in requests:
            FakeTeacher.calls.append(r.example.id)
            raw = FakeTeacher.answers.get(r.example.id)
            out.append(TeacherReply(raw=None, error="no answer queued") if raw is None else TeacherReply(raw=raw))
        return out


def toy_task(store, n_train: int = 8, n_test: int = 4) -> Task:
    """Sums ``a + b``; the fake teacher answers right, wrong or unparseably by design."""
    task = Task(name="toy", answer_kind="equation", template_name="generic-equation", source="test")
    examples = []
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            a, b = i + 1, 2 * i + 3
            examples.append(Example(f"{split}-{i}", split, f"Anne has {a} apples and gets {b} more. How many?",
                                    f"( {a} + {b} )", {"a": a, "b": b}))
    save_task(store, task, examples)
    FakeTeacher.answers = {}
    for ex in examples:
        a, b = ex.fields["a"], ex.fields["b"]
        i = int(ex.id.split("-")[1])
        if i % 4 == 3:
            FakeTeacher.answers[ex.id] = f"She has {a} and gets {b}. I am not sure."  # no answer marker
        elif i % 4 == 2:
            FakeTeacher.answers[ex.id] = f"{a} - {b}. The answer is ({a} - {b}).\n\nQ: invented follow-on"
        else:
            FakeTeacher.answers[ex.id] = f"She has {a} and gets {b} more, so {a} + {b}. The answer is ({a} + {b})."
    FakeTeacher.calls = []
    return task
