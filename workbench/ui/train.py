"""Tab 3, Train: configure a student run, launch it as a background job, watch its curves, cancel or resume.

The form starts from the demo recipe (:func:`workbench.builtin.demo.form_defaults`): train with the defaults
and it works. Its values become a :class:`~workbench.distill.config.TrainConfig` through the library
(:func:`workbench.distill.forms.config_from_form`, whose messages name the field), and before anything starts
the tab shows what the run would learn from (:func:`~workbench.distill.forms.training_preview`: rows, what was
left out and why, which labels). The equivalent ``workbench train`` command is shown for every setting. Training
runs as a ``train`` job, polled by a ``gr.Timer``; the curves come from the run's own ``metrics.jsonl``.
"""

from __future__ import annotations

import time

import gradio as gr

from workbench.builtin.demo import form_defaults
from workbench.core.errors import ConfigError, WorkbenchError
from workbench.core.events import TrainingState, state_from_dict
from workbench.core.jobs import ACTIVE, cancel_job, job_status, list_jobs, queue_line, read_log, start_job
from workbench.core.store import Store
from workbench.distill.config import config_to_cli
from workbench.distill.estimates import estimate_run
from workbench.distill.forms import config_from_form, form_warnings, label_of, training_preview
from workbench.distill.methods import METHODS
from workbench.distill.number_slots import NUMBER_MODES
from workbench.distill.runfolder import RunFolder
from workbench.distill.runs import check_resumable, list_runs, read_metrics
from workbench.distill.students import list_presets, recipe_for
from workbench.rationales.trainingset import LABEL_SOURCES
from workbench.results import plots
from workbench.ui.common import (
    bind,
    clip,
    edge,
    first,
    fmt_counts,
    fmt_duration,
    fmt_pct,
    info,
    intro,
    md_text,
    progress_html,
    user_error,
)

RUN_HEADERS = ["run", "task", "method", "student", "labels", "status", "steps", "accuracy (test)",
               "teacher (test)", "updated"]
RUN_WIDTHS = ["22%", "12%", "7%", "9%", "7%", "11%", "6%", "9%", "9%", "8%"]
# The form's fields, in the order of the inputs; every one is a TrainConfig field.
FORM_FIELDS = ("student", "method", "label_source", "numbers", "alpha", "fraction", "steps", "batch_size",
               "learning_rate", "seed", "eval_every", "test_limit", "lora_rank", "run")
RECIPE_FIELDS = ("steps", "batch_size", "learning_rate", "eval_every")
HIDDEN = {"show_progress": "hidden"}
LABEL_INFO = "gold: the task's own answers · teacher: the teacher's labels, your edits included"


def form_values(task: str, teacher: str, *values) -> dict:
    return {"task": task, "teacher": teacher or None, **dict(zip(FORM_FIELDS, values))}


def device_line(cfg) -> str:
    """Where this config would train, and in which precision (the library decides: the student matters on a CPU)."""
    from workbench.distill.students import device_info  # torch import: only when the form asks

    info_ = device_info(cfg.bf16, cfg.student)
    return f"{info_['device']} · {'bf16' if info_['bf16'] else 'float32'}"


def preview_md(store: Store, cfg) -> str:
    """What the run would learn from, in words; or why it cannot start."""
    try:
        p = training_preview(store, cfg)
    except WorkbenchError as err:
        return f"⚠ **Cannot train yet:** {md_text(err)}"
    if p.get("to_generate"):
        return (f"**Training set** the {p['to_generate']:,} training examples, answered first by "
                f"{md_text(p['teacher'])} (free and instant) · {p['steps']:,} steps of {p['batch_size']} ≈ "
                f"{p['epochs']} passes over the rows")
    labels = "gold labels" if p["label_source"] == "gold" else f"the teacher's labels ({md_text(p['teacher'])})"
    edited = f", {p['edited']:,} of them edited by you" if p["edited"] else ""
    left = f" · left out: {md_text(fmt_counts(p['dropped']))}" if p["dropped"] else ""
    uses = METHODS[cfg.method].needs_rationale  # a capability, never a method's name
    why = f" and rationales from {md_text(p['teacher'])}" if p["teacher"] and uses else ""
    return (f"**Training set** {p['rows']:,} rows{edited}, with {labels}{why}{left} · {p['steps']:,} steps of "
            f"{p['batch_size']} ≈ {p['epochs']} passes over the rows")


