"""The Gradio app through ``gradio_client``, launched on a free port over a temporary workspace.

Endpoints with only visible inputs are called as a browser would (through the API); the few handlers whose
inputs include a selection are called directly (they are plain functions).
"""

from __future__ import annotations

import html
import json
import socket
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

from workbench.core.jobs import wait_job
from workbench.data.tasks import load_task
from workbench.rationales.review import browse_generations, current_state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app over a fresh workspace, on 127.0.0.1, for the whole module."""
    from gradio_client import Client

    from workbench.ui import launch

    workspace = tmp_path_factory.mktemp("ui") / "ws"
    demo = launch(workspace, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        yield demo, client, demo.workbench_store
    finally:
        demo.close()


def test_first_start_materialises_the_demo_task(served):
    _, _, store = served
    assert store.has_task("wordproblems")
    assert load_task("wordproblems", store).split_sizes()["train"] > 0


def test_select_task_shows_size_labels_examples_and_prompt(served):
    _, client, _ = served
    info, examples, template, prompt, *_ = client.predict("wordproblems", "builtin", api_name="/select_task")
    assert "wordproblems" in info and "train 2,000" in info and "equation" in info
    assert len(examples["data"]) == 8 and examples["headers"] == ["id", "split", "input", "gold label"]
    assert "{input}" in template
    first_input = examples["data"][0][2].rstrip("…")
    assert "{input}" not in prompt and first_input[:40] in prompt


def test_prompt_preview_follows_template_edits(served):
    _, client, _ = served
    prompt = client.predict("wordproblems", "Solve: {input}\nA:", None, api_name="/preview_prompt")
    assert prompt.startswith("Solve: ") and prompt.endswith("\nA:")
    warning = client.predict("wordproblems", "no placeholder here", None, api_name="/preview_prompt")
    assert warning.startswith("⚠") and "{input}" in warning


def test_generate_edit_status_and_export_roundtrip(served):

    _, client, store = served
    template = load_task("wordproblems", store).template().text
    job_id, _ = client.predict("wordproblems", "builtin", template, "30", "train", api_name="/generate")
    assert wait_job(store, job_id, timeout=120)["status"] == "done"
    task = load_task("wordproblems", store)
    page = browse_generations(store, task, "builtin")
    assert page.total == 30
    gid = page.rows[0]["generation_id"]

    # Edits through the API: saved as made, and a blur without a change is not an edit.
    state = current_state(store, gid)
    client.predict(gid, state["rationale"], state["label"], api_name="/edit")
    assert store.edit_history(gid) == []
    status, history, saved, _header = client.predict(gid, "4 - 2 - 1 = 1", "4 - 2 - 1", api_name="/edit")
    assert status == "accepted" and saved.startswith("Saved")
    assert len(history["data"]) == 1
    assert current_state(store, gid)["rationale"] == "4 - 2 - 1 = 1"
    client.predict(gid, "rejected", api_name="/set_status")
    assert store.latest_edit(gid)["status"] == "rejected"
    assert store.latest_edit(gid)["rationale"] == "4 - 2 - 1 = 1"  # a status change keeps the edited text

    exported = client.predict("wordproblems", "builtin", "JSONL", "gold", api_name="/export")
    exported = exported["value"] if isinstance(exported, dict) else exported  # an update: the file, made visible
    rows = [json.loads(line) for line in Path(exported).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == page.counts["all"] - 1 - page.counts["parse errors"]  # rejected + parse errors dropped
    assert all(r["generation_id"] != gid for r in rows)


def test_bulk_status_marks_every_row_of_the_view(served):
    from workbench.ui import rationales

    _, _, store = served
    task = load_task("wordproblems", store)
    wrong = browse_generations(store, task, "builtin", view="teacher wrong", page_size=10**6).rows
    rationales.on_bulk_ask(store, "rejected", "wordproblems", "builtin", "teacher wrong", "")
    rationales.on_bulk_confirm(store, "rejected", "wordproblems", "builtin", "teacher wrong", "")
    assert all(store.latest_edit(r["generation_id"])["status"] == "rejected" for r in wrong)


def test_user_mistakes_are_clear_errors(served):
    _, client, _ = served
    with pytest.raises(AppError, match="unknown teacher 'nope'"):
        client.predict("wordproblems", "nope", "Q: {input}", "5", "train", api_name="/generate")
    with pytest.raises(AppError, match="placeholder"):
        client.predict("wordproblems", "builtin", "no input here", "5", "train", api_name="/generate")
    with pytest.raises(AppError, match="only replays stored answers|no stored answers|replays the answers an import stored"):
        client.predict("wordproblems", "released:palm-540b", "Q: {input}", "5", "train", api_name="/generate")


def test_custom_csv_import_with_column_mapping(served, tmp_path):
    from gradio_client import handle_file

    _, client, store = served
    path = tmp_path / "mine.csv"
    path.write_text("question,answer,why\n"
                    "\"<img src=x onerror=alert(1)>\",yes,because\n"
                    "Is two more than one?,yes,2 > 1\nIs one more than two?,no,1 < 2\n", encoding="utf-8")
    report, _ = client.predict(handle_file(str(path)), "mine", ["question"], "answer", "why", "(none)", "(none)",
                               "classes", "", api_name="/import_custom")
    assert "Imported" in report and "mine" in report and "<img" not in report
    task = load_task("mine", store)
    assert task.answer_kind == "classes" and set(task.labels) == {"yes", "no"}
    inputs = {e.input for e in task.examples()}
    assert "<img src=x onerror=alert(1)>" in inputs  # stored verbatim; rendering it as text is the UI's job
    with pytest.raises(AppError, match="no column"):
        client.predict(handle_file(str(path)), "mine2", ["nope"], "(none)", "(none)", "(none)", "(none)", "infer",
                       "", api_name="/import_custom")


def test_train_form_shows_cli_command_and_device(served):
    from workbench.ui import train

    _, _, store = served
    cli, facts = train.on_form(store, "wordproblems", "builtin", "tiny", "dss", "gold", "auto", 0.3, 1.0, 40, 16,
                               0.002, 1, 20, "50", 0, "")
    assert cli.startswith(f"workbench --workspace {store.workspace} train") and "--alpha 0.3" in cli
    assert "--steps 40" in cli and "--teacher builtin" in cli
    assert "Device" in facts and ("cpu" in facts or "cuda" in facts)
    cli, facts = train.on_form(store, "wordproblems", "builtin", "tiny", "dss", "gold", "auto", 2.0, 1.0, 40, 16,
                               0.002, 1, 20, "50", 0, "")
    assert "alpha must be in [0, 1]" in html.unescape(facts)  # shown as text: Markdown characters are entities


def test_launcher_guards():
    import app as launcher
    from workbench.ui.app import exposure_warning, parse_auth

    args = launcher.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("0.0.0.0", None) and "--auth" in exposure_warning("0.0.0.0", None)
    assert exposure_warning("0.0.0.0", ("u", "p")) is None
    assert parse_auth("me:s:e:cret") == ("me", "s:e:cret")
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        parse_auth("nopassword")


def test_auth_protects_the_app(tmp_path):
    import urllib.request
    from urllib.error import HTTPError

    from workbench.ui import launch

    demo = launch(tmp_path / "ws", port=free_port(), auth="me:secret", prevent_thread_lock=True, quiet=True)
    try:
        with pytest.raises(HTTPError) as err:
            urllib.request.urlopen(demo.local_url.rstrip("/") + "/config", timeout=10)
        assert err.value.code == 401
    finally:
        demo.close()


def test_plots_build_the_paper_figures():
    from workbench.results import plots

    events = [{"event": "train", "step": s, "loss": 2 / s, "label_loss": 1 / s, "rationale_loss": 3 / s}
              for s in (1, 2, 3)] + [{"event": "eval", "step": 3, "accuracy": 0.5}]
    fig = plots.loss_curves(events)
    assert [t.name for t in fig.data] == ["train loss", "label loss", "rationale loss", "eval accuracy"]
    cm = plots.confusion_matrix(["a", "b"], ["a", "a", "b"], ["a", "b", "zzz"])
    assert cm.data[0].z == ((1, 1, 0), (0, 0, 1)) or [list(r) for r in cm.data[0].z] == [[1, 1, 0], [0, 0, 1]]
    bars = plots.accuracy_bars({"run-1": 0.4}, teacher=0.8)
    assert [x for trace in bars.data for x in trace.x] == ["teacher", "run-1"]
    size = plots.size_vs_accuracy([{"method": "dss", "params": 1e6, "accuracy": 0.5}], teacher=0.8)
    assert size.layout.shapes[0].y0 == 0.8
