"""Tab 5, Sweeps: the paper's two figures from the user's own runs — accuracy vs training rows (one line per method,
mean and spread over seeds, the teacher as a reference line) and accuracy vs student size.

A sweep is a saved object of the workspace (:mod:`workbench.distill.sweeps`): its cells run one at a time as one
background job, the figures fill in as cells finish, and reopening the page shows the sweep where it is. The form
says before launch how many cells and steps it holds and, from earlier runs here, how long it will take.
"""

from __future__ import annotations

import gradio as gr

from workbench.core.errors import ConfigError
from workbench.core.jobs import ACTIVE, cancel_job, job_status, read_log
from workbench.core.store import Store
from workbench.distill.methods import METHODS
from workbench.distill.students import list_presets
from workbench.distill.sweeps import (
    SweepConfig,
    estimate_sweep,
    list_sweeps,
    load_sweep,
    start_sweep,
    sweep_job,
    sweep_points,
    sweep_status,
)
from workbench.results import plots
from workbench.ui.common import (
    bind,
    edge,
    fmt_duration,
    fmt_pct,
    info,
    intro,
    md_text,
    progress_html,
    user_error,
)

CELL_HEADERS = ["run", "student", "method", "rows", "seed", "status", "accuracy (test)", "seconds"]
CELL_WIDTHS = ["34%", "12%", "8%", "8%", "6%", "10%", "12%", "10%"]
HIDDEN = {"show_progress": "hidden"}


def _numbers(text: str, kind, label: str) -> tuple:
    try:
        return tuple(kind(x) for x in (text or "").replace(" ", "").split(",") if x)
    except ValueError:
        raise ConfigError(f"{label}: write numbers separated by commas, e.g. 16, 64, 256 (not {text!r})") from None


def _optional(text, kind, label: str):
    text = ("" if text is None else str(text)).strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{label}: {text!r} is not a number (leave it blank for the default)") from None


def form_sweep(task, teacher, methods, sizes, size_kind, seeds, students, steps, epochs, name) -> SweepConfig:
    """The form's values as a checked SweepConfig (a mistake names its field)."""
    if not task:
        raise ConfigError("Task: pick a task in the Task & teacher tab first")
    counts = _numbers(sizes, float if size_kind == "fractions" else int, "Training-set sizes")
    return SweepConfig(task=task, teacher=teacher or None, methods=tuple(methods or ()),
                       rows=counts if size_kind == "rows" else (), fractions=counts if size_kind == "fractions" else (),
                       seeds=_numbers(seeds, int, "Seeds") or (0,), students=tuple(students or ()),
                       steps=_optional(steps, int, "Steps per cell"), epochs=_optional(epochs, float, "Epochs per cell"),
                       name=(name or "").strip() or None)


@edge
def on_estimate(store: Store, *values) -> str:
    try:
        sweep = form_sweep(*values)
        e = estimate_sweep(store, sweep)
    except ConfigError as err:
        return f"⚠ {md_text(err)}"
    when = (f"about {fmt_duration(e['seconds'])}" + (f" plus {e['unknown_cells']} cells with no earlier run to time"
                                                       if e["unknown_cells"] else "")
            if e["seconds"] else "unknown until the first cells have run here")
    return (f"**{e['cells']} runs**, {e['steps']:,} steps in all, one at a time · {when} · the teacher's training "
            f"set has {e['available_rows']:,} rows")


@edge
def on_start(store: Store, *values):
    name, job = start_sweep(store, form_sweep(*values))
    info(f"Sweep {name} started; it keeps running if you close the page.")
    return gr.update(choices=list_sweeps(store), value=name), gr.Timer(active=True)


@edge
def on_resume(store: Store, name: str | None):
    if not name:
        raise user_error("Pick a saved sweep to resume.")
    start_sweep(store, name)
    info(f"Resuming sweep {name}: finished cells are kept.")
    return gr.Timer(active=True)


@edge
def on_cancel(store: Store, name: str | None):
    job = sweep_job(store, name) if name else None
    if job is not None and job["status"] in ACTIVE:
        cancel_job(store, job["id"])
        info("Cancelling: the cell in training saves a checkpoint; the sweep can be resumed.")


def figures(status: dict):
    points = sweep_points(status)
    teacher = status["teacher_accuracy"]
    gap = plots.curve_gap(points, "rows", "training-set sizes")
    data = (plots.empty(f"Training rows vs accuracy: {gap}") if gap else
            plots.rows_vs_accuracy(points, teacher=teacher, title="Training rows vs accuracy (mean, spread over seeds)"))
    gap = plots.curve_gap(points, "params", "student sizes")
    size = plots.empty(f"Student size vs accuracy: {gap}") if gap else plots.size_vs_accuracy(points, teacher=teacher)
    return data, size


def cell_rows(status: dict) -> list[list[str]]:
    return [[c["run"], c["student"], c["method"], f"{c['training_rows'] or c['rows'] or c['fraction']}", str(c["seed"]),
             c["status"], fmt_pct(c["accuracy"]), fmt_duration(c["train_seconds"])] for c in status["cells"]]


