"""Tab 1, Task & teacher: pick or import a task, pick a teacher, see and edit the few-shot prompt.

The task dropdown, the teacher spec and the template text are read by the other tabs (they are the page's
"current selection"), so :func:`render` returns them. Choosing or importing a task also picks a teacher that can
answer it (the library's :func:`~workbench.rationales.suggest.suggest_teacher`): the paper's PaLM answers after a
paper import, the file's rationales after a CSV import with a rationale column, the offline teacher for the
built-in tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from workbench.builtin.demo import DEMO
from workbench.core import connections
from workbench.core.errors import ConfigError
from workbench.core.store import Store
from workbench.data.tasks import list_tasks, load_task
from workbench.rationales.suggest import restore_selection, suggest_teacher
from workbench.rationales.teachers import TEACHERS, parse_spec
from workbench.rationales.teachers.base import compose_spec
from workbench.ui import imports
from workbench.ui.common import bind, clip, edge, first, intro, md_text

DEMO_TASK, DEMO_TEACHER = DEMO.task, DEMO.teacher
N_EXAMPLES = 8
EXAMPLE_HEADERS = ["id", "split", "input", "gold label"]
EXAMPLE_WIDTHS = ["16%", "10%", "54%", "20%"]


@dataclass
class Selection:
    """The components other tabs read: the current task, teacher spec and (edited) prompt template."""

    task: gr.Dropdown
    teacher: gr.Textbox
    template: gr.Code | gr.Textbox
    #: Changes once a page (re)load has restored task and teacher: tabs refresh on it, never on the page load
    #: itself, which would read the defaults the restore is about to replace (and could finish after it).
    ready: gr.Number | None = None


def task_names(store: Store) -> list[str]:
    return [t["name"] for t in list_tasks(store)]


def task_info_md(task) -> str:
    """Size, label space, answer kind and metric of a task; every name in it is user text, shown literally."""
    sizes = task.split_sizes()
    size = ", ".join(f"{md_text(k)} {v:,}" for k, v in sizes.items()) or "no examples"
    labels = ", ".join(md_text(lab) for lab in task.labels) if task.labels else f"free ({md_text(task.answer_kind)})"
    return (f"**{md_text(task.name)}** · source {md_text(task.source)} · {size}  \n"
            f"**answers** {md_text(task.answer_kind)} · **label space** {labels} · "
            f"**metric** {md_text(task.metric_name)}")


def example_rows(task) -> list[list[str]]:
    split = first(task.split_names(), "train")
    return [[e.id, e.split, clip(e.input, 200), e.label or "(none)"] for e in task.examples(split, N_EXAMPLES)]


def preview(store: Store, task_name: str, template_text: str, example_id: str | None) -> str:
    """The exact prompt the teacher would get for one example (the template with ``{input}`` filled)."""
    if not task_name:
        return ""
    task = load_task(task_name, store)
    template = task.template().with_text(template_text) if template_text else task.template()
    example = store.example(task.name, example_id) if example_id else first(task.examples(
        first(task.split_names(), "train"), 1))
    if example is None:
        return "(this task has no examples)"
    return template.render(example.input)


def teacher_parts(spec: str) -> tuple[str, str, str]:
    """(kind, target, settings) of a spec, for the three teacher boxes."""
    kind, target, _ = parse_spec(spec)
    return kind, target, spec.partition("?")[2]


@edge
def on_task(store: Store, task_name: str, spec: str):
    """Task chosen: its facts and examples, the task's own template, a preview, and a teacher that can answer it."""
    if not task_name:
        return "", [], "", "", None, gr.skip(), gr.skip(), gr.skip(), gr.skip(), ""
    task = load_task(task_name, store)  # materialises a built-in task the first time
    rows = example_rows(task)
    example_id = rows[0][0] if rows else None
    text = task.template().text
    chosen = suggest_teacher(store, task.name, spec or DEMO_TEACHER) or spec or DEMO_TEACHER
    kind, target, settings = teacher_parts(chosen)
    note = "" if chosen == spec else f"Teacher set to {md_text(chosen)}: it can answer this task."
    return (task_info_md(task), rows, text, preview(store, task.name, text, example_id), example_id,
            gr.update(value=kind), gr.update(value=target, placeholder=target_hint(kind)),
            gr.update(value=settings, placeholder=settings_hint(kind)), chosen, note)


