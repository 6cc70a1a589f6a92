"""The paper's data-efficiency claim with a pretrained student, as sweeps (the same library call as the app):

    .venv/bin/python bench/sweeps.py --grid svamp          # SVAMP with PaLM's released rationales, SmolLM2-135M
    .venv/bin/python bench/sweeps.py --grid wordproblems   # built-in hard word problems, rows 8..256, tiny + SmolLM2
    .venv/bin/python bench/sweeps.py --grid svamp --seeds 0,1,2 --epochs 2     # more seeds (hours on a CPU)
    .venv/bin/python bench/sweeps.py --grid wordproblems --rows 8,32,128 --students smollm2-135m   # a sub-grid
    .venv/bin/python bench/sweeps.py --smoke               # seconds: a 2-cell grid with the tiny student

``svamp``: ``standard`` vs ``dss`` at 12.5 / 25 / 50 / 100 % of the paper's own 800 training rows, the same
number of epochs per cell, test accuracy on the paper's 200 test problems by equation value (its metric). The
paper (T5-base, 100 %): standard 62.63, dss with PaLM rationales 65.50. Goal: ``dss`` at <= 50 % of the rows at
least as accurate as ``standard`` at 100 %. ``wordproblems``: absolute row counts on ``wordproblems-hard`` with the
from-scratch ``tiny`` student beside SmolLM2, so the figure shows where pretraining matters.

The sweep lives in a persistent workspace (``--workspace``, default ``~/.cache/workbench/bench-sweeps``), so a run
stopped half-way resumes where it was; results (each cell's accuracy and wall time, means and spreads) are
rewritten after every cell into ``bench/results/sweep-<grid>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.core.store import Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402
from workbench.distill.sweeps import (  # noqa: E402
    SweepConfig,
    create_sweep,
    list_sweeps,
    load_sweep,
    run_sweep,
    sweep_status,
)

PAPER_DATA = ROOT.parent / "shared" / "paper-data"
PAPER = {"standard": 0.6263, "dss": 0.6550}  # T5-base, 100 % of SVAMP (the paper's Table/Figure)
SVAMP_TEST = 200  # the test problems of the paper's SVAMP split


def grid(args) -> tuple[SweepConfig, str]:
    seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.smoke:
        return SweepConfig(task="wordproblems", teacher="builtin", rows=(8, 16), seeds=(0,), students=("tiny",),
                           steps=3, test_limit=6, settings={"batch_size": 4, "predict_rationales": False},
                           name=f"smoke-{int(time.time())}"), "smoke"
    settings = {"predict_rationales": False, "save_every": 100_000}
    if args.alpha is not None:  # dss's weight on the label loss (the α sweep); standard ignores it
        settings["alpha"] = args.alpha
    methods = {"methods": tuple(args.methods.split(","))} if args.methods else {}
    if args.grid == "svamp":
        students = tuple(args.students.split(",")) if args.students else ("smollm2-135m",)
        fractions = tuple(float(f) for f in args.fractions.split(",")) if args.fractions else (0.125, 0.25, 0.5, 1.0)
        return SweepConfig(task="svamp", teacher="released:palm-540b", fractions=fractions,
                           seeds=seeds, students=students, epochs=args.epochs, min_steps=10,
                           test_limit=SVAMP_TEST,  # all of the paper's test problems, not the app's 100
                           settings=settings, name=args.name or "bench-svamp", **methods), "svamp"
    students = tuple(args.students.split(",")) if args.students else ("tiny", "smollm2-135m")
    rows = tuple(int(r) for r in args.rows.split(",")) if args.rows else (8, 16, 32, 64, 128, 256)
    return SweepConfig(task="wordproblems-hard", teacher="builtin", rows=rows, seeds=seeds,
                       students=students, epochs=args.epochs, min_steps=20, test_limit=100, settings=settings, **methods,
                       name=args.name or "bench-wordproblems"), "wordproblems"


def summarise(store: Store, status: dict, label: str, started: float, command: str, versus: str | None = None) -> dict:
    """The table (mean and spread over seeds per cell of the grid) and the library's verdict per size: the paired
    bootstrap interval of the difference and its sentence, the same as the Sweeps tab and ``workbench sweep``."""
    from workbench.results.verdict import one_seed_caveat, sweep_verdicts

    groups: dict = {}
    for c in status["cells"]:
        if c["status"] == "done":
            size = c["rows"] if c["rows"] is not None else c["fraction"]
            groups.setdefault((c["student"], size, c["method"]), []).append(c)
    table = []
    for (student, size, method), cells in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        accs = [c["accuracy"] for c in cells]
        table.append({"student": student, "size": size, "method": method, "rows": cells[0]["training_rows"],
                      "n": len(accs), "mean": statistics.mean(accs),
                      "spread": (max(accs) - min(accs)) if len(accs) > 1 else None,
                      "seconds": [c["train_seconds"] for c in cells], "steps": cells[0]["steps"]})
    return {"grid": label, "machine": f"{os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}",
            "done": status["done"], "total": status["total"], "teacher_accuracy": status["teacher_accuracy"],
            "wall_seconds": round(time.monotonic() - started, 1), "table": table, "cells": status["cells"],
            "paper_svamp_100pct": PAPER if label == "svamp" else None, "command": command,
            "verdicts": [v.to_dict() for v in sweep_verdicts(store, status)],
            "seed_caveat": one_seed_caveat(len(status["config"]["seeds"])),
            "versus": versus and [v.to_dict() for v in _versus(store, status, versus)]}


def _versus(store: Store, status: dict, other_name: str) -> list:
    """This sweep's cells against the same cells of another sweep (same rows, seeds and test examples), named by
    their α when that is what differs, else by the sweeps' names."""
    from dataclasses import fields

    from workbench.distill.config import TrainConfig
    from workbench.results.verdict import versus_verdicts

    other = sweep_status(store, other_name)
    default = next(f.default for f in fields(TrainConfig) if f.name == "alpha")
    alphas = [s["config"]["settings"].get("alpha", default) for s in (status, other)]
    a, b = (f"α {x:g}" for x in alphas) if alphas[0] != alphas[1] else (status["sweep"], other_name)
    return versus_verdicts(store, status, other, a, b)


