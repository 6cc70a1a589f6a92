"""The ``released`` teacher: answers that already sit in the workspace store, replayed, never generated.

The paper's PaLM-540B outputs arrive with ``workbench import-paper`` (teacher ``released:palm-540b``) and
rationales from an uploaded file with ``workbench task-add --rationale COL`` (teacher ``released:file``). Both are
stored as ordinary generations, so training sets, review and comparison treat them like any other teacher's.
This class lets code that asks a teacher for an answer (comparison, a run using a teacher) get the stored one.

>>> from workbench.rationales.teachers import get_teacher
>>> teacher = get_teacher("released:palm-540b", store=store)    # this workspace imported the paper's svamp
>>> problem = store.examples("svamp", "test", 1)[0]
>>> teacher.answer([TeacherRequest(problem, prompt="")])[0].raw       # doctest: +ELLIPSIS
'They put 10 seeds in each flower bed. There are 45 flower beds. So they planted 10 * 45 seeds. ...'
>>> teacher.answer([TeacherRequest(example, prompt="")])[0].error       # a word problem PaLM never saw
"no stored answer from released:palm-540b for example 'train-00000'; released teachers cannot generate"
"""

from __future__ import annotations

import json

from workbench.rationales.teachers.base import Option, Teacher, TeacherReply, TeacherRequest

# Latest successful answer of this teacher for an example, matched on the example's id and input text so that
# two tasks that happen to share ids (``train-0``) cannot answer for each other.
_LOOKUP = """
SELECT g.raw, g.label_dist FROM generations g
JOIN examples x ON x.task = g.task AND x.id = g.example_id
WHERE g.teacher = ? AND g.example_id = ? AND x.input = ? AND g.error IS NULL AND (? IS NULL OR g.task = ?)
ORDER BY g.id DESC LIMIT 1
"""


class ReleasedTeacher(Teacher):
    """Replays stored answers (the paper's PaLM outputs, a file's rationales); cannot generate new ones.

    Spec: ``released:palm-540b`` or ``released:file``; ``?task=NAME`` restricts the lookup to one task.
    """

    kind = "released"
    options = (Option("task", str, None, "restrict the lookup to one task's stored answers"),)
    needs_target = True
    target_hint = "palm-540b"
    can_generate = False

    def can_answer(self, task) -> str | None:
        if self.store is not None and not any(t["teacher"] == self.id for t in self.store.teachers_of(task.name)):
            return (f"{self.id} has no stored answers for task {task.name!r}; released teachers replay answers "
                    "that came with an import, they cannot generate new ones")
        return None

    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        if self.store is None:
            return [TeacherReply(None, error="the released teacher needs the workspace store") for _ in requests]
        task = self.task
        replies = []
        for req in requests:
            row = self.store.conn.execute(_LOOKUP, (self.id, req.example.id, req.example.input, task, task)).fetchone()
            if row is None:
                replies.append(TeacherReply(None, error=f"no stored answer from {self.id} for example "
                                                        f"{req.example.id!r}; released teachers cannot generate"))
            else:
                dist = json.loads(row["label_dist"]) if row["label_dist"] else None
                replies.append(TeacherReply(row["raw"], label_dist=dist))
        return replies