@edge
def on_form(store: Store, task, teacher, *values, calibrate: bool | str = True):
    """Any setting changed: the CLI command, the training-set preview and the time estimate follow (``calibrate``:
    see :func:`~workbench.distill.estimates.estimate_run`; the page asks in the background)."""
    cli, facts, _ = _form_facts(store, task, teacher, *values, calibrate=calibrate)
    return cli, facts


@edge
def on_form_live(store: Store, task, teacher, *values):
    """The page's form: a student not yet measured here is calibrated in the background (a minute for SmolLM2)
    while the form says so, and the estimate is asked again until it is there; the form never waits for it."""
    cli, facts, measuring = _form_facts(store, task, teacher, *values, calibrate="background")
    return cli, facts, gr.Timer(active=measuring)


def _form_facts(store: Store, task, teacher, *values, calibrate: bool | str):
    try:
        cfg = config_from_form(form_values(task, teacher, *values))
    except ConfigError as err:
        return f"# {err}", f"⚠ {md_text(err)}", False
    measuring = False
    try:  # before launch, every time: measured here, or a short calibration of the student (cached)
        est = estimate_run(store, cfg, calibrate=calibrate)
        parts = ", ".join(f"{k} {fmt_duration(v)}" for k, v in est.parts.items() if v)
        measuring = est.source == "none" and calibrate == "background"
        when = (f"⏳ {est.note}" if measuring else f"{est.describe()} for {cfg.resolved().steps:,} steps"
                + (f" ({parts})" if parts else ""))
    except WorkbenchError as err:
        when = f"no estimate: {err}"
    warnings = "".join(f"  \n⚠ **{md_text(label_of(w.field))}:** {md_text(w.message)}"
                       for w in form_warnings(store, cfg))  # allowed, but almost surely a mistake
    return (f"workbench --workspace {store.workspace} " + config_to_cli(cfg).removeprefix("workbench "),
            f"{preview_md(store, cfg)}  \n**Device** {md_text(device_line(cfg))} · **time** {md_text(when)}{warnings}",
            measuring)


def on_student(student: str):
    """A new student: its own recipe for steps, batch size, learning rate and evaluations."""
    recipe = recipe_for((student or "").strip() or "tiny")
    return tuple(getattr(recipe, f) for f in RECIPE_FIELDS)


@edge
def on_train(store: Store, task, teacher, *values):
    cfg = config_from_form(form_values(task, teacher, *values))
    training_preview(store, cfg)  # refuse now, with the reason, what would fail after launch
    job_id = start_job(store, "train", cfg.to_dict())
    info(f"Training started ({job_id}); it keeps running if you close the page.")
    return gr.Timer(active=True)


def latest_train_job(store: Store) -> dict | None:
    return first(list_jobs(store, "train"))


def job_progress(job: dict | None, store: Store | None = None) -> str:
    if job is None:
        return progress_html(0, [("no training yet", "")])
    progress = job.get("progress") or {}
    state = state_from_dict(progress)
    result = progress.get("result") or {}
    stats = [("run", state.run or result.get("run") or "–"), ("step", f"{state.step:,}/{state.steps or 0:,}"),
             ("loss", f"{state.loss:.3f}" if isinstance(state.loss, (int, float)) else "–"),
             ("elapsed", fmt_duration(state.elapsed)), ("ETA", fmt_duration(state.eta))]
    if state.accuracy is not None:
        stats.append(("valid accuracy", fmt_pct(state.accuracy)))
    if result.get("accuracy") is not None:
        stats += [(f"test accuracy ({result.get('n_test')})", fmt_pct(result.get("accuracy"))),
                  ("teacher, same test examples", fmt_pct(result.get("teacher_accuracy")))]
    status = job["status"] + (f": {job['error']}" if job.get("error") else "")
    doing = ""
    if job["status"] in ACTIVE:
        doing = (queue_line(store, job) if store is not None else "queued") if job["status"] == "queued" \
            else state.describe()
    return progress_html(state.fraction, stats, f"{job['id']} {status}" + (f" · {doing}" if doing else ""))


