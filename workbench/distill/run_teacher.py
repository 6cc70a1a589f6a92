"""The ``run`` teacher: a trained student answering as a teacher, through its ``[rationale]`` and ``[label]`` heads.

Spec: ``run:RUN_NAME`` (the run must have finished: ``<workspace>/runs/NAME/model``). The run reads each example's
input (not the few-shot prompt: it was trained on inputs) and its answer is written as raw text,
``"<rationale> So the answer is <label>."`` for class tasks and ``"<rationale> The answer is <label>."`` otherwise,
so the task's own parser reads it like any teacher's. A run without a rationale head (``standard``, ``kd``) answers
with the label only.

>>> from workbench.rationales.teachers import get_teacher
>>> teacher = get_teacher("run:quantnli-dss", store=store)        # a run of this workspace (two steps: untaught)
>>> nli = store.examples("quantnli", "test", 1)[0]
>>> reply = teacher.answer([TeacherRequest(nli, prompt="", labels=("entailment", "neutral", "contradiction"))])[0]
>>> reply.raw                # doctest: +ELLIPSIS
'...So the answer is ....'
"""

from __future__ import annotations

from workbench.core.errors import TeacherError
from workbench.distill.predict import load_run
from workbench.rationales.teachers.base import Teacher, TeacherReply, TeacherRequest


class RunTeacher(Teacher):
    """A trained run as a teacher, via its [rationale] and [label] heads: ``run:RUN_NAME``."""

    kind = "run"
    needs_target = True
    target_hint = "RUN_NAME"
    cost = "compute"
    batch_size = 64

    def __init__(self, target: str = "", *, store=None, **options: str):
        super().__init__(target, store=store, **options)
        self._run = None

    @property
    def run(self):
        """The loaded run (on first use); needs the workspace store."""
        if self._run is None:
            if self.store is None:
                raise TeacherError("the run teacher needs the workspace store to find its run")
            self._run = load_run(self.store, self.target)
        return self._run

    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        rows = self.run.predict([r.example.input for r in requests], rationale=True)
        replies = []
        for req, row in zip(requests, rows):
            if row.get("label") is None:  # the student's own parse failed: pass its text on, the parser decides
                replies.append(TeacherReply((row.get("rationale") or "").strip()))
                continue
            marker = "So the answer is" if req.labels else "The answer is"
            rationale = (row.get("rationale") or "").strip()
            replies.append(TeacherReply(f"{rationale} {marker} {row['label']}.".strip()))
        return replies

    def close(self) -> None:
        self._run = None
