"""Tab 4, Compare: teacher vs students on the same test examples, the paper's figures, and a live side by side.

Figures come from :func:`workbench.results.compare.compare` per run and the run folders' configs, drawn by
:mod:`workbench.results.plots`. The "ask both" box sends a new input to the teacher and to a trained student.
"""

from __future__ import annotations

import gradio as gr

from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.predict import RunCache
from workbench.distill.runfolder import RunFolder
from workbench.rationales.generation import answer_one
from workbench.rationales.teachers import get_teacher
from workbench.results import plots
from workbench.results.compare import FILTERS, compare, filter_rows
from workbench.ui.common import bind, clip, edge, esc, fmt_pct, intro

SIDE_HEADERS = ["example", "input", "gold", "teacher label", "teacher rationale", "teacher ✓", "student label",
                "student rationale", "student ✓"]
MARK = {True: "✓", False: "✗", None: "–"}
RUNS = RunCache(size=2)  # the last loaded students, for the "ask both" box


def finished_runs(store: Store) -> list[str]:
    return [r["name"] for r in reversed(store.list_runs()) if r["status"] == "done"]


def side_rows(result: dict, which: str) -> list[list[str]]:
    return [[r["example_id"], clip(r["input"], 140), clip(r["gold"], 40), clip(r["teacher_label"], 40),
             clip(r["teacher_parse_error"] and f"[parse error] {r['teacher_parse_error']}" or r["teacher_rationale"], 160),
             MARK[r["teacher_correct"]], clip(r["student_label"], 40), clip(r["student_rationale"], 160),
             MARK[r["student_correct"]]] for r in filter_rows(result["rows"], which)]


