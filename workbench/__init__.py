"""Step-by-step distillation workbench: teacher rationales → edited training sets → students → comparisons.

The package is laid out as the pipeline's stages, each importing only the stages before it: ``core`` (errors,
store, jobs, events, registries), ``models`` (the pretrained catalog, GGUF conversion, the models folder, the
checkpoint loader), ``data`` (tasks, prompts, parsers, metrics), ``rationales`` (teachers,
generation, review, training sets), ``imports`` (the paper's release, custom files), ``distill`` (configs,
methods, students, the trainer, runs), ``results`` (evaluation, comparisons, plots), ``builtin`` (the offline
tasks, teacher and demo recipe), and the fronts ``serving``, ``ui`` and ``cli``.

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
    # core: the workspace store and background jobs
    "Store": "workbench.core.store",
    "Example": "workbench.core.store",
    "Generation": "workbench.core.store",
    "start_job": "workbench.core.jobs",
    "job_status": "workbench.core.jobs",
    "cancel_job": "workbench.core.jobs",
    "wait_job": "workbench.core.jobs",
    # models: the pretrained catalog (smollm2-135m offline, hub models with what they need), a tiny random checkpoint
    "list_models": "workbench.models.catalog",
    "save_random_checkpoint": "workbench.models.loading",
    # data: tasks and prompts
    "load_task": "workbench.data.tasks",
    "list_tasks": "workbench.data.tasks",
    "register_task": "workbench.data.tasks",
    "get_template": "workbench.data.prompts",
    # rationales: teachers, generation, review, training sets
    "get_teacher": "workbench.rationales.teachers",
    "register_teacher": "workbench.rationales.teachers",
    "generate_rationales": "workbench.rationales.generation",
    "plan_generation": "workbench.rationales.generation",
    "answer_one": "workbench.rationales.generation",
    "build_training_set": "workbench.rationales.trainingset",
    "edit_generation": "workbench.rationales.review",
    "set_status": "workbench.rationales.review",
    "browse_generations": "workbench.rationales.review",
    "current_state": "workbench.rationales.review",
    # imports: the paper's release and custom files
    "import_paper": "workbench.imports.paper",
    "import_custom": "workbench.imports.custom",
    "ColumnMapping": "workbench.imports.custom",
    # distill: configs, runs, trained students
    "TrainConfig": "workbench.distill.config",
    "config_to_cli": "workbench.distill.config",
    "register_method": "workbench.distill.methods",
    "train_student": "workbench.distill.runs",
    "resume_run": "workbench.distill.runs",
    "load_run": "workbench.distill.predict",
    "RunFolder": "workbench.distill.runfolder",
    "SweepConfig": "workbench.distill.sweeps",
    "create_sweep": "workbench.distill.sweeps",
    "run_sweep": "workbench.distill.sweeps",
    "start_sweep": "workbench.distill.sweeps",
    "sweep_status": "workbench.distill.sweeps",
    "sweep_points": "workbench.distill.sweeps",
    "estimate_sweep": "workbench.distill.sweeps",
    "estimate_run": "workbench.distill.estimates",
    # results: scores, comparisons, figures
    "evaluate": "workbench.results.evaluation",
    "compare": "workbench.results.compare",
    "plots": "workbench.results.plots",
    "sweep_report": "workbench.results.sweep_report",
    "compare_correct": "workbench.results.verdict",
    "sweep_verdicts": "workbench.results.verdict",
    "versus_verdicts": "workbench.results.verdict",
    # serving: an OpenAI-compatible endpoint for a checkpoint or a run
    "ServerThread": "workbench.serving",
    "create_app": "workbench.serving",
    "resolve_model": "workbench.serving",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    module = importlib.import_module(_API[name])
    value = getattr(module, name) if hasattr(module, name) else module  # "plots" is a module
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
