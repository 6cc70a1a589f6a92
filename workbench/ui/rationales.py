"""Tab 2, Rationales: generate teacher answers as a background job, then read, fix, accept or reject them.

Generation runs as a detached job (:func:`workbench.core.jobs.start_job`), checked first by the library
(:func:`~workbench.rationales.generation.check_generation`), so a request that cannot work is refused with its
reason before anything starts. A ``gr.Timer`` polls the job while it runs, and the page load looks for a running
job, so closing and reopening the page loses nothing. Edits are saved the moment a box loses focus (or on Enter)
through :func:`workbench.rationales.review.edit_generation`; every view and count follows the latest edit at once.
"""

from __future__ import annotations

import time

import gradio as gr

from workbench.core.errors import ConfigError, NothingToDoError, WorkbenchError
from workbench.core.events import GenerationProgress
from workbench.core.jobs import ACTIVE, cancel_job, job_status, list_jobs, read_log, start_job
from workbench.core.store import EDIT_STATUSES, Store
from workbench.data.tasks import load_task
from workbench.rationales.generation import check_generation, plan_request, teacher_accuracy
from workbench.rationales.generation import default_limit as generation_default_limit
from workbench.rationales.review import (
    PAGE_SIZE,
    VIEWS,
    browse_generations,
    current_state,
    edit_generation,
    set_status,
)
from workbench.rationales.teachers.base import teacher_id
from workbench.rationales.trainingset import LABEL_SOURCES, build_training_set
from workbench.ui.common import (
    bind,
    clip,
    edge,
    fmt_counts,
    fmt_duration,
    fmt_pct,
    info,
    intro,
    md_text,
    progress_html,
    user_error,
)

TABLE_HEADERS = ["id", "example", "input", "teacher label", "gold", "right", "steps", "status", "edited", "rationale"]
TABLE_WIDTHS = ["5%", "9%", "20%", "9%", "7%", "5%", "6%", "10%", "6%", "23%"]  # status: "unreviewed" whole
HISTORY_HEADERS = ["edit", "when", "status", "rationale", "label", "author"]
MARK = {True: "✓", False: "✗", None: "–"}
HIDDEN = {"show_progress": "hidden"}
LOG_LINES = 8  # the job log shows its last lines, all of them in view (a taller tail was cut at the bottom)


def answered_teachers(store: Store, task_name: str, spec: str | None) -> list[str]:
    """Teachers whose answers can be browsed for this task, the current spec's teacher first."""
    ids = [] if not spec else [teacher_id(spec)]
    if task_name:
        ids += [t["teacher"] for t in store.teachers_of(task_name)]
    return list(dict.fromkeys(ids))


def _limit(text) -> int | None:
    """The "examples to answer" box: blank means the whole split; otherwise a whole number of at least 1."""
    text = ("" if text is None else str(text)).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"Examples to answer: {text!r} is not a number (leave it blank for the whole split)") from None
    if value != int(value) or value < 1:
        raise ConfigError(f"Examples to answer: must be a whole number of at least 1, or blank (not {text})")
    return int(value)


# -- generation job ---------------------------------------------------------------------------------------------
@edge
def on_plan(store: Store, task_name: str, spec: str, n, split: str, template_text: str | None = None,
            rationalize: bool = False) -> str:
    """What a click on Generate would send (the library's plan, the one the job runs), or why it cannot start."""
    if not task_name or not spec:
        return ""
    try:
        request = check_generation(store, task_name, spec, split=split or "train", limit=_limit(n),
                                   template_text=template_text, rationalize=bool(rationalize))
        return md_text(plan_request(store, request).sentence())
    except WorkbenchError as err:  # a spec still being typed, a teacher that cannot generate: say why
        return f"⚠ {md_text(err)}"


def default_limit(spec: str) -> str:
    """The "examples to answer" box for a teacher: the library's default (blank: the whole split)."""
    limit = generation_default_limit(spec)
    return "" if limit is None else str(limit)


@edge
def on_generate(store: Store, task_name: str, spec: str, template_text: str, n, split: str,
                rationalize: bool = False):
    """Start a generation job (checked first, so a request that cannot work is refused now, with the reason)."""
    request = check_generation(store, task_name, spec, split=split or "train", limit=_limit(n),
                               template_text=template_text, rationalize=bool(rationalize))
    job_id = start_job(store, "generate", request.to_spec())
    info("Generation started; it keeps running if you close the page.")
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
    split = job["spec"].get("split", "train")
    acc = result.get("teacher_accuracy")
    if acc is None and job["spec"].get("task"):
        task = load_task(job["spec"]["task"], store)
        acc = teacher_accuracy(store, task, teacher_id(job["spec"]["teacher"]), None, split)
    done_text = f"{state.done}/{state.total}" if not result else f"{result.get('generated', 0)} new"
    stats = [("done", done_text)]
    if state.phase and job["status"] in ACTIVE:  # the batch in flight: prompts sent, then tokens generated
        stats.append(("now", state.phase))
    stats += [("parsed", state.parsed), ("parse errors", state.parse_errors),
              ("request errors", state.errors), (f"teacher accuracy ({split})", fmt_pct(acc)),
              ("elapsed", fmt_duration(state.elapsed)), ("ETA", fmt_duration(state.eta))]
    if result.get("skipped"):
        stats.append(("already done", result["skipped"]))
    status = job["status"] + (f": {job['error']}" if job.get("error") else "")
    fraction = 1.0 if job["status"] == "done" else state.fraction
    return progress_html(fraction, stats, f"{job['id']} {status}"), read_log(store, job["id"], LOG_LINES)


