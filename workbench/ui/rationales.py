"""Tab 2, Rationales: generate teacher answers as a background job, then read, fix, accept or reject them.

Generation runs as a detached job (:func:`workbench.core.jobs.start_job`); a ``gr.Timer`` polls it while it runs,
and the page load looks for a running job, so closing and reopening the page loses nothing. Edits are saved the
moment a box loses focus (or on Enter) through :func:`workbench.rationales.review.edit_generation`; no save button.
"""

from __future__ import annotations

import re
import time

import gradio as gr

from workbench.core.errors import ConfigError, NothingToDoError
from workbench.core.events import GenerationProgress
from workbench.core.jobs import ACTIVE, cancel_job, job_status, list_jobs, read_log, start_job
from workbench.core.store import EDIT_STATUSES, Store
from workbench.data.tasks import load_task
from workbench.rationales.generation import check_generation, teacher_accuracy
from workbench.rationales.review import (
    PAGE_SIZE,
    VIEWS,
    browse_generations,
    current_state,
    edit_generation,
    set_status,
)
from workbench.rationales.teachers.base import teacher_id
from workbench.rationales.trainingset import build_training_set
from workbench.ui.common import bind, clip, edge, fmt_duration, fmt_pct, intro, progress_html

TABLE_HEADERS = ["id", "example", "input", "teacher label", "gold", "right", "status", "edited", "rationale"]
HISTORY_HEADERS = ["edit", "when", "status", "rationale", "label", "author"]
MARK = {True: "✓", False: "✗", None: "–"}


def answered_teachers(store: Store, task_name: str, spec: str | None) -> list[str]:
    """Teachers whose answers can be browsed for this task, the current spec's teacher first."""
    ids = [] if not spec else [teacher_id(spec)]
    if task_name:
        ids += [t["teacher"] for t in store.teachers_of(task_name)]
    return list(dict.fromkeys(ids))


# -- generation job ---------------------------------------------------------------------------------------------
@edge
def on_generate(store: Store, task_name: str, spec: str, template_text: str, n: float, split: str):
    """Start a generation job (checked first, so a request that cannot work is refused now, with the reason)."""
    if n is None or int(n) < 1:
        raise gr.Error("Generate at least one example.")
    request = check_generation(store, task_name, spec, split=split or "train", limit=int(n),
                               template_text=template_text)
    job_id = start_job(store, "generate", request.to_spec())
    gr.Info("Generation started; it keeps running if you close the page.")
    return job_id, gr.Timer(active=True)


def latest_job(store: Store, task_name: str | None) -> dict | None:
    """The newest generation job for this task (running or not): what the progress area shows."""
    for job in list_jobs(store, "generate"):
        if not task_name or job["spec"].get("task") == task_name:
            return job
    return None


def job_view(store: Store, job: dict | None) -> tuple[str, str]:
    """Progress bar + counts, and the log tail, for one generation job."""
    if job is None:
        return progress_html(0, [("no generation yet", "")], ""), ""
    progress = job.get("progress") or {}
    state = GenerationProgress.from_dict(progress)
    result = progress.get("result") or {}
    done, total = state.done, state.total
    acc = result.get("teacher_accuracy")
    if acc is None and job["spec"].get("task"):
        task = load_task(job["spec"]["task"], store)
        acc = teacher_accuracy(store, task, teacher_id(job["spec"]["teacher"]), None, job["spec"].get("split", "train"))
    done_text = f"{done}/{total}" if not result else f"{result.get('generated', 0)} new"
    stats = [("done", done_text), ("parsed", state.parsed), ("parse errors", state.parse_errors),
             ("request errors", state.errors), ("teacher accuracy", fmt_pct(acc)),
             ("elapsed", fmt_duration(state.elapsed)), ("ETA", fmt_duration(state.eta))]
    if result.get("skipped"):
        stats.append(("already done", result["skipped"]))
    status = job["status"] + (f": {job['error']}" if job.get("error") else "")
    fraction = 1.0 if job["status"] == "done" else (done / total if total else 0)
    return progress_html(fraction, stats, f"{job['id']} {status}"), read_log(store, job["id"], 12)


