"""Tab 5, Sweeps: the paper's claim from the user's own runs — accuracy vs training rows (one line per method, mean
and spread over seeds, the teacher as a reference line), accuracy vs training seconds, accuracy vs student size —
and a verdict per size that says how sure it is.

The form starts from the classroom sweep (:data:`workbench.builtin.demo.CLASSROOM_SWEEP`); its text becomes a
:class:`~workbench.distill.sweeps.SweepConfig` through :func:`workbench.distill.sweep_form.sweep_from_form`, and
before launch it says how long the grid will take (:func:`~workbench.distill.sweeps.estimate_sweep`: measured
here, or a short calibration). What the tab shows of a sweep is a :class:`~workbench.results.sweep_report.
SweepReport`; this module only lays it out. Cells run one at a time as one background job (queued behind any other
heavy job); reopening the page shows the sweep where it is, with the form holding that sweep's own settings.
"""

from __future__ import annotations

import gradio as gr

from workbench.builtin.demo import CLASSROOM_SWEEP
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.core.jobs import ACTIVE, cancel_job
from workbench.core.store import Store
from workbench.data.tasks import list_tasks
from workbench.distill.methods import METHODS
from workbench.distill.students import list_presets
from workbench.distill.sweep_form import FIELDS, form_values, sweep_from_form
from workbench.distill.sweeps import estimate_sweep, list_sweeps, load_sweep, start_sweep, sweep_job
from workbench.results.sweep_report import TIME_PARTS, sweep_report
from workbench.results.verdict import one_seed_caveat
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

CELL_HEADERS = ["run", "student", "method", "rows", "seed", "status", "accuracy (test)", "steps", "load s",
                "train s", "eval s", "score s", "save s"]
CELL_WIDTHS = ["26%", "10%", "7%", "6%", "5%", "9%", "9%", "5%", "5%", "6%", "5%", "5%", "5%"]
HIDDEN = {"show_progress": "hidden"}


def _values(*values) -> dict:
    return dict(zip(FIELDS, values))


@edge
def on_estimate(store: Store, *values):
    """Before launch: cells, steps, the time it will take (a range, and from what), what the seeds can show. A
    student not yet measured on this machine is calibrated in the background; the form asks again until it is."""
    try:
        sweep = sweep_from_form(_values(*values))
        e = estimate_sweep(store, sweep, calibrate="background")
    except WorkbenchError as err:
        return f"⚠ {md_text(err)}", gr.Timer(active=False)
    return estimate_md(e, sweep), gr.Timer(active=e["source"] == "none")


def estimate_md(e: dict, sweep) -> str:
    parts = " · ".join(f"{k} {fmt_duration(v)}" for k, v in e["parts"].items() if v)
    limit = e["test_limit"]
    tests = (f"every cell is scored on the first {limit} test examples (the same ones, so methods compare example "
             "by example; set *Test examples* to change it)" if limit else "every cell is scored on the whole test "
             "split")
    caveat = one_seed_caveat(len(sweep.seeds))
    when = md_text(e["text"]) if e["source"] != "none" else f"⏳ {md_text(e['text'])}"
    return (f"**{e['cells']} runs**, {e['steps']:,} steps in all, one at a time · **{when}**"
            + (f" ({parts})" if parts else "") + f"  \n{tests}; the teacher's training set has "
            f"{e['available_rows']:,} rows" + (f"  \n⚠ {md_text(caveat)}" if caveat else ""))


@edge
def on_start(store: Store, *values):
    name, _ = start_sweep(store, sweep_from_form(_values(*values)))
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
        info("Cancelling: it stops within seconds; the cell in progress can be resumed, done cells are kept.")


def cell_rows(report) -> list[list[str]]:
    return [[c["run"], c["student"], c["method"], f"{c['rows']}", str(c["seed"]), c["status"], fmt_pct(c["accuracy"]),
             str(c["steps"] or ""), *[fmt_duration(c[k]) if c[k] else "" for k in TIME_PARTS]] for c in report.cells]


def verdict_md(report) -> str:
    if not report.verdicts:
        return ("*The verdict appears once both methods have finished a size with the same seed.*"
                if report.status["done"] < report.status["total"] else "*No two methods to compare.*")
    lines = [f"- {md_text(v.sentence)}" for v in report.verdicts]
    if report.caveat:
        lines.append(f"\n⚠ {md_text(report.caveat)}")
    return "**What the sweep shows** (paired bootstrap over seeds and test examples; see About)\n\n" + "\n".join(lines)


def on_poll(store: Store, name: str | None):
    """Timer tick (and page load): the shown sweep's state, verdicts, figures and cells; Start is off while it runs."""
    if not name:
        from workbench.results import plots

        empty = plots.empty("no sweep yet: the form above starts one")
        return (progress_html(0, [("no sweep yet", "")]), "", empty, empty, empty, [], gr.Timer(active=False),
                gr.update(interactive=True))
    try:
        report = sweep_report(store, name)
    except ConfigError as err:  # an unreadable sweep.json: say so, keep the tab alive
        from workbench.results import plots

        broken = plots.empty(str(err))
        return (progress_html(0, [("unreadable", "")], md_text(err)), "", broken, broken, broken, [],
                gr.Timer(active=False), gr.update(interactive=True))
    stats = [("cells done", f"{report.status['done']}/{report.status['total']}"),
             (f"teacher (test, {report.status['test_limit'] or 'all'})", fmt_pct(report.teacher_accuracy))]
    bar = progress_html(report.status["done"] / max(1, report.status["total"]), stats,
                        f"{name} · {report.task} · {report.state_line}")
    rows, seconds, size = report.figures()
    return (bar, verdict_md(report), rows, seconds, size, cell_rows(report), gr.Timer(active=report.running),
            gr.update(interactive=not report.running))


