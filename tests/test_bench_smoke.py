"""Benchmarks run in seconds with ``--smoke``: they keep working, and their output has the promised fields."""

from __future__ import annotations

import contextlib
import io
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(tmp_path, script: str, *args: str) -> SimpleNamespace:
    """Run a benchmark script as ``python bench/SCRIPT --smoke --out TMP ARGS`` would, in this process (the
    imports of torch and transformers, seconds a script, are paid once per session), and return what it printed.
    Scripts that must run without the app's packages (gpu.py) or through the collector run in their own process."""
    argv = [str(ROOT / "bench" / script), "--smoke", "--out", str(tmp_path), *args]
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv, printed = argv, io.StringIO()
    sys.path.insert(0, str(ROOT / "bench"))  # where a script run from the shell finds results_io
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        assert not stop.code, f"{script} exited {stop.code}: {printed.getvalue()[-3000:]}"
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return SimpleNamespace(stdout=printed.getvalue())


@pytest.mark.slow
def test_throughput_bench_smoke(tmp_path):
    proc = _bench(tmp_path, "throughput.py")
    result = json.loads((tmp_path / "throughput.json").read_text())
    (tiny,) = result["students"]
    for kind in ("paper", "dss", "dss-grouped"):
        m = tiny["median"][kind]
        assert m["examples_per_s"] > 0 and m["tokens_per_s"] > 0 and m["peak_memory_mb"] > 0
    # Same weights, same batch: the paper's two passes and our one give the same loss and gradients.
    assert tiny["same_batch"]["loss_abs_diff"] < 1e-4 and tiny["same_batch"]["grad_max_abs_diff"] < 1e-5
    # Same examples in the same order (the library's default sampler): the same training, whatever the pattern.
    assert tiny["dss"]["held_out_loss_max_rel_diff_per_seed"] < 1e-3
    assert "speed-up vs paper" in proc.stdout and (tmp_path / "throughput.md").is_file()


@pytest.mark.slow
def test_precision_bench_smoke(tmp_path):
    proc = _bench(tmp_path, "precision.py")
    result = json.loads((tmp_path / "precision.json").read_text())
    (cell, *_) = result["cells"]
    for bf16 in ("false", "true"):
        assert cell[bf16]["train_s_per_step"] > 0 and cell[bf16]["score_s_per_example"] > 0
    assert cell["train_speedup"] > 0 and "`auto` picks bf16" in proc.stdout


@pytest.mark.slow
def test_data_efficiency_bench_smoke(tmp_path):
    _bench(tmp_path, "data_efficiency.py")
    result = json.loads((tmp_path / "data_efficiency.json").read_text())
    assert {(c["method"], c["fraction"]) for c in result["cells"]} == {
        (m, f) for m in ("standard", "dss") for f in result["fractions"]}
    assert all(c["n"] == len(result["seeds"]) for c in result["cells"])
    assert 0 < result["teacher_accuracy"] <= 1 and "paper_best_case_holds" in result["verdict"]
    html = (tmp_path / "data_efficiency.html").read_text()
    # Self-contained, opens offline: plotly.js inline, no script loaded from elsewhere.
    assert "Plotly.newPlot" in html and not re.search(r"<script[^>]*\bsrc=", html)


@pytest.mark.slow
def test_first_result_bench_smoke(tmp_path):
    _bench(tmp_path, "first_result.py")
    result = json.loads((tmp_path / "first_result.json").read_text())
    training = result["training"]
    assert training["seconds"] > 0 and training["n_test"] > 0 and training["teacher_accuracy"] is not None
    assert result["form"]["method"] == "dss" and "goal_met" in result
    assert training["estimate"]["seconds"] > 0 and training["measured_over_estimate"] > 0  # said before launch


@pytest.mark.slow
def test_classroom_and_profile_bench_smoke(tmp_path):
    _bench(tmp_path, "classroom.py", "--seeds", "1")
    result = json.loads((tmp_path / "classroom-smoke.json").read_text())
    (variant,) = result["variants"]
    assert variant["wall"] > 0 and variant["estimate"]["seconds"] > 0 and len(variant["cells"]) == 2
    assert all(0 <= c["score_share"] <= 1 for c in variant["cells"]) and len(variant["verdicts"]) == 1
    _bench(tmp_path, "profile_cell.py")
    profile = json.loads((tmp_path / "profile_cell-smoke.json").read_text())
    assert [c["method"] for c in profile["cells"]] == ["standard", "dss"]
    assert all(set(c["phases"]) == {"teacher", "load", "train", "evaluate", "score", "save"} for c in profile["cells"])


