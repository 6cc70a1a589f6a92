"""Hostile input, round 3's second pass (issue 24): what the first fixes left open, one test per family.

* A sweep whose second student is a folder that holds no model, a path that does not exist or a hub id not in the
  local cache (offline) trained its first cell and then failed: every student is checked before the first cell.
* A damaged run or sweep file (nested beyond the JSON parser's depth, truncated, of the wrong shape, an empty
  model file) gave a traceback from ``eval``, ``compare``, ``train --resume`` and ``sweeps``: one line naming it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from workbench.cli import main
from workbench.core.errors import ConfigError, RunError
from workbench.distill.students import check_student

DEEP = "[" * 100_000  # nested beyond the JSON parser's recursion limit


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


# -- every cell's student checked before the first cell ----------------------------------------------------------
@pytest.mark.parametrize("spec", ["{empty}", "/nonexistent/x", "./no/such/folder", "someorg/not-in-the-cache"])
def test_a_student_that_cannot_load_is_refused_before_anything_trains(tmp_path, monkeypatch, spec):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("WORKBENCH_ONLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "empty").mkdir()
    spec = spec.format(empty=tmp_path / "empty")
    with pytest.raises(ConfigError, match="student"):
        check_student(spec)
    ws = tmp_path / "ws"
    code, err = _run(["--workspace", str(ws), "sweep", "--task", "wordproblems", "--methods", "standard",
                      "--students", f"tiny,{spec}", "--rows", "4", "--steps", "1", "--seeds", "0", "--name", "s"])
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())  # no cell trained


# -- damaged run files: one line, never a traceback --------------------------------------------------------------
def _damage(root, run, file, text):
    (root / "runs" / run / file).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("file,text", [
    ("config.json", DEEP), ("config.json", "[]"), ("config.json", "{}"),
    ("predictions.jsonl", DEEP), ("predictions.jsonl", '{"gold": "1", "pred'), ("predictions.jsonl", "[1, 2]\n"),
])
@pytest.mark.parametrize("verb", [["eval", "--run"], ["compare", "--run"], ["train", "--resume"]])
def test_a_damaged_run_file_is_one_line(trained_store, trained_run, file, text, verb):
    _damage(trained_store.workspace, trained_run, file, text)
    code, err = _run(["--workspace", str(trained_store.workspace), *verb, trained_run])
    assert code in (1, 2) and "Traceback" not in err and err.count("\n") == 1, err
    if file == "config.json" or verb[0] != "train":
        assert file in err, err


def test_an_empty_model_file_in_a_run_is_one_line(trained_store, trained_run):
    (trained_store.workspace / "runs" / trained_run / "model" / "model.safetensors").write_bytes(b"")
    code, err = _run(["--workspace", str(trained_store.workspace), "eval", "--run", trained_run, "--split", "valid",
                      "--limit", "1"])
    assert code in (1, 2) and "Traceback" not in err and err.count("\n") == 1 and "safetensors" in err, err


def test_read_predictions_names_the_file_and_line(trained_store, trained_run):
    from workbench.distill.runfolder import RunFolder

    folder = RunFolder.of(trained_store, trained_run)
    rows = (folder.root / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    (folder.root / "predictions.jsonl").write_text("\n".join([rows[0], DEEP]), encoding="utf-8")
    with pytest.raises(RunError, match=r"predictions.jsonl line 2"):
        folder.read_predictions()


# -- damaged sweep files: listed as unreadable, the rest still work -----------------------------------------------
def test_a_sweep_json_nested_too_deep_is_listed_as_unreadable(tmp_path):
    ws = tmp_path / "ws"
    code, err = _run(["--workspace", str(ws), "sweep", "--task", "wordproblems", "--methods", "standard",
                      "--rows", "4", "--steps", "1", "--seeds", "0", "--name", "good", "--estimate"])
    assert code == 0, err
    (ws / "sweeps" / "deep").mkdir(parents=True)
    (ws / "sweeps" / "deep" / "sweep.json").write_text(DEEP, encoding="utf-8")
    (ws / "sweeps" / "other").mkdir()
    (ws / "sweeps" / "other" / "sweep.json").write_text(json.dumps({"config": []}), encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["--workspace", str(ws), "sweeps"])
    assert code == 0 and "deep" in out.getvalue() and "other" in out.getvalue() and "Traceback" not in err.getvalue(), err.getvalue()
    code, err = _run(["--workspace", str(ws), "sweep", "--resume", "deep", "--estimate"])
    assert code == 2 and "sweep.json" in err and err.count("\n") == 1, err
    shutil.rmtree(ws)


def test_a_sweep_json_that_links_outside_the_workspace_is_refused(tmp_path):
    from workbench.core.errors import ConfigError
    from workbench.core.store import Store
    from workbench.distill.sweeps import SweepConfig, create_sweep, load_sweep, sweep_folder

    store = Store.open(tmp_path / "ws")
    name = create_sweep(store, SweepConfig(task="wordproblems", teacher="builtin", rows=(8,), seeds=(0,),
                                           students=("tiny",), steps=1, name="linked"))
    outside = tmp_path / "elsewhere.json"
    saved = sweep_folder(store, name) / "sweep.json"
    outside.write_text(saved.read_text())
    saved.unlink()
    saved.symlink_to(outside)
    with pytest.raises(ConfigError, match="sweep"):
        load_sweep(store, name)