def on_show(store: Store, name: str | None):
    """The shown sweep's own settings in the form (after a reload, or when another sweep is picked)."""
    try:
        values = form_values(load_sweep(store, name)) if name else None
    except ConfigError:
        values = None
    if values is None:
        return [gr.update() for _ in FIELDS]
    return [gr.update(value=values[f]) for f in FIELDS]


def render(store: Store, demo: gr.Blocks, sel, tab: gr.Tab | None = None) -> None:
    """Lay out the tab and wire its events (``sel``, the first tab's selection, is not used: a sweep names its own
    task and teacher). The estimate is made when the tab is opened (``tab``), not on every page load: it may
    calibrate a pretrained student, which only someone about to start a sweep should wait for."""
    intro("Does a rationale let a small model learn with less data? Train a grid — methods × training-set sizes × "
          "students × seeds — and watch the paper's figures fill in, with a verdict per size that says how sure it "
          "is. The form starts from the classroom sweep (SmolLM2-135M on the hard word problems, 3 seeds).")
    start_values = form_values(CLASSROOM_SWEEP)
    students = [p["name"] for p in list_presets()]
    tasks = [t["name"] for t in list_tasks(store)]
    with gr.Row():
        task = gr.Dropdown(tasks, value=start_values["task"], label="Task", elem_id="sw-task",
                           allow_custom_value=True)
        teacher = gr.Textbox(start_values["teacher"], label="Teacher (whose rationales and labels every cell uses)",
                             elem_id="sw-teacher")
        methods = gr.CheckboxGroup(METHODS.names(), value=start_values["methods"], label="Methods",
                                   elem_id="sw-methods")
    with gr.Row():
        size_kind = gr.Radio(["rows", "fractions"], value=start_values["size_kind"], label="Sizes given as",
                             elem_id="sw-size-kind")
        sizes = gr.Textbox(start_values["sizes"], label="Training-set sizes (comma-separated)", elem_id="sw-sizes")
        seeds = gr.Textbox(start_values["seeds"], label="Seeds (3 show whether a difference is a lucky seed's)",
                           elem_id="sw-seeds")
        chosen = gr.Dropdown(students, value=start_values["students"], multiselect=True, label="Students (sizes)",
                             elem_id="sw-students", allow_custom_value=True)
    with gr.Row():
        epochs = gr.Textbox(start_values["epochs"], label="Epochs per cell (the same passes over the rows)",
                            elem_id="sw-epochs")
        steps = gr.Textbox(start_values["steps"], label="…or steps per cell", elem_id="sw-steps")
        test_limit = gr.Textbox(start_values["test_limit"], label="Test examples (blank: 100 for a pretrained "
                                "student, all otherwise)", elem_id="sw-test-limit")
        name = gr.Textbox("", label="Sweep name (optional)", elem_id="sw-name")
    estimate = gr.Markdown(elem_id="sw-estimate")
    with gr.Row():
        start = gr.Button("Start sweep", variant="primary", elem_id="sw-start")
        cancel = gr.Button("Cancel", variant="stop", elem_id="sw-cancel")
    with gr.Row():
        shown = gr.Dropdown(list_sweeps(store), value=(list_sweeps(store) or [None])[0], label="Sweep shown",
                            scale=3, elem_id="sw-shown")
        resume = gr.Button("Resume this sweep", size="sm", scale=1, elem_id="sw-resume")
    progress = gr.HTML(elem_id="sw-progress")
    verdict = gr.Markdown(elem_id="sw-verdict")
    with gr.Row():
        data = gr.Plot(label="Training rows vs accuracy", elem_id="sw-data")
        cost = gr.Plot(label="Training seconds vs accuracy", elem_id="sw-seconds")
    size = gr.Plot(label="Student size vs accuracy", elem_id="sw-size")
    cells = gr.Dataframe(headers=CELL_HEADERS, datatype="str", interactive=False, wrap=True, max_height=360,
                         label="Cells (seconds per phase)", column_widths=CELL_WIDTHS, elem_classes=["wb-table"],
                         elem_id="sw-cells")
    timer = gr.Timer(2.0, active=False)
    est_timer = gr.Timer(3.0, active=False)  # while a student is being calibrated for the estimate

    form = [task, teacher, methods, size_kind, sizes, chosen, seeds, steps, epochs, test_limit, name]
    poll = bind(on_poll, store)
    poll_out = [progress, verdict, data, cost, size, cells, timer, start]
    # A person's edits (not a reload filling the form in) ask for a new estimate. One listener, one at a time, and
    # always run again after the one in flight: edits made while an estimate is computed are never dropped (the
    # default drops them) and an older estimate never lands after a newer one.
    estimating = {"fn": bind(on_estimate, store), "inputs": form, "outputs": [estimate, est_timer],
                  "trigger_mode": "always_last", "concurrency_limit": 1, "concurrency_id": "sw-estimate",
                  "api_visibility": "private", **HIDDEN}
    gr.on([comp.input for comp in form] + [est_timer.tick], **estimating)
    start.click(bind(on_start, store), form, [shown, timer], api_name="sweep", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    resume.click(bind(on_resume, store), shown, timer, api_visibility="private", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    cancel.click(bind(on_cancel, store), shown, None, api_visibility="private", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    shown.input(bind(on_show, store), shown, form, api_visibility="private", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    timer.tick(poll, shown, poll_out, api_visibility="private", **HIDDEN)
    demo.load(lambda cur: gr.update(choices=list_sweeps(store), value=cur or (list_sweeps(store) or [None])[0]),
              shown, shown, api_visibility="private", **HIDDEN).then(
        bind(on_show, store), shown, form, api_visibility="private", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    if tab is not None:
        gr.on([tab.select], **estimating)
