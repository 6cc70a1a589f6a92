"""Which teacher fits a task: what the app preselects when a task is chosen or imported, and what a run without
a teacher of its own is compared with.

An imported paper task (svamp) with the builtin teacher selected:

>>> suggest_teacher(store, "svamp", "builtin")
'released:palm-540b'
"""

from __future__ import annotations

from workbench.core.errors import WorkbenchError
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.rationales.teachers.base import TEACHERS, get_teacher, teacher_id


def can_teach(store: Store, task, spec: str) -> str | None:
    """Why ``spec`` cannot generate answers for ``task`` (None: it can)."""
    try:
        teacher = get_teacher(spec, store=store)
    except WorkbenchError as err:
        return str(err)
    if not teacher.can_generate:
        answered = any(t["teacher"] == teacher.id for t in store.teachers_of(task.name))
        return None if answered else f"{teacher.id} has no stored answers for {task.name!r}"
    return teacher.can_answer(task)


def suggest_teacher(store: Store, task_name: str, current: str | None = None, split: str | None = None) -> str | None:
    """The current teacher if it can teach this task; else the teacher that answered most of the task (of
    ``split``, when given: comparisons use the test split); else a free teacher that can answer it."""
    task = load_task(task_name, store)
    if current and can_teach(store, task, current) is None:
        return current
    counts = {}
    for t in store.teachers_of(task_name):
        if t["n"] > (t["errors"] or 0):
            counts[t["teacher"]] = (len(store.latest_generations(task_name, t["teacher"], split=split))
                                    if split else t["n"] - (t["errors"] or 0))
    best = max(counts, key=counts.get, default=None)
    if best and counts[best]:
        return best
    for kind, cls in TEACHERS.items():
        if cls.cost == "free" and cls.can_generate and not cls.needs_target and can_teach(store, task, kind) is None:
            return kind
    return current if current is None else teacher_id(current)


def restore_selection(store: Store, task: str | None, teacher: str | None, default_task: str | None = None
                      ) -> tuple[str | None, str | None]:
    """The task and teacher a page opens on: the ones it showed before a reload (``task``, ``teacher``) when the
    task is still here; else those of the job running now (a generation or a run started before the reload);
    else ``default_task``, or the first task. The teacher is kept only if it can teach that task
    (:func:`suggest_teacher` picks one otherwise), so task and teacher never disagree."""
    from workbench.core.jobs import ACTIVE, list_jobs
    from workbench.data.tasks import list_tasks

    names = [t["name"] for t in list_tasks(store)]
    if task not in names:
        running = next((j["spec"] for j in list_jobs(store) if j["status"] in ACTIVE and j["spec"].get("task") in names),
                       None)
        task, teacher = (running["task"], running.get("teacher")) if running else (
            default_task if default_task in names else (names[0] if names else None), teacher)
    if task is None:
        return None, teacher
    return task, suggest_teacher(store, task, teacher or None)
