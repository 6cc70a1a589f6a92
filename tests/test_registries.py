"""One registry per concept: a new task, teacher or method is one new class plus its registration, and nothing
else in the workbench changes (the README's "how to add" recipes, done here with throw-away ones)."""

from __future__ import annotations

import contextlib
import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency reads TOML there
    import tomli as tomllib

from workbench.builtin.task_base import BuiltinTask
from workbench.core.errors import ConfigError, TeacherError, UnknownNameError
from workbench.core.jobs import JOB_KINDS
from workbench.core.registry import Registry
from workbench.core.store_records import Example
from workbench.data.parsers import PARSERS
from workbench.data.prompts import TEMPLATES, PromptTemplate
from workbench.data.tasks import TASKS, Task, list_tasks, load_task, register_task
from workbench.distill.config import TrainConfig
from workbench.distill.methods import METHODS, Standard, register_method
from workbench.distill.runs import train_student
from workbench.distill.students import STUDENTS
from workbench.models.catalog import MODELS
from workbench.rationales.generation import check_generation, generate_rationales
from workbench.rationales.teachers.base import (
    COSTS,
    TEACHERS,
    Option,
    Teacher,
    TeacherReply,
    TeacherRequest,
    get_teacher,
    register_teacher,
    teacher_kinds,
)

ROOT = Path(__file__).resolve().parents[1]


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


# -- a task is one class and one registration ------------------------------------------------------------------
class EvenOddTask(BuiltinTask):
    """Is the number even or odd? Everything the workbench needs is here: examples, its prompt and parser, and
    (as a built-in task) how the offline teacher answers it."""

    prompt = PromptTemplate("evenodd", "Say whether the number is even or odd. End with \"So the answer is\" and "
                            "even or odd.\n\nQ: Is 14 even or odd?\nA: 14 ends in 4, so it is even. So the answer "
                            "is even.\n\nQ: {input}\nA:", "class")
    required_fields = ("n",)

    def build_examples(self):
        for split, n in (("train", 24), ("valid", 4), ("test", 8)):
            for i in range(n):
                k = 3 * i + len(split)
                yield Example(f"{split}-{i}", split, f"Is {k} even or odd?", "odd" if k % 2 else "even",
                              {"task": "evenodd", "n": k})

    def injected_error(self, example, teacher):
        return None

    def write_answer(self, example, teacher):
        n = example.fields["n"]
        label = "odd" if n % 2 else "even"
        return TeacherReply(f"{n} ends in {n % 10}, so it is {label}. So the answer is {label}.")


def test_a_task_that_owns_its_prompt_registers_once_and_generates_and_trains(store):
    register_task("evenodd")(lambda: EvenOddTask(name="evenodd", answer_kind="classes", labels=("even", "odd"),
                                                 source="builtin"))
    try:
        assert "evenodd" not in TEMPLATES  # nothing added to the library's templates
        task = load_task("evenodd", store)
        assert task.template_name == "evenodd" and task.template() is EvenOddTask.prompt
        assert type(load_task("evenodd", store)) is EvenOddTask  # read back with its prompt and writer
        check_generation(store, "evenodd", "builtin")  # the builtin teacher answers it: it is a BuiltinTask
        summary = generate_rationales(store, task, get_teacher("builtin", store=store))
        assert summary["parsed"] == 24 and summary["teacher_accuracy"] == 1.0  # its own parser read every answer
        rows = store.latest_generations("evenodd", "builtin")
        assert {r["template_hash"] for r in rows} == {EvenOddTask.prompt.hash}
        out = train_student(store, TrainConfig(task="evenodd", method="dss", student="tiny", teacher="builtin",
                                               steps=2, batch_size=8, eval_every=0, test_limit=4,
                                               predict_rationales=False))
        assert out["status"] == "done" and out["n_test"] == 4
        meta = json.loads((store.workspace / "runs" / out["run"] / "config.json").read_text())
        assert EvenOddTask.prompt.hash in json.dumps(meta["template_hashes"])
    finally:
        TASKS.unregister("evenodd")


def test_the_built_in_tasks_own_their_prompts_with_the_hashes_their_answers_were_stored_under():
    # The hashes the templates had as files of workbench/data/prompt_templates/: generations stored before the
    # prompts moved into their tasks still match them (generation skips what is answered, by template hash).
    assert {n: (TASKS[n]().template().name, TASKS[n]().template().hash) for n in DECLARED["workbench.tasks"]} == {
        "wordproblems": ("wordproblems", "304a9946bee640ee"), "wordproblems-hard": ("wordproblems", "304a9946bee640ee"),
        "quantnli": ("quantnli", "d975aa5ff28697de")}
    assert not set(TEMPLATES) & {"wordproblems", "quantnli"}


# -- the workbench's own entry points (pyproject.toml) ----------------------------------------------------------
DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
# Every registry that reads an entry-point group (core/registry.py): a group no registry reads is dead metadata.
REGISTRIES = {r.group: r for r in (TASKS, TEACHERS, JOB_KINDS, METHODS, STUDENTS, PARSERS, MODELS)}
DECLARED_POINTS = [(group, name) for group in DECLARED for name in DECLARED[group]]