# -- review table -----------------------------------------------------------------------------------------------
def table_rows(page) -> list[list[str]]:
    return [[str(r["generation_id"]), r["example_id"], clip(r["input"], 120), clip(r["resolved_teacher_label"], 40),
             clip(r["gold"], 40), MARK[r["teacher_right"]], r["status"], "yes" if r["edited"] else "",
             clip(r["parse_error"] and f"[parse error] {r['parse_error']}" or r["rationale"], 200)]
            for r in page.rows]


def load_table(store: Store, task_name: str, teacher: str, view: str, search: str, page: int):
    """One page of generations (50 rows), its position, and the per-view counts."""
    if not task_name or not teacher:
        return [], "No task or teacher chosen.", 0
    task = load_task(task_name, store)
    result = browse_generations(store, task, teacher, view=view or "all", search=search or "", page=int(page or 0),
                                page_size=PAGE_SIZE)
    counts = " · ".join(f"{k} {v}" for k, v in result.counts.items())
    where = f"page {result.page + 1} of {result.pages} · {result.total} rows in this view  \n{counts}"
    return table_rows(result), where, result.page


def on_poll(store: Store, task_name: str, teacher: str, view: str, search: str, page: int):
    """Timer tick (and page load): job progress, and the table while rows are arriving."""
    job = latest_job(store, task_name)
    if job is not None and job["status"] in ACTIVE:
        job = job_status(store, job["id"])  # notices a job killed without saying so
    running = job is not None and job["status"] in ACTIVE
    html, log = job_view(store, job)
    rows, where, page = load_table(store, task_name, teacher, view, search, page)
    return (html, log, rows, where, page, gr.Timer(active=running),
            gr.Button(interactive=not running), gr.Button(interactive=running))


@edge
def on_cancel(store: Store, task_name: str):
    job = latest_job(store, task_name)
    if job is not None:
        cancel_job(store, job["id"])
        gr.Info(f"Cancelling {job['id']}; what it generated so far is kept.")


# -- one row: detail and edits ----------------------------------------------------------------------------------
def history_rows(store: Store, generation_id: int) -> list[list[str]]:
    return [[str(e["id"]), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["created"])), e["status"],
             clip(e["rationale"], 120) if e["rationale"] is not None else "(teacher's)",
             e["label"] if e["label"] is not None else "(teacher's)", e["author"]]
            for e in store.edit_history(generation_id)]


def detail(store: Store, generation_id: int):
    s = current_state(store, generation_id)
    header = f"Generation {s['id']}" + (f" · parse error: {s['parse_error']}" if s["parse_error"] else "")
    return (s["id"], s["input"], s["gold"], s["raw"], s["rationale"], s["label"], s["status"],
            history_rows(store, generation_id), header, "")


@edge
def on_select(store: Store, evt: gr.SelectData):
    if not evt.row_value or not str(evt.row_value[0]).isdigit():
        return (gr.skip(),) * 10
    return detail(store, int(evt.row_value[0]))


@edge
def on_edit_text(store: Store, generation_id: float | None, rationale: str, label: str):
    """Save the rationale/label where they differ from the stored state (focus leaving a box is not an edit)."""
    if generation_id is None:
        return gr.skip(), gr.skip(), gr.skip()
    gid = int(generation_id)
    current = current_state(store, gid)
    changed_rationale = rationale is not None and rationale.strip() != current["rationale"]
    changed_label = label is not None and label.strip() != current["label"]
    if not (changed_rationale or changed_label):
        return gr.skip(), gr.skip(), gr.skip()
    edit_generation(store, gid, rationale=rationale if changed_rationale else None,
                    label=label if changed_label else None)
    return current_state(store, gid)["status"], history_rows(store, gid), f"Saved at {time.strftime('%H:%M:%S')}."


