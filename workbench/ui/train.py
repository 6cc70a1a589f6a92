"""Tab 3, Train: configure a student run, launch it as a background job, watch its curves, cancel or resume.

The form maps one-to-one onto :class:`workbench.distill.config.TrainConfig`; the equivalent ``workbench train`` command
(:func:`workbench.distill.config.config_to_cli`) is shown for every setting. Training runs as a ``train`` job
(:mod:`workbench.distill.runs`), polled by a ``gr.Timer``; the curves come from the run's own ``metrics.jsonl``.
"""

from __future__ import annotations

import time

import gradio as gr

from workbench.builtin.recipe import form_defaults
from workbench.core.errors import ConfigError
from workbench.core.events import TrainingState
from workbench.core.jobs import ACTIVE, cancel_job, job_status, list_jobs, read_log, start_job
from workbench.core.store import Store
from workbench.distill.config import TrainConfig, config_to_cli
from workbench.distill.methods import METHODS
from workbench.distill.numbers import NUMBER_MODES
from workbench.distill.runfolder import RunFolder
from workbench.distill.runs import check_resumable, estimate_seconds, list_runs, read_metrics
from workbench.distill.students import list_presets
from workbench.results import plots
from workbench.ui.common import bind, clip, edge, esc, first, fmt_duration, fmt_pct, intro, progress_html

RUN_HEADERS = ["run", "task", "method", "student", "status", "steps", "accuracy", "teacher acc.", "updated"]
FORM_FIELDS = ("student", "method", "numbers", "alpha", "fraction", "steps", "batch_size", "learning_rate", "seed",
               "eval_every", "test_limit")


def form_config(task: str, teacher: str, student, method, numbers, alpha, fraction, steps, batch_size, lr, seed,
                eval_every, test_limit, run_name) -> TrainConfig:
    """The form's values as a validated TrainConfig (a ConfigError says which field is wrong)."""
    if not task:
        raise ConfigError("pick a task in the Task & teacher tab first")
    return TrainConfig(
        task=task, method=method, student=(student or "").strip() or "tiny", numbers=numbers or "auto",
        teacher=None if method == "standard" else (teacher or None), alpha=float(alpha), fraction=float(fraction),
        steps=int(steps), batch_size=int(batch_size), learning_rate=float(lr), seed=int(seed),
        eval_every=int(eval_every or 0), test_limit=int(test_limit) if test_limit else None,
        run=(run_name or "").strip() or None)


def device_line() -> str:
    from workbench.distill.trainer import device_info  # torch import: only when the tab is built

    info = device_info()
    return f"{info['device']}" + (" · bf16" if info.get("bf16") else "")


@edge
def on_form(store: Store, task, teacher, *values):
    """Any setting changed: the CLI command and the time estimate follow."""
    try:
        cfg = form_config(task, teacher, *values)
    except ConfigError as err:
        return f"# {err}", f"⚠ {esc(err)}"
    est = estimate_seconds(store, cfg)
    when = (f"about {fmt_duration(est)} for {cfg.steps} steps (from earlier runs here)" if est is not None
            else "estimate after the first steps (no earlier run with these settings)")
    return (f"workbench --workspace {store.workspace} " + config_to_cli(cfg).removeprefix("workbench "),
            f"**Device** {esc(device_line())} · **time** {esc(when)}")


@edge
def on_train(store: Store, task, teacher, *values):
    cfg = form_config(task, teacher, *values)
    job_id = start_job(store, "train", cfg.to_dict())
    gr.Info(f"Training started ({job_id}); it keeps running if you close the page.")
    return gr.Timer(active=True)


def latest_train_job(store: Store) -> dict | None:
    jobs = list_jobs(store, "train")
    return first(jobs)


