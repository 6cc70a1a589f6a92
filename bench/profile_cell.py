"""Where a sweep cell's time goes: teacher answers, loading the student, training steps, evaluation during
training, scoring the test split, saving — for the ``tiny`` student and SmolLM2-135M, with the app's sweep defaults.

    .venv/bin/python bench/profile_cell.py                    # this checkout; bench/results/profile_cell.{json,md}
    git worktree add /tmp/before 033294b                      # the code before this wave, for a before/after table
    .venv/bin/python bench/profile_cell.py --before /tmp/before
    .venv/bin/python bench/profile_cell.py --smoke            # seconds (the tests run it)

Each cell is what the Sweeps tab's grid makes of it (``SweepConfig(...).config_for(cell)`` of the code being
measured: its defaults for test examples, rationale predictions and evaluations), trained by ``train_student`` in a
fresh process and workspace, on ``wordproblems-hard`` with the builtin teacher, 128 rows, 2 epochs. The phases are
measured the same way for every checkout, from the run's own events and summary: teacher (before the run starts),
load (run start to the first step), train (steps, evaluations excluded), evaluate (evaluations during training),
score (the test split), save and the rest (what is left of the wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

PHASES = ("teacher", "load", "train", "evaluate", "score", "save")
CELLS = [("tiny", "standard"), ("tiny", "dss"), ("smollm2-135m", "standard"), ("smollm2-135m", "dss")]


def worker(args) -> dict:
    """One cell, in this process, with whatever ``workbench`` is importable (this checkout or another), in a
    workspace removed afterwards (a SmolLM2 cell leaves gigabytes of checkpoints)."""
    with tempfile.TemporaryDirectory(prefix="bench-cell-") as tmp:
        return _cell(args, Path(tmp))


def _cell(args, folder: Path) -> dict:
    from workbench.core.store import Store
    from workbench.data.tasks import load_task
    from workbench.distill.runs import train_student
    from workbench.distill.sweeps import Cell, SweepConfig

    store = Store.open(folder / "ws")
    sizes = {"n_train": 64, "n_valid": 8, "n_test": 8} if args.smoke else {}
    load_task("wordproblems-hard", store, **sizes)
    sweep = SweepConfig(task="wordproblems-hard", teacher="builtin", methods=(args.method,), rows=(args.rows,),
                        students=(args.student,), seeds=(0,), epochs=args.epochs, min_steps=10 if not args.smoke else 1)
    cell = Cell(args.student, args.method, args.rows, None, 0)
    available = len(store.examples("wordproblems-hard", "train"))
    cfg = sweep.config_for(cell, available, run="cell")
    if args.smoke:
        cfg = cfg.with_(steps=2, batch_size=4)
    events = []
    started = time.time()
    summary = train_student(store, cfg, progress=events.append)
    wall = time.time() - started
    by_kind = {}
    for e in events:
        by_kind.setdefault(e.kind, []).append(e)
    run_start = by_kind["run_started"][0].time
    first_step = by_kind["train_begin"][0].time
    evaluate = sum(e.seconds or 0 for e in by_kind.get("eval", []))
    train = summary["train_seconds"] - evaluate
    score = summary["predict_seconds"]
    phases = {"teacher": run_start - started, "load": first_step - run_start, "train": train, "evaluate": evaluate,
              "score": score}
    phases["save"] = max(0.0, wall - sum(phases.values()))
    return {"student": args.student, "method": args.method, "steps": summary["steps"], "wall": round(wall, 1),
            "phases": {k: round(v, 1) for k, v in phases.items()}, "n_test": summary["n_test"],
            "predict_rationales": cfg.predict_rationales, "eval_every": cfg.eval_every, "accuracy": summary["accuracy"],
            "test_limit": cfg.test_limit, "load_average": os.getloadavg()[0]}


def run_cell(code: Path, student: str, method: str, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--student", student, "--method", method,
           "--rows", str(args.rows), "--epochs", str(args.epochs)] + (["--smoke"] if args.smoke else [])
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(code), timeout=7200)
    if out.returncode != 0:
        raise SystemExit(f"cell {student} {method} failed with {code}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def render_md(result: dict) -> str:
    lines = ["# Where a sweep cell's time goes", "",
             f"`wordproblems-hard`, builtin teacher, {result['rows']} rows, {result['epochs']:g} epochs, the Sweeps "
             f"tab's defaults of each checkout. {result['machine']}. Seconds per phase (share of the cell).", "",
             "| code | student | method | steps | test examples (rationales?) | " + " | ".join(PHASES)
             + " | total | accuracy |", "|---" * (7 + len(PHASES)) + "|"]
    for r in result["cells"]:
        total = r["wall"]
        parts = " | ".join(f"{r['phases'][p]:.0f} ({r['phases'][p] / total:.0%})" for p in PHASES)
        tests = f"{r['n_test']} ({'yes' if r['predict_rationales'] else 'no'})"
        lines.append(f"| {r['code']} | {r['student']} | {r['method']} | {r['steps']} | {tests} | {parts} | "
                     f"{total:.0f} | {r['accuracy']:.2f} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="another checkout (e.g. a git worktree of an older commit) to profile too")
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--cells", default=",".join(f"{s}:{m}" for s, m in CELLS), help="student:method,...")
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny cells, 2 steps, 8 test examples")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--student", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    from results_io import write_results

    cells = [tuple(c.split(":")) for c in args.cells.split(",")]
    if args.smoke:
        cells = [("tiny", "standard"), ("tiny", "dss")]
    codes = [("this", ROOT)] + ([("before", Path(args.before).resolve())] if args.before else [])
    machine = f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the start"
    out = []
    for student, method in cells:
        for label, code in codes:
            r = {"code": label, **run_cell(code, student, method, args)}
            out.append(r)
            print(f"  {label:6} {student:13} {method:8} {r['wall']:7.0f} s  " + "  ".join(
                f"{p} {r['phases'][p]:.0f}" for p in PHASES), flush=True)
    given = [a for a in (argv if argv is not None else sys.argv[1:])]
    if "--out" in given:
        del given[given.index("--out"):given.index("--out") + 2]
    result = {"rows": args.rows, "epochs": args.epochs, "machine": machine + f", {os.getloadavg()[0]:.1f} at the end",
              "cells": out, "command": " ".join(["python bench/profile_cell.py", *given])}
    write_results(args.out, "profile_cell" + ("-smoke" if args.smoke else ""), result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