# -- review table -----------------------------------------------------------------------------------------------
def table_rows(page) -> list[list[str]]:
    return [[str(r["generation_id"]), r["example_id"], clip(r["input"], 120), clip(r["resolved_teacher_label"], 40),
             clip(r["gold"], 40), MARK[r["teacher_right"]], r["steps"].summary(), r["status"],
             "yes" if r["edited"] else "",
             clip(r["resolved_parse_error"] and f"[parse error] {r['resolved_parse_error']}" or r["rationale"], 200)]
            for r in page.rows]


def load_table(store: Store, task_name: str, teacher: str, view: str, search: str, page: int):
    """One page of generations (50 rows), its position, and the per-view counts (as the latest edits say)."""
    if not task_name or not teacher:
        return [], "No task or teacher chosen.", 0
    task = load_task(task_name, store)
    result = browse_generations(store, task, teacher, view=view or "all", search=search or "", page=int(page or 0),
                                page_size=PAGE_SIZE)
    counts = " · ".join(f"{k} {v:,}" for k, v in result.counts.items())
    where = (f"page {result.page + 1} of {result.pages} · {result.total:,} rows in this view  \n{counts}  \n"
             "The ✓ column checks the label against gold; *steps* checks each `a op b = c` of the rationale.")
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
        info(f"Cancelling {job['id']}; what it generated so far is kept.")


# -- one row: detail and edits ----------------------------------------------------------------------------------
def history_rows(store: Store, generation_id: int) -> list[list[str]]:
    return [[str(e["id"]), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["created"])), e["status"],
             clip(e["rationale"], 120) if e["rationale"] is not None else "(teacher's)",
             e["label"] if e["label"] is not None else "(teacher's)", e["author"]]
            for e in store.edit_history(generation_id)]


def header_md(s: dict) -> str:
    """The selected row's header: the parse error as it stands now (a fixed label clears it), the steps check,
    and how the answer was generated (rationalization: the teacher was shown the gold answer)."""
    parts = [f"**Generation {s['id']}** · {md_text(s['status'])}"]
    if s["parse_error"]:
        parts.append(f"parse error: {md_text(s['parse_error'])}")
    elif s["teacher_parse_error"]:
        parts.append(f"the teacher's parse error ({md_text(s['teacher_parse_error'])}) is fixed by your label")
    if s["steps"].steps:
        wrong = "; ".join(s["steps"].wrong)
        parts.append(f"steps {s['steps'].summary()}" + (f" (wrong: {md_text(wrong)})" if wrong else ""))
    if s.get("rationalized"):
        parts.append("rationalization: the teacher was shown the gold answer")
    return " · ".join(parts)


def detail(store: Store, generation_id: int):
    s = current_state(store, generation_id)
    return (s["id"], s["input"], s["gold"], s["raw"], s["rationale"], s["label"], s["status"],
            history_rows(store, generation_id), header_md(s), "")


@edge
def on_select(store: Store, evt: gr.SelectData):
    if not evt.row_value or not str(evt.row_value[0]).isdigit():
        return (gr.skip(),) * 10
    return detail(store, int(evt.row_value[0]))


@edge
def on_edit_text(store: Store, generation_id: float | None, rationale: str, label: str):
    """Save the rationale/label where they differ from the stored state (focus leaving a box is not an edit)."""
    if generation_id is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    gid = int(generation_id)
    current = current_state(store, gid)
    changed_rationale = rationale is not None and rationale.strip() != current["rationale"]
    changed_label = label is not None and label.strip() != current["label"]
    if not (changed_rationale or changed_label):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    before = current["status"]
    out = edit_generation(store, gid, rationale=rationale if changed_rationale else None,
                          label=label if changed_label else None)
    note = " The row is now marked accepted: editing it counts as reviewing it." if out["status"] != before else ""
    state = current_state(store, gid)
    return state["status"], history_rows(store, gid), f"Saved at {time.strftime('%H:%M:%S')}.{note}", header_md(state)