@edge
def on_status(store: Store, generation_id: float | None, status: str):
    if generation_id is None:
        raise gr.Error("Select a row in the table first.")
    edit_generation(store, int(generation_id), status=status)
    return history_rows(store, int(generation_id)), f"Marked {status} at {time.strftime('%H:%M:%S')}."


@edge
def on_bulk(store: Store, status: str, task_name: str, teacher: str, view: str, search: str):
    """Accept or reject every row of the current view (all pages), in one transaction."""
    task = load_task(task_name, store)
    rows = browse_generations(store, task, teacher, view=view or "all", search=search or "", page=0,
                              page_size=10**9).rows
    if not rows:
        raise gr.Error("This view is empty; nothing to mark.")
    n = set_status(store, [r["generation_id"] for r in rows], status)
    gr.Info(f"Marked {n} rows {status}.")


@edge
def on_export(store: Store, task_name: str, teacher: str, fmt: str):
    """Export the resolved training set (latest edits applied, rejected rows dropped) to the workspace."""
    if not task_name or not teacher:
        raise NothingToDoError("pick a task and a teacher with generations first")
    task = load_task(task_name, store)
    ts = build_training_set(store, task, teacher)
    suffix = {"JSONL": ".jsonl", "CSV": ".csv"}.get(fmt)
    if suffix is None:
        raise ConfigError("export as JSONL or CSV")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{task.name}-{teacher}")
    out = export_dir(store) / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
    ts.export(out)
    gr.Info(f"Exported {len(ts.rows)} rows; dropped: {ts.dropped or 'none'}.")
    return gr.File(str(out), visible=True)


def export_dir(store: Store):
    folder = store.workspace / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def on_task_or_teacher(store: Store, task_name: str, spec: str):
    choices = answered_teachers(store, task_name, spec)
    return gr.update(choices=choices, value=choices[0] if choices else None)