def job_progress(job: dict | None) -> str:
    if job is None:
        return progress_html(0, [("no training yet", "")])
    progress = job.get("progress") or {}
    state = TrainingState.from_dict(progress)
    result = progress.get("result") or {}
    stats = [("run", state.run or result.get("run") or "–"), ("step", f"{state.step}/{state.steps or '?'}"),
             ("loss", f"{state.loss:.3f}" if isinstance(state.loss, (int, float)) else "–"),
             ("elapsed", fmt_duration(state.elapsed)), ("ETA", fmt_duration(state.eta))]
    if state.accuracy is not None:
        stats.append(("valid accuracy", fmt_pct(state.accuracy)))
    if result.get("accuracy") is not None:
        stats += [("test accuracy", fmt_pct(result.get("accuracy"))),
                  ("teacher (test)", fmt_pct(result.get("teacher_accuracy")))]
    status = job["status"] + (f": {job['error']}" if job.get("error") else "")
    return progress_html(state.fraction, stats, f"{job['id']} {status}")


def runs_table(store: Store) -> list[list[str]]:
    rows = []
    for r in reversed(list_runs(store)):
        s = r["summary"] or {}
        status = r["status"] if not s.get("error") else f"{r['status']}: {clip(s['error'], 80)}"  # say why it failed
        rows.append([r["name"], r["task"], r["method"], clip(r["student"], 40), status, str(s.get("steps", "")),
                     fmt_pct(s.get("accuracy")), fmt_pct(s.get("teacher_accuracy")),
                     time.strftime("%m-%d %H:%M", time.localtime(r["updated"]))])
    return rows


def on_poll(store: Store, shown: str | None):
    """Timer tick: job progress, log tail, the curves of the run being trained (or the one picked), runs list."""
    job = latest_train_job(store)
    if job is not None and job["status"] in ACTIVE:
        job = job_status(store, job["id"])
    running = job is not None and job["status"] in ACTIVE
    job_run = (job or {}).get("progress", {}).get("run") or (job or {}).get("spec", {}).get("resume")
    run = job_run if running and job_run else (shown or job_run)
    events = read_metrics(store, run) if run else []
    fig = plots.loss_curves(events, title=f"Run {run}") if events else plots.empty("no metrics yet")
    names = [r["name"] for r in list_runs(store)]
    return (job_progress(job), read_log(store, job["id"], 15) if job else "", fig, runs_table(store),
            gr.update(choices=names, value=run if run in names else None), gr.Timer(active=running),
            gr.Button(interactive=not running), gr.Button(interactive=running))


@edge
def on_cancel(store: Store):
    job = latest_train_job(store)
    if job is not None and job["status"] in ACTIVE:
        cancel_job(store, job["id"])
        gr.Info("Cancelling; the run saves a checkpoint and can be resumed.")


@edge
def on_resume(store: Store, run: str | None):
    if not run:
        raise gr.Error("Pick a stopped run to resume.")
    check_resumable(store, run)
    start_job(store, "train", {"resume": run})
    gr.Info(f"Resuming {run} from its last checkpoint.")
    return gr.Timer(active=True)


@edge
def on_load_config(store: Store, run: str | None):
    """Fill the form from an old run's config.json (to repeat it or vary one setting)."""
    if not run:
        raise gr.Error("Pick a run whose settings to load.")
    cfg = RunFolder.of(store, run).read_meta()["config"]
    defaults = form_defaults(cfg.get("student"))
    return tuple(cfg.get(k) if cfg.get(k) is not None else defaults[k] for k in FORM_FIELDS)


def on_run_select(evt: gr.SelectData):
    return evt.row_value[0] if evt.row_value else gr.skip()