def _target(value: str):
    module, _, attr = value.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_every_entry_point_group_feeds_a_registry_and_is_installed_as_declared():
    assert set(DECLARED) <= set(REGISTRIES), f"groups no registry reads: {set(DECLARED) - set(REGISTRIES)}"
    assert {"workbench.tasks", "workbench.teachers", "workbench.jobs"} <= set(DECLARED)
    for group, declared in DECLARED.items():
        installed = {ep.name: ep.value for ep in entry_points(group=group)
                     if ep.dist is not None and ep.dist.name == "workbench"}
        assert installed == declared, f"{group}: the installed metadata is stale; reinstall (make install)"
        for name, value in declared.items():
            assert name in REGISTRIES[group].names()
            assert REGISTRIES[group][name] is _target(value)  # the registry hands out exactly what was declared


@pytest.mark.parametrize("name", sorted(DECLARED["workbench.tasks"]))
def test_each_declared_task_builds_stores_and_is_answered_by_the_builtin_teacher(name, store):
    task = load_task(name, store, n_train=12, n_valid=3, n_test=3)
    assert (task.name, task.source) == (name, "builtin")
    assert task.split_sizes() == {"train": 12, "valid": 3, "test": 3}
    assert type(load_task(name, store)) is type(task)  # read back as its own class, with what it owns
    examples = task.examples("train")
    assert all(task.is_correct(e.label, e.label) for e in examples)  # gold scores as correct by its metric
    assert not task.is_correct(None, examples[0].label)
    summary = generate_rationales(store, task, get_teacher("builtin", store=store))
    assert summary["generated"] == 12 and summary["parsed"] >= 6  # its template's parser reads its teacher
    assert 0 < summary["teacher_accuracy"] <= 1


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from workbench.models.loading import save_random_checkpoint

    return save_random_checkpoint(tmp_path_factory.mktemp("llama") / "tiny-llama", "causal",
                                  texts=["Is 3 even or odd ? The answer is odd ."])


def _teacher_spec(kind: str, trained_store, trained_run: str, tiny_llama: str, stack) -> tuple[str, str]:
    """A spec of ``kind`` that works in ``trained_store``, and the task to ask it about."""
    if kind == "released":
        return "released:palm-540b", "svamp"
    if kind == "hf":
        return f"hf:{tiny_llama}?max_new_tokens=8", "quantnli"
    if kind == "openai":  # the same tiny model behind a real local OpenAI-compatible server
        from workbench.serving import ServerThread, create_app, resolve_model

        server = stack.enter_context(ServerThread(create_app(resolve_model(tiny_llama))))
        return f"openai:tiny@{server.url}?mode=completions&max_tokens=8&max_retries=0", "quantnli"
    if kind == "run":
        return f"run:{trained_run}", "quantnli"
    return kind, "quantnli"


@pytest.mark.parametrize("kind", sorted(DECLARED["workbench.teachers"]))
def test_each_declared_teacher_answers_through_its_spec(kind, trained_store, trained_run, tiny_llama):
    cls = TEACHERS[kind]
    assert issubclass(cls, Teacher) and cls.kind == kind and cls.cost in COSTS
    assert kind in {k["kind"] for k in teacher_kinds()}  # listed for the CLI and the app's form
    with contextlib.ExitStack() as stack:
        spec, task_name = _teacher_spec(kind, trained_store, trained_run, tiny_llama, stack)
        teacher = get_teacher(spec, store=trained_store)
        assert type(teacher) is cls
        task = load_task(task_name, trained_store)
        examples = trained_store.examples(task_name, "test", 2)
        requests = [TeacherRequest(e, task.template().render(e.input), labels=task.labels, task=task)
                    for e in examples]
        replies = teacher.answer(requests)
    assert len(replies) == 2 and all(r.error is None and isinstance(r.raw, str) for r in replies), replies
    if kind in ("builtin", "released"):  # answers that are meant to be read: the task's parser reads them
        assert all(task.template().parser.parse(r.raw).parse_error is None for r in replies)
    if kind == "run":  # a run answers in the form the task's parser expects
        assert all("So the answer is" in r.raw for r in replies)


def test_each_declared_job_kind_runs_a_job_to_its_end(trained_store):
    from workbench.core.jobs import job_status, start_job
    from workbench.distill.sweeps import SweepConfig, create_sweep

    assert set(DECLARED["workbench.jobs"]) == {"generate", "train", "sweep"}, "a new job kind: add its case here"
    sweep = create_sweep(trained_store, SweepConfig(task="quantnli", teacher="builtin", methods=("standard",),
                                                    rows=(8,), seeds=(0,), steps=1, test_limit=2))
    specs = {
        "generate": {"task": "wordproblems", "teacher": "builtin", "limit": 4},
        "train": TrainConfig(task="quantnli", method="standard", student="tiny", steps=1, batch_size=4,
                             test_limit=2, eval_every=0, run="by-job").to_dict(),
        "sweep": {"sweep": sweep},
    }
    results = {}
    for kind, spec in specs.items():
        row = job_status(trained_store, start_job(trained_store, kind, spec, detach=False))
        assert row["status"] == "done", row
        results[kind] = row["progress"]["result"]
    assert results["generate"]["generated"] == 4
    assert results["train"]["status"] == "done" and trained_store.run_row("by-job")["status"] == "done"
    assert results["sweep"]["done"] == results["sweep"]["total"] == 1


def test_a_registry_says_what_it_knows():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(UnknownNameError, match="unknown widget 'b'; known: a"):
        reg["b"]