def render(store: Store, demo: gr.Blocks, sel) -> None:
    """Lay out the tab and wire its events. ``sel`` holds the Task & teacher tab's current selection."""
    intro("Let the teacher answer, then review: select a row to see the raw answer beside the parsed rationale "
          "and label. Edits save as soon as you leave the box; the training set uses the latest edit.")
    with gr.Row():
        n = gr.Number(50, label="Examples to answer", precision=0, minimum=1, scale=1, elem_id="gen-n")
        split = gr.Dropdown(["train", "valid", "test"], value="train", label="Split", scale=1)
        with gr.Column(scale=2):
            generate = gr.Button("Generate rationales", variant="primary", elem_id="gen-start")
            cancel = gr.Button("Cancel", variant="stop", interactive=False, size="sm")
    progress = gr.HTML(elem_id="gen-progress")
    with gr.Accordion("Job log", open=False):
        log = gr.Code(language=None, lines=6, interactive=False)
    timer = gr.Timer(1.0, active=False)
    job_id = gr.Textbox(label="Job", interactive=False, visible=False)

    gr.Markdown("### Review")
    with gr.Row(equal_height=True):
        teacher = gr.Dropdown([], label="Answers of teacher", scale=2, allow_custom_value=True, elem_id="rev-teacher")
        view = gr.Radio(list(VIEWS), value="all", label="Show", scale=4, elem_id="rev-view")
        search = gr.Textbox(label="Search input / rationale", scale=2)
    with gr.Row(equal_height=True):
        prev_page = gr.Button("◀ Previous", size="sm", scale=0)
        next_page = gr.Button("Next ▶", size="sm", scale=0)
        where = gr.Markdown(elem_id="rev-where")
    page = gr.State(0)
    table = gr.Dataframe(headers=TABLE_HEADERS, datatype="str", interactive=False, wrap=True, max_height=520,
                         label="Generations (click a row)", elem_id="rev-table",
                         column_widths=["48px", "110px", "25%", "10%", "8%", "48px", "100px", "60px", "27%"])
    with gr.Row(equal_height=True):
        bulk_accept = gr.Button("Accept all in this view", size="sm", scale=1)
        bulk_reject = gr.Button("Reject all in this view", size="sm", scale=1)
        fmt = gr.Radio(["JSONL", "CSV"], value="JSONL", show_label=False, scale=1, min_width=160)
        export = gr.Button("Export training set", size="sm", scale=1)
    exported = gr.File(label="Exported training set", interactive=False, visible=False, elem_id="rev-export")

    header = gr.Markdown("Select a row to review it.", elem_id="rev-header")
    with gr.Row():
        with gr.Column():
            gen_id = gr.Number(label="Generation", interactive=False, precision=0, elem_id="rev-gen-id")
            inp = gr.Textbox(label="Input", interactive=False, lines=4, max_lines=12)
            gold = gr.Textbox(label="Gold label", interactive=False)
            raw = gr.Textbox(label="Raw teacher text", interactive=False, lines=8, max_lines=20, elem_id="rev-raw")
        with gr.Column():
            rationale = gr.Textbox(label="Rationale (edit; saved when you leave the box)", lines=6, max_lines=20,
                                   interactive=True, elem_id="rev-rationale")
            label = gr.Textbox(label="Label (edit; saved on Enter or when you leave the box)", interactive=True,
                               elem_id="rev-label")
            status = gr.Radio(list(EDIT_STATUSES), label="Review status", elem_id="rev-status")
            saved = gr.Markdown(elem_id="rev-saved")
            history = gr.Dataframe(headers=HISTORY_HEADERS, datatype="str", interactive=False, wrap=True,
                                   label="Edit history", max_height=220)

    table_in = [sel.task, teacher, view, search, page]
    poll_out = [progress, log, table, where, page, timer, generate, cancel]
    refresh = bind(on_poll, store)
    generate.click(bind(on_generate, store), [sel.task, sel.teacher, sel.template, n, split], [job_id, timer],
                   api_name="generate").then(refresh, table_in, poll_out, api_visibility="private")
    cancel.click(bind(on_cancel, store), sel.task, None, api_visibility="private")
    timer.tick(refresh, table_in, poll_out, show_progress="hidden", api_visibility="private")
    for trigger in (sel.task.change, sel.teacher.change):
        trigger(bind(on_task_or_teacher, store), [sel.task, sel.teacher], teacher, api_visibility="private")
    teacher.change(refresh, table_in, poll_out, api_visibility="private")
    view.change(lambda: 0, None, page, api_visibility="private").then(refresh, table_in, poll_out,
                                                                        api_visibility="private")
    search.submit(lambda: 0, None, page, api_visibility="private").then(refresh, table_in, poll_out,
                                                                        api_visibility="private")
    prev_page.click(lambda p: max(0, p - 1), page, page, api_visibility="private").then(
        refresh, table_in, poll_out, api_visibility="private")
    next_page.click(lambda p: p + 1, page, page, api_visibility="private").then(
        refresh, table_in, poll_out, api_visibility="private")

    detail_out = [gen_id, inp, gold, raw, rationale, label, status, history, header, saved]
    table.select(bind(on_select, store), None, detail_out, api_visibility="private")
    save = bind(on_edit_text, store)
    rationale.blur(save, [gen_id, rationale, label], [status, history, saved], api_name="edit")
    for event in (rationale.submit, label.blur, label.submit):
        event(save, [gen_id, rationale, label], [status, history, saved], api_visibility="private")
    status.input(bind(on_status, store), [gen_id, status], [history, saved], api_name="set_status")
    for button, value in ((bulk_accept, "accepted"), (bulk_reject, "rejected")):
        button.click(bind(on_bulk, store, value), [sel.task, teacher, view, search], None,
                     api_visibility="private").then(refresh, table_in, poll_out, api_visibility="private")
    export.click(bind(on_export, store), [sel.task, teacher, fmt], exported, api_name="export")
    # Page (re)load: list the answered teachers, then show any running job and the table.
    demo.load(bind(on_task_or_teacher, store), [sel.task, sel.teacher], teacher,
              api_visibility="private").then(refresh, table_in, poll_out, api_visibility="private")