def render(store: Store, demo: gr.Blocks, sel) -> None:
    DEFAULTS = form_defaults()
    """Lay out the tab and wire its events. ``sel``: the Task & teacher tab's selection."""
    intro("Train a small student on the reviewed rationales. `dss` learns label and rationale (weight α on the "
          "label); `standard` learns labels only. Training runs in the background; close the page any time.")
    presets = [p["name"] for p in list_presets()]
    with gr.Row():
        student = gr.Dropdown(presets, value=DEFAULTS["student"], allow_custom_value=True, scale=2,
                              label="Student (preset, or a checkpoint folder / hub id)", elem_id="train-student")
        method = gr.Radio(METHODS.names(), value=DEFAULTS["method"], label="Method", scale=2,
                          elem_id="train-method")
        numbers = gr.Radio(list(NUMBER_MODES), value=DEFAULTS["numbers"], scale=2, elem_id="train-numbers",
                           label="Numbers the student sees",
                           info="slots: N0, N1, … mapped back after generation; auto: slots for equation tasks "
                                "with a preset student")
        alpha = gr.Slider(0, 1, value=DEFAULTS["alpha"], step=0.05, label="α (dss: weight of the label loss)", scale=2)
    with gr.Row():
        fraction = gr.Slider(0.05, 1, value=DEFAULTS["fraction"], step=0.05, label="Fraction of the training set")
        steps = gr.Number(DEFAULTS["steps"], precision=0, minimum=1, label="Steps", elem_id="train-steps")
        batch = gr.Number(DEFAULTS["batch_size"], precision=0, minimum=1, label="Batch size")
        lr = gr.Number(DEFAULTS["learning_rate"], label="Learning rate")
        seed = gr.Number(DEFAULTS["seed"], precision=0, label="Seed")
        eval_every = gr.Number(DEFAULTS["eval_every"], precision=0, minimum=0, label="Evaluate every N steps",
                               elem_id="train-eval-every")
    with gr.Row():
        test_limit = gr.Number(None, precision=0, minimum=1, label="Score on the first N test examples (blank: all)",
                               elem_id="train-test-limit")
        run_name = gr.Textbox(label="Run name (optional; default task-method-student-time)")
    facts = gr.Markdown(elem_id="train-facts")
    cli = gr.Code(language="shell", label="Equivalent command (copy it to run from a terminal)", lines=2,
                  interactive=False, elem_id="train-cli")
    with gr.Row():
        train = gr.Button("Train student", variant="primary", elem_id="train-start")
        cancel = gr.Button("Cancel", variant="stop", interactive=False)
    progress = gr.HTML(elem_id="train-progress")
    timer = gr.Timer(1.5, active=False)
    with gr.Row():
        with gr.Column(scale=3):
            curves = gr.Plot(label="Loss and eval accuracy", elem_id="train-curves")
        with gr.Column(scale=2):
            log = gr.Code(language=None, label="Log (tail)", lines=14, interactive=False)
    gr.Markdown("### Runs")
    with gr.Row():
        shown = gr.Dropdown([], label="Run shown in the chart", scale=3, elem_id="train-shown")
        resume = gr.Button("Resume this run", size="sm", scale=1)
        load_cfg = gr.Button("Load its settings into the form", size="sm", scale=1)
    runs = gr.Dataframe(headers=RUN_HEADERS, datatype="str", interactive=False, wrap=True, max_height=320,
                        label="Runs in this workspace (click one to show it)", elem_id="train-runs")

    form = [student, method, numbers, alpha, fraction, steps, batch, lr, seed, eval_every, test_limit, run_name]
    inputs = [sel.task, sel.teacher, *form]
    poll_out = [progress, log, curves, runs, shown, timer, train, cancel]
    poll = bind(on_poll, store)
    for comp in [sel.task, sel.teacher, *form]:
        comp.change(bind(on_form, store), inputs, [cli, facts], show_progress="hidden", api_visibility="private")
    train.click(bind(on_train, store), inputs, timer, api_name="train").then(poll, shown, poll_out,
                                                                             api_visibility="private")
    cancel.click(bind(on_cancel, store), None, None, api_visibility="private")
    resume.click(bind(on_resume, store), shown, timer, api_name="resume").then(poll, shown, poll_out,
                                                                               api_visibility="private")
    load_cfg.click(bind(on_load_config, store), shown, form[:-1], api_visibility="private")
    timer.tick(poll, shown, poll_out, show_progress="hidden", api_visibility="private")
    runs.select(on_run_select, None, shown, api_visibility="private").then(poll, shown, poll_out,
                                                                           api_visibility="private")
    shown.input(poll, shown, poll_out, api_visibility="private")
    demo.load(poll, shown, poll_out, api_visibility="private").then(bind(on_form, store), inputs, [cli, facts],
                                                                    api_visibility="private")