def on_poll(store: Store, name: str | None):
    """Timer tick (and page load): the sweep's cells, progress, log and figures."""
    if not name:
        empty = plots.empty("no sweep yet: fill in the form and start one")
        return progress_html(0, [("no sweep yet", "")]), "", [], empty, empty, gr.Timer(active=False)
    load_sweep(store, name)
    status = sweep_status(store, name)
    job = status["job"]
    if job is not None and job["status"] in ACTIVE:
        job = job_status(store, job["id"])
    running = job is not None and job["status"] in ACTIVE
    stats = [("cells done", f"{status['done']}/{status['total']}"),
             ("teacher (test)", fmt_pct(status["teacher_accuracy"]))]
    state = "complete" if status["done"] == status["total"] else (job["status"] if job else "not started")
    head = f"{name} · {state}" + (f": {job['error']}" if job and job.get("error") and not running else "")
    bar = progress_html(status["done"] / max(1, status["total"]), stats, head)
    data, size = figures(status)
    return bar, read_log(store, job["id"], 12) if job else "", cell_rows(status), data, size, gr.Timer(active=running)


def render(store: Store, demo: gr.Blocks, sel) -> None:
    """Lay out the tab and wire its events. ``sel``: the Task & teacher tab's selection (task and teacher)."""
    intro("Does a rationale let a small model learn with less data? Train a grid — methods × training-set sizes × "
          "students × seeds — on the task and teacher of the first tab, and watch the paper's figures fill in. "
          "Runs go one at a time in the background; a saved sweep can be reopened or resumed any time.")
    students = [p["name"] for p in list_presets()]
    with gr.Row():
        methods = gr.CheckboxGroup(METHODS.names(), value=["standard", "dss"], label="Methods", elem_id="sw-methods")
        size_kind = gr.Radio(["rows", "fractions"], value="rows", label="Sizes given as", elem_id="sw-size-kind")
        sizes = gr.Textbox("32, 128, 512", label="Training-set sizes (comma-separated)", elem_id="sw-sizes")
        seeds = gr.Textbox("0, 1", label="Seeds", elem_id="sw-seeds")
    with gr.Row():
        chosen = gr.Dropdown(students, value=["tiny"], multiselect=True, label="Students (sizes)",
                             elem_id="sw-students", allow_custom_value=True)
        steps = gr.Textbox("300", label="Steps per cell (blank: the student's recipe)", elem_id="sw-steps")
        epochs = gr.Textbox("", label="…or epochs per cell (the same passes over the rows in every cell)",
                            elem_id="sw-epochs")
        name = gr.Textbox("", label="Sweep name (optional)", elem_id="sw-name")
    estimate = gr.Markdown(elem_id="sw-estimate")
    with gr.Row():
        start = gr.Button("Start sweep", variant="primary", elem_id="sw-start")
        cancel = gr.Button("Cancel", variant="stop", elem_id="sw-cancel")
    with gr.Row():
        shown = gr.Dropdown(list_sweeps(store), value=(list_sweeps(store) or [None])[0], label="Sweep shown",
                            scale=3, elem_id="sw-shown")
        resume = gr.Button("Resume this sweep", size="sm", scale=1)
    progress = gr.HTML(elem_id="sw-progress")
    with gr.Row():
        data = gr.Plot(label="Training rows vs accuracy", elem_id="sw-data")
        size = gr.Plot(label="Student size vs accuracy", elem_id="sw-size")
    cells = gr.Dataframe(headers=CELL_HEADERS, datatype="str", interactive=False, wrap=True, max_height=360,
                         label="Cells", column_widths=CELL_WIDTHS, elem_classes=["wb-table"], elem_id="sw-cells")
    with gr.Accordion("Job log", open=False):
        log = gr.Code(language=None, lines=8, interactive=False)
    timer = gr.Timer(2.0, active=False)

    form = [sel.task, sel.teacher, methods, sizes, size_kind, seeds, chosen, steps, epochs, name]
    poll = bind(on_poll, store)
    poll_out = [progress, log, cells, data, size, timer]
    for comp in form:
        comp.change(bind(on_estimate, store), form, estimate, api_visibility="private", **HIDDEN)
    start.click(bind(on_start, store), form, [shown, timer], api_name="sweep", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    resume.click(bind(on_resume, store), shown, timer, api_visibility="private", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    cancel.click(bind(on_cancel, store), shown, None, api_visibility="private", **HIDDEN)
    shown.change(poll, shown, poll_out, api_visibility="private", **HIDDEN)
    timer.tick(poll, shown, poll_out, api_visibility="private", **HIDDEN)
    demo.load(lambda cur: gr.update(choices=list_sweeps(store), value=cur or (list_sweeps(store) or [None])[0]),
              shown, shown, api_visibility="private", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN).then(
        bind(on_estimate, store), form, estimate, api_visibility="private", **HIDDEN)
