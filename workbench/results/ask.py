"""Ask both: one new question to a trained student and to a teacher, each answer checked the way the test split is.

For each side: the answer's value (an equation evaluated with the safe evaluator; a class label as it is), the
rationale with every ``a op b = c`` step checked, and ✓/✗ against gold when the question is one of the task's
examples; then whether teacher and student agree. The app's "Ask both" box, notebooks and scripts all call
:func:`ask_both` and only render what it returns.

>>> question = store.examples("quantnli", "test")[0].input     # or any new text
>>> out = ask_both(store, "quantnli-dss", question)             # a tiny dss student after two steps
>>> out.teacher.value_text          # the builtin teacher's label; out.student holds the student's, checked alike
'neutral'
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.core.errors import ConfigError
from workbench.core.store import Store
from workbench.core.store_records import Example
from workbench.data.metrics import METRICS, EquationError, StepCheck, check_steps, evaluate_equation
from workbench.data.tasks import load_task
from workbench.distill.predict import RunCache
from workbench.distill.runfolder import RunFolder
from workbench.rationales.generation import answer_one
from workbench.rationales.suggest import can_teach
from workbench.rationales.teachers.base import get_teacher
from workbench.results.compare import task_teacher

RUNS = RunCache(size=2)  # the last students asked: loading takes seconds, asking one takes milliseconds
MARK = {True: "✓", False: "✗", None: "–"}


@dataclass(frozen=True)
class AskedAnswer:
    """One side's answer to a new question, checked."""

    who: str  # "teacher" or "student"
    name: str  # the teacher's spec or the run's name
    label: str | None
    rationale: str | None
    value: float | str | None  # the label's value: an equation evaluated, a class as it is; None: no value
    steps: StepCheck  # every "a op b = c" of the rationale, checked
    correct: bool | None  # against gold; None when the question is not one of the task's examples
    problem: str | None = None  # a parse error, or why the teacher could not answer

    @property
    def value_text(self) -> str:
        if self.value is None:
            return "–"
        if isinstance(self.value, float):
            return f"{self.value:g}" if self.value == int(self.value) else f"{self.value:.4g}"
        return str(self.value)

    def steps_text(self) -> str:
        """``4 - 2 = 2 ✓ · 2 - 1 = 3 ✗`` (or a dash when the rationale has no step to check)."""
        return " · ".join(f"{step} {MARK[ok]}" for step, ok in self.steps.checked) or "–"


@dataclass(frozen=True)
class AskBoth:
    """Teacher and student on one question: both answers, whether they agree, and gold when there is one."""

    question: str
    task: str
    answer_kind: str
    teacher: AskedAnswer
    student: AskedAnswer
    agree: bool | None  # None when a side has no answer to compare
    example_id: str | None = None  # the task's example this question is, if it is one
    gold: str | None = None

    def verdict(self) -> str:
        """One sentence: agreement, and gold or why there is none."""
        t, s = self.teacher, self.student
        if self.agree is None:
            head = "No comparison: " + ("the teacher gave no answer" if t.label is None else "the student gave no answer")
        else:
            head = (f"Teacher and student {'agree' if self.agree else 'disagree'} "
                    f"(value {t.value_text} vs {s.value_text})")
        if self.example_id is None:
            return head + "; this question is not one of the task's examples, so there is no gold answer to check."
        return (f"{head}; gold ({self.example_id}): {self.gold} — teacher {MARK[t.correct]}, "
                f"student {MARK[s.correct]}.")


def answer_value(label: str | None, answer_kind: str) -> float | str | None:
    """What an answer is worth: an equation's value, a class or text as written; None when it has none.

    >>> answer_value("( 4 - 2 ) - 1", "equation"), answer_value("4 -", "equation"), answer_value("yes", "classes")
    (1.0, None, 'yes')
    """
    if label is None or not label.strip():
        return None
    if answer_kind != "equation":
        return label.strip()
    try:
        return evaluate_equation(label)
    except EquationError:
        return None


def find_example(store: Store, task: str, text: str) -> Example | None:
    """The task's example whose input is ``text`` (spaces aside), if any: then the question has a gold answer."""
    key = " ".join(text.split())
    return next((e for e in store.examples(task) if " ".join(e.input.split()) == key), None)


def asking_teacher(store: Store, run: str, teacher: str | None = None) -> str | None:
    """Who answers beside a run's student: ``teacher`` (the one selected) when it can answer the run's task, else
    the run's own teacher, else the task's teacher (the one its runs are compared with)."""
    meta = RunFolder.of(store, run).read_meta()
    task = load_task(meta["task"]["name"], store)
    if teacher and can_teach(store, task, teacher) is None:
        return teacher
    return meta.get("teacher") or task_teacher(store, task.name)


def ask_both(store: Store, run: str, text: str, *, teacher: str | None = None, template_text: str | None = None,
             selected_task: str | None = None) -> AskBoth:
    """Ask a finished run's student and a teacher (:func:`asking_teacher`) one question, and check both answers.

    ``teacher``, ``template_text`` and ``selected_task`` are a selection (the app's first tab): the teacher chosen,
    and a few-shot template edited for ``selected_task``. The template is used only when that teacher answers and
    the run is of that task."""
    text = (text or "").strip()
    if not text:
        raise ConfigError("type a question first")
    meta = RunFolder.of(store, run).read_meta()
    task = load_task(meta["task"]["name"], store)
    if selected_task and selected_task != task.name:
        template_text = None
    spec = asking_teacher(store, run, teacher)
    example = find_example(store, task.name, text)
    gold = example.label if example is not None else None
    s = RUNS.get(store, run).predict([text], rationale=True)[0]
    student = _checked("student", run, s["label"], s.get("rationale"), s.get("parse_error"), task.answer_kind, gold)
    if spec is None:
        t_answer = _checked("teacher", "", None, None, "no teacher can answer this task", task.answer_kind, gold)
    else:
        template = task.template()
        if template_text and spec == teacher and template_text != template.text:
            template = template.with_text(template_text)
        t = _ask_teacher(store, task, spec, template, text)
        t_answer = _checked("teacher", spec, t["label"], t["rationale"], t["error"] or t["parse_error"],
                            task.answer_kind, gold)
    agree = None
    if t_answer.label is not None and student.label is not None:
        agree = bool(METRICS[task.answer_kind](student.label, t_answer.label))
    return AskBoth(text, task.name, task.answer_kind, t_answer, student, agree,
                   example.id if example is not None else None, gold)


def _ask_teacher(store: Store, task, spec: str, template, text: str) -> dict:
    teacher = get_teacher(spec, store=store)
    try:
        out = answer_one(store, task, teacher, text, template)
    finally:
        teacher.close()
    if out["error"]:
        out["error"] = f"the teacher could not answer: {out['error']}"
    return out


def _checked(who: str, name: str, label: str | None, rationale: str | None, problem: str | None, answer_kind: str,
             gold: str | None) -> AskedAnswer:
    label = label if label and label.strip() else None
    correct = None
    if gold is not None:
        correct = problem is None and label is not None and bool(METRICS[answer_kind](label, gold))
    return AskedAnswer(who, name, label, rationale or None, answer_value(label, answer_kind),
                       check_steps(rationale), correct, problem)
