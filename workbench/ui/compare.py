"""Tab 4, Compare: the runs of one task against that task's teacher on the same test examples, the paper's figures,
and a live side by side.

Figures come from :func:`workbench.results.compare.compare` per run (a run without a teacher of its own is held
against the task's teacher, :func:`~workbench.results.compare.task_teacher`), drawn by
:mod:`workbench.results.plots`; a curve that needs more runs says which. The "ask both" box sends a new input to
the teacher and to a trained student.
"""

from __future__ import annotations

import gradio as gr

from workbench.core.store import Store
from workbench.distill.runfolder import RunFolder
from workbench.results import plots
from workbench.results.ask import AskBoth, AskedAnswer, ask_both
from workbench.results.compare import FILTERS, compare, filter_rows, task_teacher
from workbench.ui.common import bind, clip, edge, fmt_pct, intro, md_text, user_error

SIDE_HEADERS = ["example", "input", "gold", "teacher label", "teacher rationale", "teacher ✓", "teacher steps",
                "student label", "student rationale", "student ✓", "student steps"]
SIDE_WIDTHS = ["8%", "17%", "7%", "8%", "15%", "6%", "6%", "8%", "13%", "6%", "6%"]
MARK = {True: "✓", False: "✗", None: "–"}
HIDDEN = {"show_progress": "hidden"}
NOT_YET = "Pick one or more finished runs above and click Compare."


def finished_runs(store: Store, task: str | None = None) -> list[str]:
    return [r["name"] for r in reversed(store.list_runs(task)) if r["status"] == "done"]


def side_rows(result: dict, which: str) -> list[list[str]]:
    def note(r, who):
        error = r[f"{who}_parse_error"]
        return clip(f"[parse error] {error}" if error else r[f"{who}_rationale"], 160)

    return [[r["example_id"], clip(r["input"], 140), clip(r["gold"], 40), clip(r["teacher_label"], 40),
             note(r, "teacher"), MARK[r["teacher_correct"]], r.get("teacher_steps", "–"), clip(r["student_label"], 40),
             note(r, "student"), MARK[r["student_correct"]], r.get("student_steps", "–")]
            for r in filter_rows(result["rows"], which)]


def short_names(results: dict[str, dict]) -> dict[str, str]:
    """A run's name in a chart: method · student · training rows (the full names are in the table)."""
    out, seen = {}, {}
    for name, r in results.items():
        label = f"{r['config']['method']} · {r['student']} · {r['train_rows']:,} rows"
        seen[label] = seen.get(label, 0) + 1
        out[name] = label if seen[label] == 1 else f"{label} #{seen[label]}"
    return out


def _student_cell(r: dict) -> str:
    """The student's test accuracy; and on the teacher's examples too when the teacher answered fewer."""
    cell = f"{fmt_pct(r['student_accuracy'])} ({r['n']})"
    if r["n_shared"] and r["n_shared"] < r["n"]:
        cell += f"; {fmt_pct(r['student_accuracy_on_shared'])} on the teacher's {r['n_shared']}"
    return cell


