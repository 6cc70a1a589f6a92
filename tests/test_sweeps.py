"""Sweeps: the paper's data-efficiency and size experiments as a saved, resumable grid of runs, whose cells are
identified by their configs, checked before the first one starts, and compared with an interval and a verdict."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from workbench.cli import main as cli
from workbench.core.errors import ConfigError, RunError, UnknownNameError
from workbench.core.jobs import job_status
from workbench.core.store import Store
from workbench.data.tasks import load_task
from workbench.distill.config import TrainConfig
from workbench.distill.runfolder import RunFolder
from workbench.distill.runs import train_student
from workbench.distill.sweep_form import form_values, sweep_from_form
from workbench.distill.sweeps import (
    MAX_CELLS,
    SweepConfig,
    create_sweep,
    estimate_sweep,
    list_sweeps,
    load_sweep,
    run_sweep,
    start_sweep,
    sweep_points,
    sweep_status,
    sweeps_root,
)
from workbench.results.sweep_report import sweep_report
from workbench.results.verdict import versus_verdicts
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
    assert cfg.eval_every == 0 and cfg.predict_rationales is False  # a grid is scored once, labels only
    by_epochs = SweepConfig(**{**GRID, "steps": None, "epochs": 2.0, "min_steps": 1})
    assert by_epochs.config_for(cells[3], available=38, run=None).steps == 8  # 2 passes over 16 rows of 4
    for bad in ({"rows": (0,)}, {"fractions": (0.5,)}, {"methods": ()}, {"epochs": 1.0}, {"name": "a/b"},
                {"settings": {"nope": 1}}, {"methods": ("dss",), "teacher": None}):
        with pytest.raises(ConfigError):
            SweepConfig(**{**GRID, **bad})


def test_a_grid_given_twice_the_same_value_holds_one_cell():
    twice = SweepConfig(**{**GRID, "rows": (16, 8, 16), "methods": ("dss", "standard", "dss"), "seeds": (0, 0),
                           "students": ("tiny", "tiny/", " tiny")})
    assert twice.rows == (8, 16) and twice.methods == ("dss", "standard") and twice.students == ("tiny",)
    assert len(twice.cells()) == 4


def test_fractions_that_round_to_the_same_rows_are_one_cell(ws):
    sweep = SweepConfig(**{**GRID, "rows": (), "fractions": (0.125, 0.1251)}, name="fr")
    name = create_sweep(ws, sweep)
    assert sweep_status(ws, name)["total"] == 2  # 0.125 and 0.1251 of the rows are the same rows: 1 size × 2 methods


@pytest.mark.parametrize("bad, match", [
    ({"seeds": (-1,)}, "seeds"), ({"seeds": (2**32,)}, "seeds"), ({"steps": None, "epochs": float("nan")}, "epochs"),
    ({"steps": None, "epochs": float("inf")}, "epochs"), ({"rows": tuple(range(1, 2000)), "seeds": tuple(range(2000))},
                                                         "at most"),
    ({"methods": ("nope",)}, "unknown method"), ({"test_limit": 0}, "test_limit"),
])
def test_bad_grids_are_refused_at_once_with_the_range(bad, match):
    with pytest.raises((ConfigError, UnknownNameError), match=match):
        SweepConfig(**{**GRID, **bad})


def test_a_three_million_cell_estimate_is_refused_not_run(ws, capsys):
    w = str(ws.workspace)
    rows = ",".join(str(i) for i in range(1, 1001))
    seeds = ",".join(str(i) for i in range(3000))
    assert cli(["--workspace", w, "sweep", "--task", "wordproblems", "--rows", rows, "--seeds", seeds,
                "--estimate"]) == 2
    assert f"at most {MAX_CELLS}" in capsys.readouterr().err


def test_every_cell_is_checked_before_the_first_starts(ws):
    with pytest.raises((ConfigError, UnknownNameError), match="not available|unknown student"):  # the 2nd one
        create_sweep(ws, SweepConfig(**{**GRID, "students": ("tiny", "no-such-student")}))
    with pytest.raises(ConfigError, match="classification"):  # kd on an equation task fails now, not after hours
        create_sweep(ws, SweepConfig(**{**GRID, "methods": ("standard", "kd")}))
    assert list_sweeps(ws) == []  # nothing was saved


def test_a_sweep_runs_saves_its_figure_and_resumes_after_a_cancel(ws):
    name = create_sweep(ws, SweepConfig(**GRID, name="grid"))

    def stop_after_the_first_cell() -> bool:
        return bool(sweep_status(ws, name)["done"])

    first = run_sweep(ws, name, should_stop=stop_after_the_first_cell)
    assert 1 <= first["done"] < 4
    status = run_sweep(ws, name)  # resumable: finished cells are kept, the rest is trained
    assert status["done"] == status["total"] == 4 and status["teacher_accuracy"] is not None
    rows = {}
    for c in status["cells"]:
        ids = [r["example_id"] for r in RunFolder.of(ws, c["run"]).read_rows()]
        rows.setdefault(c["rows"], []).append(ids)
        assert len(ids) == c["rows"] and set(c["timings"]) >= {"load", "train", "save", "score"}
        predicted = [r["example_id"] for r in RunFolder.of(ws, c["run"]).read_predictions()]
        assert len(predicted) == 4  # every cell on the same 4 test examples
    assert all(a == b for a, b in rows.values())  # standard and dss learn from the same rows
    points = sweep_points(status)
    assert {p["method"] for p in points} == {"standard", "dss"} and len({p["params"] for p in points}) == 1
    assert all(p["seconds"] > 0 for p in points)
    saved = json.loads((sweeps_root(ws) / name / "points.json").read_text())
    assert saved["done"] == 4 and len(saved["points"]) == 4
    report = sweep_report(ws, name)
    assert report.state_line == "complete" and len(report.verdicts) == 2  # dss vs standard at 8 and at 16 rows
    assert all("1 seed" in v.sentence or "one seed" in v.sentence for v in report.verdicts)
    bar, verdict, data, seconds, size, cells, _, start = sweeps_tab.on_poll(ws, name)
    assert "4/4" in bar and "wordproblems" in bar and len(cells) == 4 and len(data.data) == 2  # a line per method
    assert "one seed" in verdict and len(seconds.data) == 2
    assert "a curve needs" in size.layout.annotations[0].text  # one student: no size curve, and it says why
    assert start["interactive"] is True  # not running: Start is on


def test_a_setting_is_compared_cell_by_cell_across_two_sweeps(ws):
    """The α sweep: dss at α 0.3 against the same cells (rows, seed, test examples) of the α 0.5 sweep; a cell the
    other sweep does not have is not compared."""
    dss = {**GRID, "methods": ("dss",)}
    low = create_sweep(ws, SweepConfig(**{**dss, "settings": {**GRID["settings"], "alpha": 0.3}}, name="a03"))
    base = create_sweep(ws, SweepConfig(**{**dss, "rows": (8,)}, name="a05"))
    low_status, base_status = run_sweep(ws, low), run_sweep(ws, base)
    (verdict,) = versus_verdicts(ws, low_status, base_status, "α 0.3", "α 0.5")
    assert (verdict.a, verdict.b, verdict.where, verdict.seeds, verdict.examples) == \
        ("dss α 0.3", "dss α 0.5", "at 8 rows", 1, 4)
    ids = {s: [r["example_id"] for r in RunFolder.of(ws, c["run"]).read_rows()]
           for s, c in (("low", low_status["cells"][0]), ("base", base_status["cells"][0]))}
    assert ids["low"] == ids["base"]  # the same rows: only α differs
    assert versus_verdicts(ws, base_status, {"cells": []}, "x", "y") == []


def test_a_run_that_has_a_cells_name_is_not_that_cell(ws):
    sweep = SweepConfig(**{**GRID, "rows": (8,), "methods": ("standard",)}, name="own")
    cell = sweep.cells()[0]
    # A plain run that happens to be named like the cell (another sweep, a person): it must not be adopted.
    train_student(ws, TrainConfig(task="wordproblems", method="standard", student="tiny", steps=1, batch_size=4,
                                  test_limit=2, run=cell.name("own")))
    name = create_sweep(ws, sweep)
    assert sweep_status(ws, name)["done"] == 0
    status = run_sweep(ws, name)
    (c,) = status["cells"]
    assert c["status"] == "done" and c["run"] != cell.name("own") and c["steps"] == 3
    meta = RunFolder.of(ws, c["run"]).read_meta()
    assert meta["origin"] == {"sweep": "own", "cell": c["hash"]}
    # A cell whose run folder was deleted is not done, and resuming trains it again.
    shutil.rmtree(RunFolder.of(ws, c["run"]).root)
    assert sweep_status(ws, name)["done"] == 0
    assert run_sweep(ws, name)["done"] == 1


def test_one_process_runs_a_sweep(ws):
    name = create_sweep(ws, SweepConfig(**{**GRID, "rows": (8,), "methods": ("standard",)}, name="once"))
    started, release = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        release.wait(30)
        return True

    first = threading.Thread(target=run_sweep, args=(ws.__class__.open(ws.workspace), name),
                             kwargs={"should_stop": hold})
    first.start()
    assert started.wait(60)
    with pytest.raises(RunError, match="already being run"):
        run_sweep(ws, name)
    release.set()
    first.join(60)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"\xff\xfe\x00", b'{"config": {"task": 3}}',
                                     b'{"config": {"task": "wordproblems", "rows": "lots"}}', b'{"config": [1]}'])
def test_an_unreadable_sweep_is_listed_as_such_and_the_others_still_work(ws, capsys, content):
    good = create_sweep(ws, SweepConfig(**GRID, name="good"))
    bad = sweeps_root(ws) / "bad"
    bad.mkdir()
    (bad / "sweep.json").write_bytes(content)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_sweep(ws, "bad")
    assert cli(["--workspace", str(ws.workspace), "sweeps", "--json"]) == 0
    listed = {s["sweep"]: s for s in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sweeps"]}
    assert "cannot be read" in listed["bad"]["error"] and listed[good]["total"] == 4
    bar, *_ = sweeps_tab.on_poll(ws, "bad")  # the tab's poll says so instead of breaking
    assert "cannot be read" in bar


def test_a_sweep_name_never_leaves_the_workspace(ws, tmp_path):
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "sweep.json").write_text(json.dumps({"config": {**GRID, "name": "x"}}))
    for name in ("../../x", str(outside), "a/../../x", ".."):
        with pytest.raises(ConfigError):
            load_sweep(ws, name)
        assert cli(["--workspace", str(ws.workspace), "sweep", "--resume", name, "--estimate"]) == 2
    (sweeps_root(ws)).mkdir(exist_ok=True)
    (sweeps_root(ws) / "link").symlink_to(outside)
    assert "link" not in list_sweeps(ws)


def test_the_sweep_job_the_cli_and_the_form(ws, capsys):
    name, job = start_sweep(ws, SweepConfig(**{**GRID, "rows": (8,), "methods": ("standard",)}, name="job"),
                            detach=False)
    assert job_status(ws, job)["status"] == "done" and sweep_status(ws, name)["done"] == 1
    w = str(ws.workspace)
    assert cli(["--workspace", w, "sweep", "--task", "wordproblems", "--teacher", "builtin", "--rows", "8,16",
                "--seeds", "0", "--steps", "3", "--estimate", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert estimate["cells"] == 4 and estimate["steps"] == 12 and estimate["seconds"] > 0
    assert estimate["low"] <= estimate["seconds"] <= estimate["high"] and "about" in estimate["text"]
    assert cli(["--workspace", w, "sweeps", "--json"]) == 0
    assert "job" in [s["sweep"] for s in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sweeps"]]
    with pytest.raises(SystemExit) as bad:  # argparse: a one-line usage error, exit 2
        cli(["--workspace", w, "sweep", "--task", "wordproblems", "--rows", "x"])
    assert bad.value.code == 2
    assert cli(["--workspace", w, "sweep", "--rows", "8"]) == 2  # no task: the CLI's own one-line error
    values = form_values(SweepConfig(**GRID))
    with pytest.raises(ConfigError, match="Training-set sizes"):
        sweep_from_form({**values, "sizes": "8, lots"})
    shown, _ = sweeps_tab.on_estimate(ws, *[values[f] for f in sweeps_tab.FIELDS])
    assert "**4 runs**" in shown and "first 4 test examples" in shown and "one seed" in shown
    assert estimate_sweep(ws, SweepConfig(**GRID))["available_rows"] >= 16


def test_the_form_starts_from_the_sweep_defaults_and_shows_a_saved_sweep_after_a_reload(ws):
    from workbench.builtin.demo import CLASSROOM_SWEEP

    defaults = form_values(CLASSROOM_SWEEP)
    assert defaults["seeds"] == "0, 1, 2" and defaults["students"] == ["smollm2-135m"]
    assert SweepConfig(task="t", teacher="builtin").seeds == (0, 1, 2)  # the library's own default: three seeds
    name = create_sweep(ws, SweepConfig(**GRID, name="saved"))
    updates = sweeps_tab.on_show(ws, name)
    shown = dict(zip(sweeps_tab.FIELDS, (u["value"] for u in updates)))
    assert shown["task"] == "wordproblems" and shown["sizes"] == "8, 16" and shown["seeds"] == "0"
    assert form_values(sweep_from_form(shown)) == form_values(load_sweep(ws, name))
