"""The demo recipe: what the app's forms, ``workbench train`` and the benchmarks start from when nothing else is
said — the built-in word problems, the built-in teacher, a ``dss`` student from the ``tiny`` preset, and that
student's own recipe (:mod:`workbench.distill.student_recipes`) for steps, batch size, learning rate and
evaluations.

>>> DEMO.config().resolved().steps, DEMO.config().method
(1000, 'dss')
>>> form_defaults()["eval_every"], form_defaults("/my/checkpoint")["learning_rate"]
(200, 0.0001)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from workbench.distill.config import TrainConfig
from workbench.distill.methods import METHODS
from workbench.distill.students import recipe_for
from workbench.distill.sweeps import SweepConfig


@dataclass(frozen=True)
class DemoRecipe:
    task: str = "wordproblems"
    teacher: str = "builtin"
    method: str = "dss"
    student: str = "tiny"

    def config(self, **overrides) -> TrainConfig:
        """The demo's training config; ``overrides`` are TrainConfig fields (None values are ignored)."""
        method = METHODS.get(overrides.get("method") or self.method)
        values = {"task": self.task, "method": self.method, "student": self.student,
                  "teacher": self.teacher if method is None or method.needs_teacher else None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**values)


DEMO = DemoRecipe()


def form_defaults(student: str | None = None) -> dict:
    """Every TrainConfig field's starting value for a form: the config's own defaults, the demo's task, method and
    student, and the student's recipe for the fields it sets."""
    student = student or DEMO.student
    out = {f.name: f.default for f in fields(TrainConfig) if f.name != "task"}
    out.update(task=DEMO.task, method=DEMO.method, student=student, teacher=DEMO.teacher,
               **recipe_for(student).to_dict())
    return out


# The classroom sweep: the paper's claim on the built-in hard word problems with the pretrained student, sized for
# one class period on 2 CPU cores (bench/classroom.py measures it): standard vs dss at 32 and 128 rows, 2 epochs
# each, three seeds (what a verdict needs), scored on the first 100 test problems. The Sweeps tab starts here.
CLASSROOM_SWEEP = SweepConfig(task="wordproblems-hard", teacher="builtin", methods=("standard", "dss"),
                              rows=(32, 128), students=("smollm2-135m",), epochs=2.0)