# Runs a script as on the GPU machine: `datasets`, `gradio` and `pandas` are not installed there.
WITHOUT_EXTRAS = '''
import importlib.abc, importlib.util, runpy, sys
BLOCKED = {"datasets", "gradio", "pandas"}
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: (
    None if name.split(".")[0] in BLOCKED else _find_spec(name, package))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


@pytest.mark.slow
def test_gpu_bench_smoke_without_datasets_or_gradio(tmp_path):
    proc = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, str(ROOT / "bench" / "gpu.py"), "--smoke", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert set(result["median"]) == {"paper", "paper-bf16", "dss"}
    assert all(m["tflops"] > 0 and 0 < m["mfu"] < 1 for m in result["median"].values())
    assert "MFU" in proc.stdout


@pytest.mark.slow
def test_teachers_bench_smoke_through_run_all(tmp_path):
    """``make bench``'s collector and one script's own fields, in one run (each script has a smoke test here)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--smoke", "--only", "teachers",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(s["script"], s["returncode"]) for s in summary["scripts"]] == [("teachers.py", 0)]
    assert "| hf speed-up" in (tmp_path / "summary.md").read_text()
    result = json.loads((tmp_path / "teachers.json").read_text())
    hf, endpoint = result["hf"], result["endpoint"]
    assert hf["batch_1"]["tokens"] > 0 and hf["speedup"] > 1  # batching helps even at smoke sizes
    assert endpoint["client_max_in_flight"] == 32 and endpoint["server_max_in_flight"] == 32
    assert endpoint["failed_rows"] == 0 and endpoint["requests_sent"] == endpoint["rows"]
    assert endpoint["rerun_requests"] == 0 and endpoint["duplicate_prompts_server_side"] == 0  # the cache


@pytest.mark.slow
def test_numbers_bench_smoke(tmp_path):
    proc = _bench(tmp_path, "number_slots.py")
    result = json.loads((tmp_path / "number_slots.json").read_text())
    assert [r["numbers"] for r in result["runs"]] == ["text", "slots"]
    assert all(0 <= r["accuracy"] <= 1 and r["curve"] for r in result["runs"])
    assert "| slots |" in proc.stdout and (tmp_path / "number_slots.md").is_file()


@pytest.mark.slow
def test_pretrained_bench_smoke(tmp_path):
    proc = _bench(tmp_path, "pretrained.py")
    result = json.loads((tmp_path / "pretrained.json").read_text())
    assert set(result["variants"]) == {"paper", "full", "unpacked", "paper-lora", "lora", "subset"}
    assert all(v["tokens_per_s"] > 0 and v["timed_steps"] >= 1 for v in result["variants"].values())
    v = result["variants"]
    assert v["lora"]["trainable"] < v["full"]["trainable"] and v["subset"]["layers"] < v["full"]["layers"]
    # packed rows compute the question once: fewer positions than the two passes' tokens
    assert v["full"]["padding_overhead"] < 0 < v["unpacked"]["padding_overhead"]
    assert result["same_batch"]["max_abs_diff"] < 1e-4  # the same objective, however the batch is laid out
    assert "two-pass tokens/s" in proc.stdout and (tmp_path / "pretrained.md").is_file()
    _bench(tmp_path, "pretrained.py", "--learn")
    learn = json.loads((tmp_path / "pretrained-learn.json").read_text())
    assert [(r["method"], r["lora_rank"]) for r in learn["runs"]] == [("standard", 0), ("dss", 0), ("dss", 8)]
    assert all(0 <= r["accuracy"] <= 1 and r["n_test"] > 0 for r in learn["runs"])


@pytest.mark.slow
def test_sweeps_bench_smoke(tmp_path):
    _bench(tmp_path, "sweeps.py")
    result = json.loads((tmp_path / "sweep-smoke.json").read_text())
    assert result["done"] == result["total"] == 4 and {t["method"] for t in result["table"]} == {"standard", "dss"}
    assert "| tiny | 16 |" in (tmp_path / "sweep-smoke.md").read_text()


def test_a_bench_sweep_never_resumes_another_grid_under_its_name(tmp_path, capsys, monkeypatch):
    """A saved sweep is resumed only as the grid asked for: ``--name`` of one with another grid is refused before
    anything trains (it used to resume the saved grid and write its results under the new command)."""
    from workbench.core.store import Store
    from workbench.distill.sweeps import SweepConfig, create_sweep

    workspace = tmp_path / "ws"
    create_sweep(Store.open(workspace), SweepConfig(task="wordproblems-hard", teacher="builtin", rows=(8,), seeds=(0,),
                                                     students=("tiny",), steps=3, name="bench-wordproblems"))
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # where the script finds results_io
    main = runpy.run_path(str(ROOT / "bench" / "sweeps.py"), run_name="bench_sweeps")["main"]
    code = main(["--grid", "wordproblems", "--students", "tiny", "--rows", "8,16", "--workspace", str(workspace),
                 "--out", str(tmp_path)])
    assert code == 2 and "holds another grid" in capsys.readouterr().err
    assert not list(tmp_path.glob("sweep-*"))  # nothing trained, no results written


def test_the_alpha_sweep_names_each_side_by_its_alpha(monkeypatch):
    """``--versus``: a sweep that sets α against one that keeps the default (the bench's SVAMP α sweep) is named by
    both α values; the default is read from the training config, which has no instance without a task."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    script = runpy.run_path(str(ROOT / "bench" / "sweeps.py"), run_name="bench_sweeps")
    named = {}

    def fake_versus(store, status, other, a, b):
        named.update(a=a, b=b)
        return []

    import workbench.results.verdict as verdict

    monkeypatch.setattr(verdict, "versus_verdicts", fake_versus)
    mine = {"sweep": "a03", "config": {"settings": {"alpha": 0.3}}, "cells": []}
    script["_versus"].__globals__["sweep_status"] = lambda store, name: {"sweep": name, "config": {"settings": {}},
                                                                        "cells": []}
    assert script["_versus"](None, mine, "bench-svamp") == [] and named == {"a": "α 0.3", "b": "α 0.5"}