def summary_md(results: dict[str, dict], teacher: str | None) -> str:
    lines = ["| run | method | labels | rows | params | student (test) | teacher (test, same examples) | "
             "student right, teacher wrong | teacher right, student wrong |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cfg = r["config"]
        lines.append(f"| {md_text(name)} | {md_text(cfg['method'])} | {md_text(cfg.get('label_source', 'gold'))} | "
                     f"{r['train_rows']:,} | {r['student_parameters']:,} | {_student_cell(r)} | "
                     f"{fmt_pct(r['teacher_accuracy'])} ({r['n_shared']}) | "
                     f"{r['student_right_teacher_wrong']} | {r['teacher_right_student_wrong']} |")
    notes = {r["note"] for r in results.values() if r.get("note")}
    who = f"Teacher: **{md_text(teacher)}**, on the test split." if teacher else "No teacher answered this task."
    return "\n".join(lines + ["", who] + [f"\n_{md_text(n)}_" for n in notes])


def figures(store: Store, results: dict[str, dict]):
    """Accuracy bars, size vs accuracy, data vs accuracy, and the confusion matrices of the first run."""
    first_name, first = next(iter(results.items()))
    teacher = first["teacher_accuracy"]
    names = short_names(results)
    bars = plots.accuracy_bars({names[n]: r["student_accuracy_on_shared"] if r["n_shared"] else r["student_accuracy"]
                                for n, r in results.items()}, teacher=teacher,
                               methods={names[n]: r["config"]["method"] for n, r in results.items()})
    points = [{"run": n, "method": r["config"]["method"], "params": r["student_parameters"], "rows": r["train_rows"],
               "fraction": r["config"]["fraction"], "accuracy": r["student_accuracy"] or 0.0}
              for n, r in results.items()]
    gap = plots.curve_gap(points, "params", "student sizes")
    size = plots.empty(f"Model size vs accuracy: {gap}") if gap else plots.size_vs_accuracy(points, teacher=teacher)
    gap = plots.curve_gap(points, "rows", "training-set sizes")
    data = plots.empty(f"Training data vs accuracy: {gap}") if gap else plots.rows_vs_accuracy(points, teacher=teacher)
    labels = RunFolder.of(store, first_name).read_meta()["task"].get("labels")
    if not labels:  # confusion matrices only mean something over a label space
        return bars, size, data, gr.Plot(visible=False), gr.Plot(visible=False)
    golds = [r["gold"] for r in first["rows"]]
    cm_s = plots.confusion_matrix(labels, golds, [r["student_label"] for r in first["rows"]],
                                  title=f"Student {names[first_name]}")
    cm_t = plots.confusion_matrix(labels, golds, [r["teacher_label"] for r in first["rows"]], title="Teacher")
    return bars, size, data, gr.Plot(cm_s, visible=True), gr.Plot(cm_t, visible=True)


def run_results(store: Store, runs: list[str]) -> tuple[dict[str, dict], str | None]:
    """compare() for each run, all against the same teacher: the task's, unless a run brought its own."""
    task = {RunFolder.of(store, r).read_meta()["task"]["name"] for r in runs}
    if len(task) > 1:
        raise user_error(f"These runs are of different tasks ({', '.join(sorted(task))}); compare one task at a time.")
    teacher = task_teacher(store, task.pop())
    results = {}
    for name in runs:
        meta = RunFolder.of(store, name).read_meta()
        results[name] = {**compare(store, name, measure_latency=False, teacher=teacher), "config": meta["config"],
                         "train_rows": meta["trainingset"]["rows_used"], "student": meta["config"]["student"]}
    return results, next((r["teacher"] for r in results.values() if r["teacher"]), teacher)


@edge
def on_compare(store: Store, runs: list[str] | None, which: str):
    if not runs:
        raise user_error("Pick one or more finished runs of this task (train one in the Train tab).")
    results, teacher = run_results(store, runs)
    return (summary_md(results, teacher), *figures(store, results), side_rows(results[runs[0]], which or "all"),
            gr.update(choices=list(results), value=runs[0]))


@edge
def on_detail(store: Store, run: str | None, which: str):
    if not run:
        return []
    teacher = task_teacher(store, RunFolder.of(store, run).read_meta()["task"]["name"])
    return side_rows(compare(store, run, measure_latency=False, teacher=teacher), which or "all")


def check_md(a: AskedAnswer) -> str:
    """One side of Ask both, checked: value, each step ✓/✗, gold, and what went wrong (model text shown as text)."""
    parts = [f"**value** {md_text(a.value_text)}", f"**steps** {md_text(a.steps_text())}"]
    if a.correct is not None:
        parts.append(f"**gold** {MARK[a.correct]}")
    if a.problem:
        parts.append(f"⚠ {md_text(a.problem)}")
    return " · ".join(parts)


def ask_outputs(out: AskBoth) -> tuple:
    t, s = out.teacher, out.student
    who = f"Teacher: **{md_text(t.name)}** · student: run **{md_text(s.name)}**  \n" if t.name else ""
    return (t.label or "", t.rationale or "", check_md(t), s.label or "", s.rationale or "", check_md(s),
            who + md_text(out.verdict()))


@edge
def on_ask(store: Store, task_name: str, spec: str, template_text: str, run: str | None, text: str):
    if not text or not text.strip():
        raise user_error("Type a question first.")
    if not run:
        raise user_error("Compare at least one run first; its student answers here.")
    return ask_outputs(ask_both(store, run, text, teacher=spec, template_text=template_text,
                                selected_task=task_name))


def refresh_runs(store: Store, task: str | None, current):
    names = finished_runs(store, task)
    keep = [r for r in (current or []) if r in names]
    return gr.update(choices=names, value=keep or names[:1])


def render(store: Store, demo: gr.Blocks, sel, tab: gr.Tab | None = None) -> None:
    """Lay out the tab and wire its events. ``sel``: the Task & teacher tab's selection; ``tab``: this tab, whose
    selection refreshes the run list (a run may have finished since the page loaded)."""
    intro("How close does each student get to the teacher? The runs of the task chosen in the first tab, on the "
          "same test examples; the first run picked is shown example by example. *Student right, teacher wrong* "
          "counts the examples where the student beats its teacher.")
    with gr.Row(equal_height=True):
        runs = gr.Dropdown([], multiselect=True, label="Runs of this task (finished)", scale=4, elem_id="cmp-runs")
        refresh = gr.Button("↻ Refresh list", size="sm", scale=0)
        go = gr.Button("Compare", variant="primary", scale=1, elem_id="cmp-go")
    summary = gr.Markdown(elem_id="cmp-summary", elem_classes=["wb-md"])
    waiting = plots.empty(NOT_YET)
    with gr.Row():
        bars = gr.Plot(waiting, label="Accuracy on the same test examples", elem_id="cmp-bars")
        size = gr.Plot(waiting, label="Model size vs accuracy", elem_id="cmp-size")
    with gr.Row():
        data = gr.Plot(waiting, label="Training data vs accuracy", elem_id="cmp-data")
        # Only a task with a label space has confusion matrices: shown by Compare when they mean something.
        cm_student = gr.Plot(label="Confusion matrix (student)", visible=False, elem_id="cmp-cm-student")
        cm_teacher = gr.Plot(label="Confusion matrix (teacher)", visible=False, elem_id="cmp-cm-teacher")
    gr.Markdown("### Example by example")
    with gr.Row(equal_height=True):
        detail_run = gr.Dropdown([], label="Run", scale=2)
        which = gr.Radio(list(FILTERS), value="all", label="Show", scale=4, elem_id="cmp-filter")
    gr.Markdown("✓ compares the final answer with gold; *steps* checks every `a op b = c` of the rationale "
                "(equation tasks), so a right answer reached by wrong arithmetic shows up.")
    side = gr.Dataframe(headers=SIDE_HEADERS, datatype="str", interactive=False, wrap=True, max_height=480,
                        label="Teacher and student side by side", elem_id="cmp-table", column_widths=SIDE_WIDTHS,
                        elem_classes=["wb-table"])
    gr.Markdown("### Ask both")
    gr.Markdown("A question of your own, to the teacher and to the run picked above. Each answer is checked: its "
                "value, every step of its rationale (✓/✗), and gold when the question is one of the task's examples.")
    with gr.Row(equal_height=True):
        question = gr.Textbox(label="A new input", scale=4, placeholder="Anne has 4 apples and gives Peter 2 and "
                              "Thomas 1. How many are left?", elem_id="cmp-question")
        ask = gr.Button("Ask teacher and student", scale=1, elem_id="cmp-ask")
    verdict = gr.Markdown(elem_id="cmp-verdict", elem_classes=["wb-md"])
    with gr.Row():
        with gr.Column():
            t_label = gr.Textbox(label="Teacher's label", interactive=False, elem_id="cmp-t-label")
            t_rationale = gr.Textbox(label="Teacher's rationale", interactive=False, lines=4)
            t_note = gr.Markdown(elem_id="cmp-t-check", elem_classes=["wb-md"])
        with gr.Column():
            s_label = gr.Textbox(label="Student's label", interactive=False, elem_id="cmp-s-label")
            s_rationale = gr.Textbox(label="Student's rationale", interactive=False, lines=4)
            s_note = gr.Markdown(elem_id="cmp-s-check", elem_classes=["wb-md"])

    go.click(bind(on_compare, store), [runs, which], [summary, bars, size, data, cm_student, cm_teacher, side,
                                                      detail_run], api_name="compare", **HIDDEN)
    for event in (which.change, detail_run.input):
        event(bind(on_detail, store), [detail_run, which], side, api_visibility="private", **HIDDEN)
    ask_in = [sel.task, sel.teacher, sel.template, detail_run, question]
    ask_out = [t_label, t_rationale, t_note, s_label, s_rationale, s_note, verdict]
    ask.click(bind(on_ask, store), ask_in, ask_out, api_name="ask", **HIDDEN)
    question.submit(bind(on_ask, store), ask_in, ask_out, api_visibility="private", **HIDDEN)
    listing = bind(refresh_runs, store)
    refresh.click(listing, [sel.task, runs], runs, api_visibility="private", **HIDDEN)
    sel.task.change(listing, [sel.task, runs], runs, api_visibility="private", **HIDDEN)
    sel.ready.change(listing, [sel.task, runs], runs, api_visibility="private", **HIDDEN)  # after a (re)load
    if tab is not None:
        tab.select(listing, [sel.task, runs], runs, api_visibility="private", **HIDDEN)