def runs_table(store: Store) -> list[list[str]]:
    rows = []
    for r in reversed(list_runs(store)):
        s = r["summary"] or {}
        status = r["status"] if not s.get("error") else f"{r['status']}: {clip(s['error'], 80)}"  # say why it failed
        rows.append([r["name"], r["task"], r["method"], clip(r["student"], 40), s.get("label_source", ""), status,
                     str(s.get("steps", "")), fmt_pct(s.get("accuracy")), fmt_pct(s.get("teacher_accuracy")),
                     time.strftime("%m-%d %H:%M", time.localtime(r["updated"]))])
    return rows


def on_poll(store: Store, shown: str | None):
    """Timer tick: job progress, log tail, the curves of the run being trained (or the one picked), runs list."""
    job = latest_train_job(store)
    if job is not None and job["status"] in ACTIVE:
        job = job_status(store, job["id"])
    running = job is not None and job["status"] in ACTIVE
    job_run = TrainingState.from_dict((job or {}).get("progress")).run or (job or {}).get("spec", {}).get("resume")
    run = job_run if running and job_run else (shown or job_run)
    events = read_metrics(store, run) if run else []
    fig = plots.loss_curves(events, title=f"Run {run}") if events else plots.empty("no metrics yet")
    names = [r["name"] for r in list_runs(store)]
    return (job_progress(job, store), read_log(store, job["id"], 15) if job else "", fig, runs_table(store),
            gr.update(choices=names, value=run if run in names else None), gr.Timer(active=running),
            gr.Button(interactive=not running), gr.Button(interactive=running))


@edge
def on_cancel(store: Store):
    job = latest_train_job(store)
    if job is not None and job["status"] in ACTIVE:
        cancel_job(store, job["id"])
        info("Cancelling; the run saves a checkpoint and can be resumed.")


@edge
def on_resume(store: Store, run: str | None):
    if not run:
        raise user_error("Pick a stopped run to resume.")
    check_resumable(store, run)
    start_job(store, "train", {"resume": run})
    info(f"Resuming {run} from its last checkpoint.")
    return gr.Timer(active=True)


@edge
def on_load_config(store: Store, run: str | None):
    """Fill the form from an old run's config.json (to repeat it or vary one setting)."""
    if not run:
        raise user_error("Pick a run whose settings to load.")
    cfg = RunFolder.of(store, run).read_meta()["config"]
    defaults = form_defaults(cfg.get("student"))
    values = [cfg.get(k) if cfg.get(k) is not None else defaults.get(k) for k in FORM_FIELDS[:-1]]
    return (*["" if v is None else v for v in values], "")


def on_run_select(evt: gr.SelectData):
    return evt.row_value[0] if evt.row_value else gr.skip()


def student_choices() -> list[tuple[str, str]]:
    """(shown, value) per registered student: pretrained ones say when they cannot be used here, and why."""
    out = []
    for p in list_presets():
        shown = p["name"] if p.get("available", True) else f"{p['name']} (unavailable: {p.get('reason', '')})"
        out.append((shown, p["name"]))
    return out