def render_md(r: dict) -> str:
    teacher = "–" if r["teacher_accuracy"] is None else f"{r['teacher_accuracy']:.3f}"
    lines = [f"# Sweep `{r['grid']}` ({r['machine']})", "",
             f"{r['done']}/{r['total']} cells done in {r['wall_seconds']:.0f} s of this invocation; teacher on the "
             f"same test examples: {teacher}.", "",
             "| student | size | rows | method | accuracy (mean) | spread over seeds | seeds | steps | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in r["table"]:
        spread = "–" if t["spread"] is None else f"{t['spread']:.3f}"
        secs = ", ".join(f"{s:.0f}" for s in t["seconds"] if s is not None)
        lines.append(f"| {t['student']} | {t['size']} | {t['rows']} | {t['method']} | {t['mean']:.3f} | {spread} | "
                     f"{t['n']} | {t['steps']} | {secs} |")
    if r.get("verdicts"):
        lines += ["", "Verdicts (paired bootstrap over seeds and the same test examples; `workbench.results.verdict`):",
                  ""]
        lines += [f"- {v['sentence']}" for v in r["verdicts"]]
        if r.get("seed_caveat"):
            lines += [f"- {r['seed_caveat']}"]
    if r.get("versus"):
        lines += ["", "Against the same cells of another sweep (same rows, seeds and test examples):", ""]
        lines += [f"- {v['a']} vs {v['b']}: {v['sentence']}" for v in r["versus"]]
    if r.get("paper_svamp_100pct"):
        lines += ["", f"Paper, T5-base on 100 % of SVAMP: standard {PAPER['standard']:.4f}, dss {PAPER['dss']:.4f}."]
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", choices=("svamp", "wordproblems"), default="svamp")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over the rows in every cell")
    parser.add_argument("--students", help="comma-separated (default: the grid's)")
    parser.add_argument("--rows", help="wordproblems: comma-separated row counts (default 8,16,32,64,128,256)")
    parser.add_argument("--name", help="sweep name (default bench-<grid>); an existing one is resumed")
    parser.add_argument("--workspace", default=os.path.expanduser("~/.cache/workbench/bench-sweeps"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--alpha", type=float, help="dss: weight of the label loss (default the method's, 0.5)")
    parser.add_argument("--fractions", help="svamp: comma-separated fractions (default 0.125,0.25,0.5,1)")
    parser.add_argument("--methods", help="comma-separated (default standard,dss)")
    parser.add_argument("--tag", help="write sweep-<grid>-TAG.json/.md (another variant of a grid)")
    parser.add_argument("--versus", metavar="SWEEP", help="also compare every cell with the same cell of another "
                        "sweep of the workspace (the α sweep: --alpha 0.3 --versus bench-svamp)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python bench/sweeps.py", *(argv if argv is not None else sys.argv[1:])])
    if args.smoke:  # a workspace of its own, removed afterwards
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as tmp:
            args.workspace = tmp
            return _run(args, command)
    return _run(args, command)


def _run(args, command: str) -> int:
    store = Store.open(args.workspace)
    sweep, label = grid(args)
    if label == "svamp" and not store.has_task("svamp"):
        from workbench.imports.paper import import_paper

        import_paper(store, PAPER_DATA / "svamp", "svamp")
    elif label != "svamp":
        load_task(sweep.task, store, **({"n_train": 64, "n_valid": 4, "n_test": 8} if args.smoke else {}))
    if sweep.name in list_sweeps(store):  # resume it, but only as the grid asked for: never another one silently
        saved, asked = (json.dumps(c.to_dict(), sort_keys=True) for c in (load_sweep(store, sweep.name), sweep))
        if saved != asked:
            print(f"sweep {sweep.name!r} in {args.workspace} holds another grid than the one asked for; pass --name "
                  f"to start this one beside it (saved: {saved})", file=sys.stderr)
            return 2
        name = sweep.name
    else:
        name = create_sweep(store, sweep)
    started = time.monotonic()
    out_name = f"sweep-{label}" + (f"-{args.tag}" if args.tag else "")

    def after_cell(event) -> None:  # the results so far, after every finished cell
        if event.kind == "finished":
            summary = summarise(store, sweep_status(store, name), label, started, command, args.versus)
            write_results(args.out, out_name, summary, render_md)

    status = run_sweep(store, name, progress=after_cell)
    write_results(args.out, out_name, summarise(store, status, label, started, command, args.versus), render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