@edge
def on_template(store: Store, task_name: str, text: str, example_id: str | None) -> str:
    try:
        return preview(store, task_name, text, example_id)
    except ConfigError as err:  # a half-typed template is normal while editing: say so in the preview
        return f"⚠ {err}"


@edge
def on_example_select(store: Store, task_name: str, text: str, evt: gr.SelectData):
    example_id = evt.row_value[0] if evt.row_value else None
    return example_id, on_template(store, task_name, text, example_id)


@edge
def on_reset_template(store: Store, task_name: str, example_id: str | None):
    text = load_task(task_name, store).template().text
    return text, preview(store, task_name, text, example_id)


@edge
def on_teacher_parts(kind: str, target: str, settings: str) -> str:
    return compose_spec(kind or DEMO_TEACHER, target, settings)


def kind_doc(kind: str) -> str:
    """What a teacher kind is, what it costs and what goes in the target box (all from its class)."""
    cls = TEACHERS.get(kind)
    if cls is None:
        return ""
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("``", "")
    cost = {"free": "free and instant", "compute": "runs a model on this machine (takes time)",
            "money": "calls an endpoint (may be billed)"}[cls.cost]
    return f"{md_text(doc)}  \n**cost** {cost}" + (f" · **target** {md_text(cls.target_hint)}" if cls.needs_target
                                                    else "")


def target_hint(kind: str) -> str:
    cls = TEACHERS.get(kind)
    return (cls.target_hint or "(none)") if cls else ""


def settings_hint(kind: str) -> str:
    """The settings box's placeholder: a few of this kind's own options at their defaults (none: says so)."""
    cls = TEACHERS.get(kind)
    shown = [o for o in (cls.options if cls else ()) if o.sampling and o.default is not None][:2]
    return "&".join(f"{o.name}={str(o.default).lower() if isinstance(o.default, bool) else o.default}"
                    for o in shown) or "(none needed)"


def on_teacher_kind(kind: str):
    """New kind (picked by the user): clear the target, show what belongs there and what the kind is."""
    return (gr.update(value="", placeholder=target_hint(kind)), gr.update(value="", placeholder=settings_hint(kind)),
            kind_doc(kind), compose_spec(kind, "", ""))


@edge
def on_connection(name: str):
    """A connection picked: its spec (kind, model, @conn:NAME) fills the teacher boxes."""
    chosen = connections.current().connection(name).spec
    kind, target, settings = teacher_parts(chosen)
    return gr.update(value=kind), target, settings, kind_doc(kind), chosen


def on_load(store: Store, saved: dict | None):
    """A page (re)load: the task list as the workspace has it now, and the task and teacher the page showed
    before (kept in the browser), or those of a job running now; the teacher always one that can teach the task."""
    saved = saved or {}
    task, spec = restore_selection(store, saved.get("task"), saved.get("teacher"), DEMO_TASK)
    return gr.update(choices=task_names(store), value=task), spec or DEMO_TEACHER


def remember(task: str | None, spec: str | None) -> dict:
    return {"task": task, "teacher": spec}


