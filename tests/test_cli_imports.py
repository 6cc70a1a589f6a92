"""CLI import verbs: exit codes, --json output, one-line errors, and one run of the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_import_paper_json_and_rerun(tmp_path, capsys, paper_data):
    ws = str(tmp_path / "ws")
    code, out, err = run(capsys, "--workspace", ws, "import-paper", str(paper_data / "svamp"), "--task", "svamp",
                         "--json")
    assert code == 0, err
    r = last_json(out)
    assert r["examples"] == {"train": 800, "test": 200} and r["generations"] == 1000
    assert r["parse_errors"] == 41 and r["teacher_accuracy"]["test"] == 0.74
    code, out, err = run(capsys, "import-paper", str(paper_data), "--task", "svamp", "--workspace", ws)
    assert code == 0 and "already imported" in out and "74.00%" in out


def test_import_paper_user_errors_exit_2_with_one_line(tmp_path, capsys, paper_data):
    ws = str(tmp_path / "ws")
    code, out, err = run(capsys, "--workspace", ws, "import-paper", str(tmp_path / "nope"), "--task", "cqa")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("workbench import-paper: error:")
    assert run(capsys, "--workspace", ws, "import-paper", str(paper_data), "--task", "svamp", "--name", "x")[0] == 0
    code, _, err = run(capsys, "--workspace", ws, "import-paper", str(paper_data), "--task", "cqa", "--name", "x")
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1


def test_paper_task_choices_match_the_registry():
    from workbench.cli.imports import PAPER_TASKS
    from workbench.imports.paper import PAPER_DATASETS

    assert sorted(PAPER_TASKS) == sorted(PAPER_DATASETS)


def test_task_add_reports_rejected_rows(tmp_path, capsys):
    path = tmp_path / "reviews.csv"
    path.write_text("text,sentiment,why\ngreat,pos,praise\nbad,neg,\n,pos,\nmeh,neutral,\nok,pos,fine\n")
    ws = str(tmp_path / "ws")
    code, out, err = run(capsys, "--workspace", ws, "task-add", "reviews", str(path), "--input", "text",
                         "--label", "sentiment", "--rationale", "why", "--labels", "pos,neg", "--json")
    assert code == 0, err
    r = last_json(out)
    assert r["task"] == "reviews" and sum(r["examples"].values()) == 3 and r["rejected"] == 2
    assert r["errors"] == [{"line": 4, "reason": "empty input column 'text'"},
                           {"line": 5, "reason": "label 'neutral' is not one of pos, neg"}]
    code, out, _ = run(capsys, "--workspace", ws, "task-add", "reviews2", str(path), "--input", "text",
                       "--label", "sentiment")
    assert code == 0 and "line 4: empty input column 'text'" in out


@pytest.mark.parametrize("extra, message", [
    (["--input", "body"], "no column(s) 'body'; available: text, sentiment"),
    (["--input", "text", "--labels", "pos"], "a label space needs a label column"),
])
def test_task_add_user_errors_exit_2(tmp_path, capsys, extra, message):
    path = tmp_path / "r.csv"
    path.write_text("text,sentiment\ngreat,pos\n")
    code, out, err = run(capsys, "--workspace", str(tmp_path / "ws"), "task-add", "r", str(path), *extra)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_console_script_imports_the_release(tmp_path, paper_data):
    script = Path(sys.executable).with_name("workbench")
    if not script.exists():
        pytest.fail(f"console script {script} missing; run `pip install -e .` in the venv")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(script), "--workspace", str(tmp_path / "ws"), "import-paper", str(paper_data),
                           "--task", "svamp", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc.stdout)["teacher_accuracy"] == {"train": 0.735, "test": 0.74}


def test_commands_that_train_nothing_never_import_torch(tmp_path):
    """`workbench --help`, `models`, `sweeps`, `runs` answer at once: registering the commands imported the trainer
    (torch and transformers, 4.8 s a call) until the sweep command's module imported it only when cells run."""
    code = ("import sys; from workbench.cli import main; ws = sys.argv[1]\n"
            "for argv in (['models', '--json'], ['sweeps'], ['runs'], ['sweep', '--help']):\n"
            "    try:\n        main(['--workspace', ws, *argv])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ws")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]