def summary_md(results: dict[str, dict]) -> str:
    lines = ["| run | method | fraction | params | student | teacher (same examples) | student wins | teacher wins |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cfg = r["config"]
        lines.append(f"| {esc(name)} | {esc(cfg['method'])} | {cfg['fraction']:g} | {r['student_parameters']:,} | "
                     f"{fmt_pct(r['student_accuracy'])} | {fmt_pct(r['teacher_accuracy'])} | "
                     f"{r['student_right_teacher_wrong']} | {r['teacher_right_student_wrong']} |")
    notes = {r["note"] for r in results.values() if r.get("note")}
    return "\n".join(lines + [f"\n_{esc(n)}_" for n in notes])


def figures(store: Store, results: dict[str, dict]):
    """Accuracy bars, size vs accuracy, fraction vs accuracy, and the confusion matrices of the first run."""
    first_name, first = next(iter(results.items()))
    teacher = first["teacher_accuracy"]
    bars = plots.accuracy_bars({n: r["student_accuracy_on_shared"] if r["n_shared"] else r["student_accuracy"]
                                for n, r in results.items()}, teacher=teacher)
    points = [{"run": n, "method": r["config"]["method"], "params": r["student_parameters"],
               "fraction": r["config"]["fraction"], "accuracy": r["student_accuracy"] or 0.0}
              for n, r in results.items()]
    size = plots.size_vs_accuracy(points, teacher=teacher)
    frac = plots.fraction_vs_accuracy(points, teacher=teacher)
    labels = RunFolder.of(store, first_name).read_meta()["task"].get("labels")
    if not labels:  # confusion matrices only mean something over a label space
        return bars, size, frac, gr.Plot(visible=False), gr.Plot(visible=False)
    golds = [r["gold"] for r in first["rows"]]
    cm_s = plots.confusion_matrix(labels, golds, [r["student_label"] for r in first["rows"]],
                                  title=f"Student {first_name}")
    cm_t = plots.confusion_matrix(labels, golds, [r["teacher_label"] for r in first["rows"]], title="Teacher")
    return bars, size, frac, gr.Plot(cm_s, visible=True), gr.Plot(cm_t, visible=True)


@edge
def on_compare(store: Store, runs: list[str] | None, which: str):
    if not runs:
        raise gr.Error("Pick one or more finished runs (train one in the Train tab).")
    results = {}
    for name in runs:
        results[name] = {**compare(store, name, measure_latency=False), "config": RunFolder.of(store, name).read_meta()["config"]}
    first = results[runs[0]]
    return (summary_md(results), *figures(store, results), side_rows(first, which or "all"),
            gr.update(choices=list(results), value=runs[0]))


@edge
def on_detail(store: Store, run: str | None, which: str):
    if not run:
        return []
    return side_rows(compare(store, run, measure_latency=False), which or "all")


def ask_teacher(store: Store, task_name: str, spec: str, template_text: str, text: str) -> dict:
    """The library's :func:`answer_one`, shaped for the three answer boxes."""
    task = load_task(task_name, store)
    template = task.template()
    if template_text and template_text != template.text:
        template = template.with_text(template_text)
    teacher = get_teacher(spec, store=store)
    try:
        a = answer_one(store, task, teacher, text, template)
    finally:
        teacher.close()
    if a["error"]:
        return {"label": "", "rationale": "", "note": f"the teacher could not answer: {a['error']}"}
    return {"label": a["label"] or "", "rationale": a["rationale"] or "",
            "note": f"parse error: {a['parse_error']}" if a["parse_error"] else ""}


@edge
def on_ask(store: Store, task_name: str, spec: str, template_text: str, run: str | None, text: str):
    if not text or not text.strip():
        raise gr.Error("Type a question first.")
    if not run:
        raise gr.Error("Compare at least one run first; its student answers here.")
    student = RUNS.get(store, run).predict([text.strip()], rationale=True)[0]
    meta_task = RunFolder.of(store, run).read_meta()["task"]["name"]
    teacher = ask_teacher(store, meta_task or task_name, spec, template_text, text.strip())
    return (teacher["label"], teacher["rationale"], teacher["note"], student["label"] or "",
            student.get("rationale") or "", f"parse error: {student['parse_error']}" if student.get("parse_error")
            else "")


def refresh_runs(store: Store, current):
    names = finished_runs(store)
    keep = [r for r in (current or []) if r in names]
    return gr.update(choices=names, value=keep or names[:1])


def render(store: Store, demo: gr.Blocks, sel, tab: gr.Tab | None = None) -> None:
    """Lay out the tab and wire its events. ``sel``: the Task & teacher tab's selection; ``tab``: this tab, whose
    selection refreshes the run list (a run may have finished since the page loaded)."""
    intro("How close does the student get to its teacher? Pick runs to compare on the same test examples; the "
          "first run picked is shown example by example.")
    with gr.Row(equal_height=True):
        runs = gr.Dropdown([], multiselect=True, label="Runs (finished)", scale=4, elem_id="cmp-runs")
        refresh = gr.Button("↻ Refresh list", size="sm", scale=0)
        go = gr.Button("Compare", variant="primary", scale=1, elem_id="cmp-go")
    summary = gr.Markdown(elem_id="cmp-summary")
    with gr.Row():
        bars = gr.Plot(label="Accuracy on the same test examples", elem_id="cmp-bars")
        size = gr.Plot(label="Model size vs accuracy")
    with gr.Row():
        frac = gr.Plot(label="Training data vs accuracy")
        cm_student = gr.Plot(label="Confusion matrix (student)")
        cm_teacher = gr.Plot(label="Confusion matrix (teacher)")
    gr.Markdown("### Example by example")
    with gr.Row(equal_height=True):
        detail_run = gr.Dropdown([], label="Run", scale=2)
        which = gr.Radio(list(FILTERS), value="all", label="Show", scale=4, elem_id="cmp-filter")
    side = gr.Dataframe(headers=SIDE_HEADERS, datatype="str", interactive=False, wrap=True, max_height=480,
                        label="Teacher and student side by side", elem_id="cmp-table",
                        column_widths=["100px", "22%", "7%", "8%", "20%", "60px", "8%", "20%", "60px"])
    gr.Markdown("### Ask both")
    with gr.Row(equal_height=True):
        question = gr.Textbox(label="A new input", scale=4, placeholder="Anne has 4 apples and gives Peter 2 and "
                              "Thomas 1. How many are left?", elem_id="cmp-question")
        ask = gr.Button("Ask teacher and student", scale=1)
    with gr.Row():
        with gr.Column():
            t_label = gr.Textbox(label="Teacher's label", interactive=False)
            t_rationale = gr.Textbox(label="Teacher's rationale", interactive=False, lines=4)
            t_note = gr.Textbox(label="Teacher note", interactive=False, max_lines=2)
        with gr.Column():
            s_label = gr.Textbox(label="Student's label", interactive=False)
            s_rationale = gr.Textbox(label="Student's rationale", interactive=False, lines=4)
            s_note = gr.Textbox(label="Student note", interactive=False, max_lines=2)

    go.click(bind(on_compare, store), [runs, which], [summary, bars, size, frac, cm_student, cm_teacher, side,
                                                      detail_run], api_name="compare")
    for event in (which.change, detail_run.input):
        event(bind(on_detail, store), [detail_run, which], side, api_visibility="private")
    ask.click(bind(on_ask, store), [sel.task, sel.teacher, sel.template, detail_run, question],
              [t_label, t_rationale, t_note, s_label, s_rationale, s_note], api_name="ask")
    question.submit(bind(on_ask, store), [sel.task, sel.teacher, sel.template, detail_run, question],
                    [t_label, t_rationale, t_note, s_label, s_rationale, s_note], api_visibility="private")
    refresh.click(bind(refresh_runs, store), runs, runs, api_visibility="private")
    demo.load(bind(refresh_runs, store), runs, runs, api_visibility="private")
    if tab is not None:
        tab.select(bind(refresh_runs, store), runs, runs, api_visibility="private")
