"""One registry per concept: a new task, teacher or method is one new class plus its registration, and nothing
else in the workbench changes (the README's "how to add" recipes, done here with throw-away ones)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from workbench.core.errors import ConfigError, TeacherError, UnknownNameError
from workbench.core.records import Example
from workbench.core.registry import Registry
from workbench.data.tasks import TASKS, Task, list_tasks, load_task, register_task
from workbench.distill.config import TrainConfig
from workbench.distill.methods import METHODS, Standard, register_method
from workbench.distill.runs import train_student
from workbench.rationales.generation import check_generation, generate_rationales
from workbench.rationales.teachers.base import (
    TEACHERS,
    Option,
    Teacher,
    TeacherReply,
    get_teacher,
    register_teacher,
    teacher_kinds,
)


@pytest.fixture
def throwaway():
    """Registers nothing itself; removes whatever a test registered under these names afterwards."""
    yield
    TASKS.unregister("parity")
    TEACHERS.unregister("echo")
    METHODS.unregister("louder")


class ParityTask(Task):
    """Is the number even or odd? (Generated, like a built-in task.)"""

    def build_examples(self):
        for split, n in (("train", 24), ("test", 8)):
            for i in range(n):
                yield Example(f"{split}-{i}", split, f"Is {i + 3} even or odd?", "even" if (i + 3) % 2 == 0 else "odd")


def parity() -> ParityTask:
    return ParityTask(name="parity", answer_kind="classes", labels=("even", "odd"), template_name="generic-class",
                      source="builtin")


class EchoTeacher(Teacher):
    """Answers every question with a fixed label."""

    kind = "echo"
    options = (Option("label", str, "even", "what it always answers"),
               Option("repeat", int, 1, "how many times it says why", low=1, high=3))

    def answer(self, requests):
        why = " ".join(["It just is."] * self.repeat)
        return [TeacherReply(f"{why} So the answer is {self.label}.") for _ in requests]


class Louder(Standard):
    """standard, with the label twice as loud: one new method, nothing else changed."""

    name = "louder"
    needs_teacher = "copies the teacher"

    def weights(self):
        return [2.0]


def test_a_new_task_teacher_and_method_need_only_their_registration(store, throwaway):
    register_task("parity")(parity)
    register_teacher(EchoTeacher)
    register_method(Louder)

    assert "parity" in [t["name"] for t in list_tasks(store)]
    task = load_task("parity", store)
    assert isinstance(task, ParityTask) and task.split_sizes() == {"train": 24, "test": 8}
    assert isinstance(load_task("parity", store), ParityTask)  # read back from the store as its own class

    kinds = {k["kind"]: k for k in teacher_kinds()}
    assert [o["name"] for o in kinds["echo"]["options"]] == ["label", "repeat"]
    teacher = get_teacher("echo?label=odd&repeat=2", store=store)
    assert teacher.settings == {"label": "odd", "repeat": 2}
    check_generation(store, "parity", "echo?label=odd", limit=4)
    summary = generate_rationales(store, task, teacher)
    assert summary["parsed"] == 24 and summary["teacher_accuracy"] == pytest.approx(0.5)

    cfg = TrainConfig(task="parity", method="louder", student="tiny", teacher="echo", steps=2, batch_size=4,
                      test_limit=4, label_source="teacher")
    with pytest.raises(ConfigError, match="copies the teacher"):
        TrainConfig(task="parity", method="louder", student="tiny")
    out = train_student(store, cfg)
    assert out["status"] == "done" and out["method"] == "louder"


def test_typed_options_are_checked_once_for_every_teacher(throwaway):
    register_teacher(EchoTeacher)
    for bad, says in (("echo?repeat=9", "from 1 to 3"), ("echo?repeat=two", "whole number"),
                      ("echo?volume=11", "unknown echo teacher option"), ("echo:target", "takes no target")):
        with pytest.raises(TeacherError, match=says):
            get_teacher(bad)
    for bad in ("nan", "inf", "-1", "1e400", "0"):
        with pytest.raises(TeacherError, match="timeout"):
            get_teacher(f"openai:m@http://127.0.0.1:9/v1?timeout={bad}")


def test_every_entry_point_of_the_workbench_loads():
    groups = {"workbench.tasks": TASKS, "workbench.teachers": TEACHERS, "workbench.jobs": None}
    for group, registry in groups.items():
        names = [ep.name for ep in entry_points(group=group)]
        assert names, f"no entry points in {group}: reinstall the package (make install)"
        for ep in entry_points(group=group):
            assert ep.load() is not None
            if registry is not None:
                assert ep.name in registry


def test_a_registry_says_what_it_knows():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(UnknownNameError, match="unknown widget 'b'; known: a"):
        reg["b"]