def render(store: Store, demo: gr.Blocks, sel) -> None:
    """Lay out the tab and wire its events. ``sel``: the Task & teacher tab's selection."""
    defaults = form_defaults()
    intro("Train a small student on the reviewed rationales. `dss` learns label and rationale (weight α on the "
          "label); `standard` learns labels only. Training runs in the background; close the page any time.")
    with gr.Row():
        student = gr.Dropdown(student_choices(), value=defaults["student"], allow_custom_value=True, scale=2,
                              label="Student (preset, pretrained, or a checkpoint folder / hub id)",
                              elem_id="train-student")
        method = gr.Radio(METHODS.names(), value=defaults["method"], label="Method", scale=2, elem_id="train-method",
                          info="standard: labels only · dss: label + rationale · cot: rationale then label · "
                               "kd: the teacher's class probabilities")
        labels = gr.Radio(list(LABEL_SOURCES), value=defaults["label_source"], label="Labels", scale=2,
                          info=LABEL_INFO, elem_id="train-labels")
        numbers = gr.Radio(list(NUMBER_MODES), value=defaults["numbers"], scale=2, elem_id="train-numbers",
                           label="Numbers the student sees",
                           info="slots: N0, N1, … mapped back after generation; auto: slots for equation tasks "
                                "with a from-scratch student")
    with gr.Row():
        alpha = gr.Slider(0, 1, value=defaults["alpha"], step=0.05, label="α (dss: weight of the label loss)")
        fraction = gr.Slider(0.05, 1, value=defaults["fraction"], step=0.05, label="Fraction of the training set")
        steps = gr.Number(defaults["steps"], precision=0, label="Steps", elem_id="train-steps")
        batch = gr.Number(defaults["batch_size"], precision=0, label="Batch size", elem_id="train-batch")
        lr = gr.Number(defaults["learning_rate"], label="Learning rate", elem_id="train-lr")
        seed = gr.Number(defaults["seed"], precision=0, label="Seed")
    with gr.Row():
        eval_every = gr.Number(defaults["eval_every"], precision=0, label="Evaluate every N steps (0: never)",
                               elem_id="train-eval-every")
        # A text box: blank means "all", and gradio's Number would turn blank into 0 on every load.
        test_limit = gr.Textbox("", label="Score on the first N test examples (blank: all)", placeholder="all",
                                elem_id="train-test-limit")
        lora = gr.Number(defaults.get("lora_rank", 0), precision=0, label="LoRA rank (pretrained students; 0: full "
                         "fine-tuning)", elem_id="train-lora")
        run_name = gr.Textbox(label="Run name (optional; default task-method-student-time)")
    facts = gr.Markdown(elem_id="train-facts")
    cli = gr.Code(language="shell", label="Equivalent command (copy it to run from a terminal)", lines=2,
                  interactive=False, elem_id="train-cli")
    with gr.Row():
        train = gr.Button("Train student", variant="primary", elem_id="train-start")
        cancel = gr.Button("Cancel", variant="stop", interactive=False, elem_id="train-cancel")
    progress = gr.HTML(elem_id="train-progress")
    timer = gr.Timer(1.5, active=False)
    with gr.Row():
        with gr.Column(scale=3):
            curves = gr.Plot(label="Loss and eval accuracy", elem_id="train-curves")
        with gr.Column(scale=2):
            log = gr.Code(language=None, label="Log (tail)", lines=14, max_lines=40, wrap_lines=True,  # all in view
                          interactive=False, elem_id="train-log")
    gr.Markdown("### Runs")
    with gr.Row():
        shown = gr.Dropdown([], label="Run shown in the chart", scale=3, elem_id="train-shown")
        resume = gr.Button("Resume this run", size="sm", scale=1)
        load_cfg = gr.Button("Load its settings into the form", size="sm", scale=1)
    runs = gr.Dataframe(headers=RUN_HEADERS, datatype="str", interactive=False, wrap=True, max_height=320,
                        label="Runs in this workspace (click one to show it)", elem_id="train-runs",
                        column_widths=RUN_WIDTHS, elem_classes=["wb-table"])

    form = [student, method, labels, numbers, alpha, fraction, steps, batch, lr, seed, eval_every, test_limit, lora,
            run_name]
    inputs = [sel.task, sel.teacher, *form]
    poll_out = [progress, log, curves, runs, shown, timer, train, cancel]
    poll = bind(on_poll, store)
    est_timer = gr.Timer(3.0, active=False)  # while the student is being calibrated for the estimate
    # One listener, one at a time, run again after the one in flight: no edit is dropped, no old estimate lands last.
    estimating = {"fn": bind(on_form_live, store), "inputs": inputs, "outputs": [cli, facts, est_timer],
                  "trigger_mode": "always_last", "concurrency_limit": 1, "concurrency_id": "train-form",
                  "api_visibility": "private", **HIDDEN}
    gr.on([comp.change for comp in [sel.task, sel.teacher, *form]] + [est_timer.tick], **estimating)
    student.input(on_student, student, [steps, batch, lr, eval_every], api_visibility="private", **HIDDEN)
    train.click(bind(on_train, store), inputs, timer, api_name="train", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    cancel.click(bind(on_cancel, store), None, None, api_visibility="private", **HIDDEN)
    resume.click(bind(on_resume, store), shown, timer, api_name="resume", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    load_cfg.click(bind(on_load_config, store), shown, form, api_visibility="private", **HIDDEN)
    timer.tick(poll, shown, poll_out, api_visibility="private", **HIDDEN)
    runs.select(on_run_select, None, shown, api_visibility="private", **HIDDEN).then(
        poll, shown, poll_out, api_visibility="private", **HIDDEN)
    shown.input(poll, shown, poll_out, api_visibility="private", **HIDDEN)
    demo.load(poll, shown, poll_out, api_visibility="private", **HIDDEN)
    # The form's facts follow the restored task and teacher (on a reload), not the page's defaults.
    gr.on([sel.ready.change], **estimating)