@edge
def on_status(store: Store, generation_id: float | None, status: str):
    if generation_id is None:
        raise user_error("Select a row in the table first.")
    edit_generation(store, int(generation_id), status=status)
    return (history_rows(store, int(generation_id)), f"Marked {status} at {time.strftime('%H:%M:%S')}.",
            header_md(current_state(store, int(generation_id))))


def _view_rows(store: Store, task_name: str, teacher: str, view: str, search: str) -> list[dict]:
    task = load_task(task_name, store)
    return browse_generations(store, task, teacher, view=view or "all", search=search or "", page=0,
                              page_size=10**9).rows


@edge
def on_bulk_ask(store: Store, status: str, task_name: str, teacher: str, view: str, search: str):
    """First click of a bulk action: say how many rows it would change, and ask."""
    rows = _view_rows(store, task_name, teacher, view, search)
    if not rows:
        raise user_error("This view is empty; nothing to mark.")
    verb = "Accept" if status == "accepted" else "Reject"
    question = (f"{verb} all **{len(rows):,}** rows of the view *{md_text(view)}*"
                + (f" matching {md_text(search)}" if search else "") + "?")
    return status, gr.update(value=question, visible=True), gr.update(visible=True), gr.update(visible=True)


@edge
def on_bulk_confirm(store: Store, status: str | None, task_name: str, teacher: str, view: str, search: str):
    """Second click: mark every row of the current view (all pages), in one transaction."""
    if status:
        rows = _view_rows(store, task_name, teacher, view, search)
        n = set_status(store, [r["generation_id"] for r in rows], status)
        info(f"Marked {n:,} rows {status}.")
    return None, gr.update(visible=False), gr.update(visible=False), gr.update(visible=False)


@edge
def on_export(store: Store, task_name: str, teacher: str, fmt: str, label_source: str):
    """Export the resolved training set (latest edits applied, rejected rows dropped) to the workspace."""
    if not task_name or not teacher:
        raise NothingToDoError("pick a task and a teacher with generations first")
    task = load_task(task_name, store)
    ts = build_training_set(store, task, teacher, label_source=label_source or "gold")
    out = ts.export(ts.default_path(store, fmt or ""))
    info(f"Exported {len(ts.rows):,} rows with {'gold' if ts.label_source == 'gold' else 'the teacher’s'} labels; "
         f"left out: {fmt_counts(ts.dropped)}.")
    return gr.File(str(out), visible=True)




def on_task_or_teacher(store: Store, task_name: str, spec: str):
    choices = answered_teachers(store, task_name, spec)
    return gr.update(choices=choices, value=choices[0] if choices else None)