def render(store: Store, demo: gr.Blocks) -> Selection:
    """Lay out the tab and wire its events; returns the components the other tabs read."""
    intro("Choose what to distil and who teaches. The built-in word problems and the built-in teacher work "
          "offline; import your own CSV/JSONL or the paper's released data below.")
    names = task_names(store)
    with gr.Row():
        with gr.Column(scale=2):
            task = gr.Dropdown(names, value=DEMO_TASK if DEMO_TASK in names else first(names), label="Task",
                               elem_id="task-picker")
            info = gr.Markdown(elem_id="task-info")
        with gr.Column(scale=3):
            examples = gr.Dataframe(headers=EXAMPLE_HEADERS, datatype="str", interactive=False, wrap=True,
                                    label="A few examples (click one to preview its prompt)", max_height=300,
                                    column_widths=EXAMPLE_WIDTHS, elem_classes=["wb-table"], elem_id="task-examples")
    gr.Markdown("### Teacher")
    kinds = TEACHERS.names() or [DEMO_TEACHER]
    with gr.Row():
        kind = gr.Dropdown(kinds, value=DEMO_TEACHER if DEMO_TEACHER in kinds else kinds[0], label="Teacher kind",
                           scale=1, elem_id="teacher-kind")
        target = gr.Textbox(label="Model / target", placeholder="(none)", scale=2, elem_id="teacher-target")
        settings = gr.Textbox(label="Settings (key=value&key=value)", placeholder=settings_hint(DEMO_TEACHER), scale=2,
                              elem_id="teacher-settings")
        spec = gr.Textbox(DEMO_TEACHER, label="Teacher spec (used by the other tabs)", interactive=False,
                          buttons=["copy"], scale=2, elem_id="teacher-spec")
    conns = connections.connection_choices()  # the endpoints whoever started the app offers (a typed URL is sent no key)
    conn = gr.Dropdown([c["name"] for c in conns], value=None, label="Connection (endpoint and key set by whoever "
                       "started the app)", visible=bool(conns), elem_id="teacher-connection")
    doc = gr.Markdown(kind_doc(DEMO_TEACHER), elem_id="teacher-doc")
    chosen_note = gr.Markdown(elem_id="teacher-note")
    imports.render(store, task)
    gr.Markdown("### Few-shot prompt")
    example_id = gr.State(None)
    with gr.Row():
        template = gr.Textbox(label="Template (edit freely; keep {input})", lines=16, max_lines=30,
                              elem_id="template")
        prompt = gr.Textbox(label="Prompt preview for the selected example", lines=16, max_lines=30,
                            interactive=False, buttons=["copy"], elem_id="prompt-preview")
    reset = gr.Button("Reset to the task's template", size="sm")

    task_outputs = [info, examples, template, prompt, example_id, kind, target, settings, spec, chosen_note]
    hidden = {"show_progress": "hidden"}
    task.change(bind(on_task, store), [task, spec], task_outputs, api_name="select_task", **hidden).then(
        kind_doc, kind, doc, api_visibility="private", **hidden)
    template.change(bind(on_template, store), [task, template, example_id], prompt, api_name="preview_prompt",
                    **hidden)
    examples.select(bind(on_example_select, store), [task, template], [example_id, prompt],
                    api_visibility="private", **hidden)
    reset.click(bind(on_reset_template, store), [task, example_id], [template, prompt],
                api_visibility="private", **hidden)
    kind.input(on_teacher_kind, kind, [target, settings, doc, spec], api_visibility="private", **hidden)
    conn.input(on_connection, conn, [kind, target, settings, doc, spec], api_visibility="private", **hidden)
    for box in (target, settings):
        box.blur(on_teacher_parts, [kind, target, settings], spec, api_visibility="private", **hidden)
        box.submit(on_teacher_parts, [kind, target, settings], spec, api_visibility="private", **hidden)
    # Reopening the page re-reads the workspace (a task imported elsewhere shows up), restores the task and teacher
    # it showed, and only then tells the other tabs (``ready``), so every tab shows that one task and teacher.
    saved = gr.BrowserState({"task": None, "teacher": None}, storage_key="workbench-selection")
    ready = gr.Number(0, visible=False, elem_id="selection-ready")
    gr.on([task.change, spec.change], remember, [task, spec], saved, api_visibility="private", **hidden)
    demo.load(bind(on_load, store), saved, [task, spec], api_visibility="private", **hidden).then(
        bind(on_task, store), [task, spec], task_outputs, api_visibility="private", **hidden).then(
        kind_doc, kind, doc, api_visibility="private", **hidden).then(
        lambda n: (n or 0) + 1, ready, ready, api_visibility="private", **hidden)
    return Selection(task=task, teacher=spec, template=template, ready=ready)
