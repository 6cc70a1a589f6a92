"""Part of tab 1: import a custom CSV/JSONL file (with a column-mapping form) or the paper's released folder.

Both call the library importers (:func:`workbench.imports.custom.import_custom`,
:func:`workbench.imports.paper.import_paper`); this module only collects their arguments and reports the result.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from workbench.core.store import Store
from workbench.data.tasks import ANSWER_KINDS, list_tasks
from workbench.imports.custom import (
    ColumnMapping,
    import_custom,
    read_table,
    suggest_columns,
    suggest_task_name,
)
from workbench.imports.files import check_upload_size
from workbench.imports.paper import PAPER_DATASETS, import_paper
from workbench.ui.common import bind, edge, info, md_text, user_error

NONE = "(none)"
PREVIEW_ROWS = 5


def _opt(value: str | None) -> str | None:
    return None if not value or value == NONE else value


@edge
def on_upload(path: str | None):
    """Read the file's columns and first rows so the user can map them."""
    if not path:
        empty = gr.update(choices=[], value=None)
        return empty, empty, empty, empty, empty, [], "", ""
    check_upload_size(Path(path))  # the app's stated limit (--max-upload-mb), before the file is read
    columns, rows, rejected = read_table(Path(path))
    optional = [NONE, *columns]
    guess = suggest_columns(columns)  # the library's suggestion, by column name; every field stays editable
    preview = [[str(r.values.get(c) if r.values.get(c) is not None else "") for c in columns]
               for r in rows[:PREVIEW_ROWS]]
    note = f"{len(rows)} rows read" + (f", {len(rejected)} unreadable" if rejected else "")
    return (gr.update(choices=columns, value=guess["inputs"]),
            *(gr.update(choices=optional, value=guess[role] or NONE) for role in ("label", "rationale", "split", "id")),
            gr.update(value=preview, headers=columns), suggest_task_name(path), md_text(note))


def report_md(result: dict) -> str:
    """The importer's summary in words; every name, label and reason in it is user text, shown literally."""
    counts = ", ".join(f"{md_text(k)} {v:,}" for k, v in (result.get("examples") or {}).items())
    lines = [f"**Imported {md_text(result.get('task', ''))}**: {counts} examples"]
    if result.get("answer_kind"):
        lines.append(f"- answers: {md_text(result['answer_kind'])}")
    if result.get("labels"):
        lines.append(f"- label space: {', '.join(md_text(x) for x in result['labels'])}")
    if result.get("generations"):
        lines.append(f"- {result['generations']:,} answers stored as teacher {md_text(result.get('teacher'))}"
                     + (f", {result['parse_errors']:,} of them parse errors" if result.get("parse_errors") else ""))
    if result.get("teacher_accuracy"):
        accs = ", ".join(f"{md_text(k)} {100 * v:.1f} %" for k, v in result["teacher_accuracy"].items())
        lines.append(f"- teacher accuracy by split: {accs}")
    if result.get("unlabeled"):
        lines.append(f"- {result['unlabeled']:,} rows have no label: a teacher can answer them, but they cannot be "
                     "scored or trained on with gold labels")
    if result.get("rejected"):
        lines.append(f"- {result['rejected']:,} rows left out:")
    for err in (result.get("errors") or [])[:10]:
        lines.append(f"  - line {md_text(err.get('line'))}: {md_text(err.get('reason'))}")
    return "\n".join(lines)


def _task_choice(store: Store, name: str):
    return gr.update(choices=[t["name"] for t in list_tasks(store)], value=name)


@edge
def on_import_custom(store: Store, path, name, inputs, label, rationale, split, id_col, kind, labels):
    if not path:
        raise user_error("Upload a CSV or JSONL file first.")
    mapping = ColumnMapping(
        inputs=tuple(inputs or ()), label=_opt(label), rationale=_opt(rationale), split=_opt(split), id=_opt(id_col),
        kind=None if kind in (None, "", "infer") else kind,
        labels=tuple(x for x in (labels or "").split(",") if x.strip()) or None)
    result = import_custom(store, (name or "").strip(), path, mapping)
    result.setdefault("task", name)
    info(f"Imported task {result['task']}.")
    return report_md(result), _task_choice(store, result["task"])


@edge
def on_import_paper(store: Store, folder: str, dataset: str, name: str):
    if not folder or not folder.strip():
        raise user_error("Type the path of the unzipped release folder (or one dataset's folder).")
    result = import_paper(store, folder.strip(), dataset, (name or "").strip() or None)
    task_name = result.get("task") or (name or "").strip() or dataset
    result.setdefault("task", task_name)
    info(f"Imported {task_name}.")
    return report_md(result), _task_choice(store, task_name)


def render(store: Store, task: gr.Dropdown) -> None:
    """Two accordions under the task picker; a successful import selects the new task."""
    with gr.Accordion("Import your own data (CSV / TSV / JSONL)", open=False):
        with gr.Row():
            upload = gr.File(label="Data file", file_types=[".csv", ".tsv", ".jsonl"], type="filepath", height=110,
                             elem_id="custom-file")
            with gr.Column():
                name = gr.Textbox(label="Task name", placeholder="letters, digits, _ . -")
                kind = gr.Dropdown(["infer", *ANSWER_KINDS], value="infer", label="Answer kind")
                labels = gr.Textbox(label="Label space (comma-separated; classes only, optional)")
        # allow_custom_value: the importer itself checks the names against the file (with a clear message).
        with gr.Row():
            inputs = gr.Dropdown([], multiselect=True, label="Input column(s)", allow_custom_value=True)
            label = gr.Dropdown([], label="Label column", allow_custom_value=True)
            rationale = gr.Dropdown([], label="Rationale column", allow_custom_value=True)
            split = gr.Dropdown([], label="Split column", allow_custom_value=True)
            id_col = gr.Dropdown([], label="Id column", allow_custom_value=True)
        note = gr.Markdown()
        preview = gr.Dataframe(datatype="str", interactive=False, wrap=True, label="First rows", max_height=220)
        go = gr.Button("Import as a new task", variant="primary")
        report = gr.Markdown()
    upload.change(on_upload, upload, [inputs, label, rationale, split, id_col, preview, name, note],
                  api_visibility="private")
    go.click(bind(on_import_custom, store), [upload, name, inputs, label, rationale, split, id_col, kind, labels],
             [report, task], api_name="import_custom")

    with gr.Accordion("Import the paper's released data (SVAMP, CQA, ANLI R1, e-SNLI)", open=False):
        with gr.Row():
            folder = gr.Textbox(label="Folder (the unzipped release, or one dataset's folder)", scale=3)
            dataset = gr.Dropdown(list(PAPER_DATASETS), value="svamp", label="Dataset", scale=1)
            pname = gr.Textbox(label="Task name (optional)", scale=1)
        pgo = gr.Button("Import", variant="primary")
        preport = gr.Markdown()
    pgo.click(bind(on_import_paper, store), [folder, dataset, pname], [preport, task], api_name="import_paper")