def render(store: Store, demo: gr.Blocks, sel) -> None:
    """Lay out the tab and wire its events. ``sel`` holds the Task & teacher tab's current selection."""
    intro("Let the teacher answer, then review: select a row to see the raw answer beside the parsed rationale "
          "and label. Edits save as soon as you leave the box; the training set uses the latest edit.")
    with gr.Row():
        n = gr.Textbox("", label="Examples to answer (blank: the whole split)", placeholder="all", scale=1,
                       elem_id="gen-n")
        split = gr.Dropdown(["train", "valid", "test"], value="train", label="Split", scale=1, elem_id="gen-split")
        with gr.Column(scale=2):
            generate = gr.Button("Generate rationales", variant="primary", elem_id="gen-start")
            cancel = gr.Button("Cancel", variant="stop", interactive=False, size="sm", elem_id="gen-cancel")
    rationalize = gr.Checkbox(False, label="Rationalization: show the teacher the gold answer and ask it to explain "
                              "it (helps a weak teacher; answers are kept apart and marked in review)",
                              elem_id="gen-rationalize")
    plan = gr.Markdown(elem_id="gen-plan")
    progress = gr.HTML(elem_id="gen-progress")
    with gr.Accordion("Job log", open=False):
        log = gr.Code(language=None, lines=LOG_LINES, max_lines=3 * LOG_LINES, interactive=False, wrap_lines=True,
                      elem_id="gen-log")
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
                         label="Generations (click a row)", elem_id="rev-table", column_widths=TABLE_WIDTHS,
                         elem_classes=["wb-table"])
    with gr.Row(equal_height=True):
        bulk_accept = gr.Button("Accept all in this view", size="sm", scale=1, elem_id="rev-bulk-accept")
        bulk_reject = gr.Button("Reject all in this view", size="sm", scale=1, elem_id="rev-bulk-reject")
        labels = gr.Radio(list(LABEL_SOURCES), value="gold", label="Labels in the export", scale=1, min_width=160,
                          info="gold: the task's answers; teacher: the teacher's, with your edits")
        fmt = gr.Radio(["JSONL", "CSV"], value="JSONL", label="Export format", scale=1, min_width=160,
                       elem_id="rev-format")
        export = gr.Button("Export training set", size="sm", scale=1)
    pending = gr.State(None)
    with gr.Row(equal_height=True):
        confirm_text = gr.Markdown(visible=False, elem_id="rev-confirm-text")
        confirm_yes = gr.Button("Yes, change them", size="sm", variant="stop", visible=False, elem_id="rev-confirm")
        confirm_no = gr.Button("No", size="sm", visible=False)
    exported = gr.File(label="Exported training set", interactive=False, visible=False, elem_id="rev-export")

    header = gr.Markdown("Select a row to review it.", elem_id="rev-header")
    with gr.Row():
        with gr.Column():
            gen_id = gr.Number(label="Generation", interactive=False, precision=0, visible=False, elem_id="rev-gen-id")
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
                                   label="Edit history", max_height=220, elem_classes=["wb-table"])

    table_in = [sel.task, teacher, view, search, page]
    poll_out = [progress, log, table, where, page, timer, generate, cancel]
    refresh = bind(on_poll, store)
    plan_in = [sel.task, sel.teacher, n, split, sel.template, rationalize]
    generate.click(bind(on_generate, store), [sel.task, sel.teacher, sel.template, n, split, rationalize],
                   [job_id, timer],
                   api_name="generate", **HIDDEN).then(refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    cancel.click(bind(on_cancel, store), sel.task, None, api_visibility="private", **HIDDEN)
    timer.tick(refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    # Task or teacher changed (also by another tab): the answered teachers, the table and the plan follow at once.
    # Chained on the trigger itself: the dropdown's own .change does not fire when its value stays the same.
    for trigger in (sel.task.change, sel.teacher.change):
        trigger(bind(on_task_or_teacher, store), [sel.task, sel.teacher], teacher, api_visibility="private",
                **HIDDEN).then(refresh, table_in, poll_out, api_visibility="private", **HIDDEN).then(
            bind(on_plan, store), plan_in, plan, api_visibility="private", **HIDDEN)
    sel.teacher.change(default_limit, sel.teacher, n, api_visibility="private", **HIDDEN).then(
        bind(on_plan, store), plan_in, plan, api_visibility="private", **HIDDEN)
    for trigger in (n.blur, n.submit, split.change, rationalize.change, sel.template.blur):
        trigger(bind(on_plan, store), plan_in, plan, api_visibility="private", **HIDDEN)
    teacher.input(refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    view.change(lambda: 0, None, page, api_visibility="private", **HIDDEN).then(
        refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    search.submit(lambda: 0, None, page, api_visibility="private", **HIDDEN).then(
        refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    prev_page.click(lambda p: max(0, p - 1), page, page, api_visibility="private", **HIDDEN).then(
        refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    next_page.click(lambda p: p + 1, page, page, api_visibility="private", **HIDDEN).then(
        refresh, table_in, poll_out, api_visibility="private", **HIDDEN)

    detail_out = [gen_id, inp, gold, raw, rationale, label, status, history, header, saved]
    table.select(bind(on_select, store), None, detail_out, api_visibility="private", **HIDDEN)
    save = bind(on_edit_text, store)
    edit_out = [status, history, saved, header]
    rationale.blur(save, [gen_id, rationale, label], edit_out, api_name="edit", **HIDDEN).then(
        refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    for event in (rationale.submit, label.blur, label.submit):
        event(save, [gen_id, rationale, label], edit_out, api_visibility="private", **HIDDEN).then(
            refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    status.input(bind(on_status, store), [gen_id, status], [history, saved, header], api_name="set_status",
                 **HIDDEN).then(refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    view_in = [sel.task, teacher, view, search]
    confirm_out = [pending, confirm_text, confirm_yes, confirm_no]
    for button, value in ((bulk_accept, "accepted"), (bulk_reject, "rejected")):
        button.click(bind(on_bulk_ask, store, value), view_in, confirm_out, api_visibility="private", **HIDDEN)
    confirm_yes.click(bind(on_bulk_confirm, store), [pending, *view_in], confirm_out, api_visibility="private",
                      **HIDDEN).then(refresh, table_in, poll_out, api_visibility="private", **HIDDEN)
    confirm_no.click(lambda: (None, gr.update(visible=False), gr.update(visible=False), gr.update(visible=False)),
                     None, confirm_out, api_visibility="private", **HIDDEN)
    export.click(bind(on_export, store), [sel.task, teacher, fmt, labels], exported, api_name="export", **HIDDEN)
    # Page (re)load, once the selection is restored: the answered teachers, any running job, the table, the plan.
    sel.ready.change(bind(on_task_or_teacher, store), [sel.task, sel.teacher], teacher, api_visibility="private",
                     **HIDDEN).then(refresh, table_in, poll_out, api_visibility="private", **HIDDEN).then(
        bind(on_plan, store), plan_in, plan, api_visibility="private", **HIDDEN)
