"""Capabilities, not names: a method declared in a test (as a notebook would) works in every front without editing
them, a run records where its method's class lives so another process can read the run back, and no front end
recognises a method or a teacher by its name."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main as cli
from workbench.core.errors import RunError
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.forms import config_from_form, training_preview
from workbench.distill.methods import LABEL_PREFIX, METHODS, Method, register_method
from workbench.distill.predict import load_run
from workbench.distill.runfolder import RunFolder
from workbench.rationales.teachers.base import TEACHERS

ROOT = Path(__file__).resolve().parents[1]


@register_method
class ExplainFirst(Method):
    """A method the workbench has never seen: explanation weighted higher, its own task markers."""

    name = "explain-first"
    task_names = ("label", "rationale")
    needs_teacher = "learns from its teacher's explanations"
    needs_rationale = True
    markers = (LABEL_PREFIX, "[explain]")
    rationale_task = 1

    def segments(self, row):
        return [(0, row["input"], row["label"]), (1, row["input"], row["rationale"])]

    def weights(self):
        return [0.3, 0.7]


@pytest.fixture
def ws(tmp_path) -> Store:
    store = Store.open(tmp_path / "ws")
    load_task("wordproblems", store, n_train=24, n_valid=4, n_test=4)
    return store


def test_a_new_method_works_in_the_cli_the_form_and_a_new_process(ws, capsys):
    w = str(ws.workspace)
    assert cli(["--workspace", w, "train", "--task", "wordproblems", "--method", "explain-first", "--teacher",
                "builtin", "--steps", "2", "--batch-size", "4", "--test-limit", "4", "--run", "ef", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["method"] == "explain-first"
    meta = RunFolder.of(ws, "ef").read_meta()
    assert meta["method_class"] == "test_capabilities:ExplainFirst"
    assert summary["generations"] == 8  # it gives rationales: 4 labels and 4 rationales were generated
    # The app's form: the method is offered, its teacher kept (it needs one), the preview says what it learns from.
    cfg = config_from_form({"task": "wordproblems", "teacher": "builtin", "method": "explain-first", "steps": "2"})
    assert cfg.teacher == "builtin" and training_preview(ws, cfg)["rows"] > 0
    # A process that never registered it reads the run back from the recorded class path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-m", "workbench", "--workspace", w, "eval", "--run", "ef", "--split",
                          "valid", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["n"] == 4


def test_a_run_whose_method_cannot_be_imported_says_so(ws):
    from workbench.distill.config import TrainConfig
    from workbench.distill.runs import train_student

    train_student(ws, TrainConfig(task="wordproblems", method="explain-first", teacher="builtin", steps=1,
                                  batch_size=4, test_limit=2, run="gone"))
    folder = RunFolder.of(ws, "gone")
    meta = folder.read_meta()
    meta["config"]["method"], meta["method_class"] = "vanished", "no_such_package.methods:Vanished"
    (folder.root / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match="no_such_package.methods:Vanished.*cannot be imported here"):
        load_run(ws, "gone")
    assert "vanished" not in METHODS


def _compared_names(path: Path, names: set[str]) -> list[str]:
    """String constants that a comparison or a membership test holds against a method or teacher name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for part in [node.left, *node.comparators]:
                values = part.elts if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [part]
                for v in values:
                    if isinstance(v, ast.Constant) and v.value in names:
                        found.append(f"{path.name}:{node.lineno} {v.value!r}")
    return found


def test_no_front_end_knows_a_method_or_teacher_by_its_name():
    names = set(METHODS.names()) | set(TEACHERS.names())
    bad = [hit for folder in ("ui", "cli") for path in sorted((ROOT / "workbench" / folder).glob("*.py"))
           for hit in _compared_names(path, names)]
    assert not bad, f"compare a capability, not a name: {bad}"


def test_no_form_default_is_written_in_the_ui():
    """A form field's starting value comes from the library (``form_defaults``, ``CLASSROOM_SWEEP``, a
    function's own default), never a number typed into ``workbench/ui``: a literal there would be a default the
    CLI and the notebooks do not share. Hidden counters (a ``gr.State``/``gr.Number`` starting at 0) and a
    timer's interval are the page's own business."""
    found = []
    for path in sorted((ROOT / "workbench" / "ui").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "gr"):
                continue
            kind = node.func.attr
            values = [k.value for k in node.keywords if k.arg == "value"]
            if kind not in ("Timer", "State", "Markdown", "Button", "Accordion", "Tab", "HTML"):
                values += node.args[:1] if kind not in ("Slider",) else node.args[2:3]
            for v in values:
                literal = isinstance(v, ast.Constant) and isinstance(v.value, (int, float)) and not isinstance(
                    v.value, bool)
                if literal and not (kind == "Number" and v.value == 0 and any(
                        k.arg == "visible" for k in node.keywords)):
                    found.append(f"{path.name}:{node.lineno} gr.{kind} starts at {v.value!r}")
    assert not found, f"read these defaults from the library: {found}"
