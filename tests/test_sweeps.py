"""Sweeps: the paper's data-efficiency and size experiments as a saved, resumable grid of runs."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main as cli
from workbench.core.errors import ConfigError
from workbench.core.jobs import job_status
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.runfolder import RunFolder
from workbench.distill.sweeps import (
    SweepConfig,
    create_sweep,
    estimate_sweep,
    run_sweep,
    start_sweep,
    sweep_points,
    sweep_status,
    sweeps_root,
)
from workbench.ui import sweeps as sweeps_tab

GRID = dict(task="wordproblems", teacher="builtin", methods=("standard", "dss"), rows=(8, 16), seeds=(0,), steps=3,
            test_limit=4, settings={"batch_size": 4, "save_every": 100})


@pytest.fixture
def ws(tmp_path) -> Store:
    store = Store.open(tmp_path / "ws")
    load_task("wordproblems", store, n_train=40, n_valid=4, n_test=8)
    return store


def test_a_grid_is_checked_and_its_cells_share_rows_across_methods():
    sweep = SweepConfig(**GRID)
    cells = sweep.cells()
    assert [(c.method, c.rows) for c in cells] == [("standard", 8), ("dss", 8), ("standard", 16), ("dss", 16)]
    cfg = sweep.config_for(cells[3], available=38, run="x")
    assert cfg.fraction == pytest.approx(16 / 38) and cfg.steps == 3 and cfg.teacher == "builtin"
    by_epochs = SweepConfig(**{**GRID, "steps": None, "epochs": 2.0, "min_steps": 1})
    assert by_epochs.config_for(cells[3], available=38, run=None).steps == 8  # 2 passes over 16 rows of 4
    for bad in ({"rows": (0,)}, {"fractions": (0.5,)}, {"methods": ()}, {"epochs": 1.0}, {"name": "a/b"},
                {"settings": {"nope": 1}}, {"methods": ("dss",), "teacher": None}):
        with pytest.raises(ConfigError):
            SweepConfig(**{**GRID, **bad})


def test_a_sweep_runs_saves_its_figure_and_resumes_after_a_cancel(ws):
    name = create_sweep(ws, SweepConfig(**GRID, name="grid"))
    calls = {"n": 0}

    def stop_after_the_first_cell() -> bool:
        calls["n"] += 1
        return bool(sweep_status(ws, name)["done"])

    first = run_sweep(ws, name, should_stop=stop_after_the_first_cell)
    assert 1 <= first["done"] < 4
    status = run_sweep(ws, name)  # resumable: finished cells are kept, the rest is trained
    assert status["done"] == status["total"] == 4 and status["teacher_accuracy"] is not None
    rows = {}
    for c in status["cells"]:
        ids = [r["example_id"] for r in RunFolder.of(ws, c["run"]).read_rows()]
        rows.setdefault(c["rows"], []).append(ids)
        assert len(ids) == c["rows"]
    assert all(a == b for a, b in rows.values())  # standard and dss learn from the same rows
    points = sweep_points(status)
    assert {p["method"] for p in points} == {"standard", "dss"} and len({p["params"] for p in points}) == 1
    saved = json.loads((sweeps_root(ws) / name / "points.json").read_text())
    assert saved["done"] == 4 and len(saved["points"]) == 4
    bar, _, cells, data, size, _ = sweeps_tab.on_poll(ws, name)
    assert "4/4" in bar and len(cells) == 4 and len(data.data) == 2  # a line per method
    assert "a curve needs" in size.layout.annotations[0].text  # one student: no size curve, and it says why


def test_the_sweep_job_the_cli_and_the_form(ws, capsys):
    name, job = start_sweep(ws, SweepConfig(**{**GRID, "rows": (8,), "methods": ("standard",)}, name="job"),
                            detach=False)
    assert job_status(ws, job)["status"] == "done" and sweep_status(ws, name)["done"] == 1
    w = str(ws.workspace)
    assert cli(["--workspace", w, "sweep", "--task", "wordproblems", "--teacher", "builtin", "--rows", "8,16",
                "--steps", "3", "--estimate", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert estimate["cells"] == 4 and estimate["steps"] == 12
    assert cli(["--workspace", w, "sweeps", "--json"]) == 0
    assert "job" in [s["sweep"] for s in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sweeps"]]
    with pytest.raises(SystemExit) as bad:  # argparse: a one-line usage error, exit 2
        cli(["--workspace", w, "sweep", "--task", "wordproblems", "--rows", "x"])
    assert bad.value.code == 2
    assert cli(["--workspace", w, "sweep", "--rows", "8"]) == 2  # no task: the CLI's own one-line error
    with pytest.raises(ConfigError, match="Training-set sizes"):
        sweeps_tab.form_sweep("wordproblems", "builtin", ["dss"], "8, lots", "rows", "0", ["tiny"], "", "", "")
    assert "**4 runs**" in sweeps_tab.on_estimate(ws, "wordproblems", "builtin", ["standard", "dss"], "8, 16", "rows",
                                                  "0", ["tiny"], "3", "", "")
    assert estimate_sweep(ws, SweepConfig(**GRID))["available_rows"] >= 16
