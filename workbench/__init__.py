"""Step-by-step distillation workbench: teacher rationales → edited training sets → students → comparisons.

The public API, shared by the CLI, the Gradio app and the notebooks::

    from workbench import Store, load_task, get_teacher, generate_rationales, build_training_set
    store = Store.open("workspace")
    task = load_task("wordproblems", store)
    generate_rationales(store, task, get_teacher("builtin"), limit=200)

Names are imported lazily so that ``import workbench`` (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "Store": "workbench.store",
    "Example": "workbench.store",
    "Generation": "workbench.store",
    "load_task": "workbench.tasks",
    "list_tasks": "workbench.tasks",
    "get_teacher": "workbench.teachers",
    "get_template": "workbench.prompts",
    "generate_rationales": "workbench.generation",
    "plan_generation": "workbench.generation",
    "build_training_set": "workbench.trainingset",
    "edit_generation": "workbench.review",
    "set_status": "workbench.review",
    "browse_generations": "workbench.review",
    "import_paper": "workbench.tasks.paper",
    "import_custom": "workbench.tasks.custom",
    "ColumnMapping": "workbench.tasks.custom",
    "answer_one": "workbench.generation",
    "current_state": "workbench.review",
    "TrainConfig": "workbench.config",
    "train_student": "workbench.runs",
    "resume_run": "workbench.runs",
    "evaluate": "workbench.evaluation",
    "load_run": "workbench.evaluation",
    "compare": "workbench.compare",
    "start_job": "workbench.jobs",
    "job_status": "workbench.jobs",
    "cancel_job": "workbench.jobs",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
