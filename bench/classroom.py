"""The claim in one class period: the classroom sweep as the Sweeps tab starts it with its defaults, end to end.

    .venv/bin/python bench/classroom.py               # 1 seed and 3 seeds; bench/results/classroom.{json,md}
    .venv/bin/python bench/classroom.py --seeds 1     # only the 1-seed sweep
    .venv/bin/python bench/classroom.py --smoke       # seconds: the tiny student, 2 cells (the tests run it)

Each variant starts in a fresh workspace: the form's estimate first (measured pace or a calibration of the student
on this machine, as the tab shows it before launch; the calibration's own seconds are not on the clock), then the
sweep is started as the tab's Start button does (``start_sweep``: a detached job), and the clock runs until the
job has finished every cell. Targets (issue 22, 2 quiet CPU cores): <= 10 minutes with 1 seed, <= 30 with 3, test
scoring <= 20 % of each cell, the estimate within a factor of 1.5 of the measured time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.builtin.demo import CLASSROOM_SWEEP  # noqa: E402
from workbench.core.jobs import wait_job  # noqa: E402
from workbench.core.store import Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402
from workbench.distill.sweeps import estimate_sweep, start_sweep  # noqa: E402
from workbench.results.sweep_report import TIME_PARTS, sweep_report  # noqa: E402

TARGET = {1: 600, 3: 1800}


def run_variant(seeds: int, smoke: bool, log=print) -> dict:
    sweep = dataclasses.replace(CLASSROOM_SWEEP, seeds=tuple(range(seeds)), name=f"classroom-{seeds}")
    sizes = {}
    if smoke:
        sweep = dataclasses.replace(sweep, students=("tiny",), rows=(8,), epochs=None, steps=2, test_limit=4)
        sizes = {"n_train": 32, "n_valid": 4, "n_test": 8}
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        load_task(sweep.task, store, **sizes)
        t0 = time.monotonic()
        estimate = estimate_sweep(store, sweep)  # what the form says before launch
        calibration_seconds = time.monotonic() - t0
        log(f"  {seeds} seed(s): estimate {estimate['text']} ({calibration_seconds:.0f} s to make)")
        started = time.monotonic()
        name, job = start_sweep(store, sweep)
        row = wait_job(store, job, timeout=4 * 3600, poll=1.0)
        wall = time.monotonic() - started
        if row["status"] != "done":
            raise SystemExit(f"the classroom sweep {row['status']}: {row.get('error')}")
        report = sweep_report(store, name)
        cells = []
        for c in report.cells:
            phases = {k: c.get(k) or 0.0 for k in TIME_PARTS}
            cell_total = sum(phases.values())
            cells.append({**{k: c[k] for k in ("run", "method", "rows", "seed", "accuracy", "steps")}, **phases,
                          "score_share": phases["score"] / cell_total if cell_total else None})
        store.close()
    return {"seeds": seeds, "wall": round(wall, 1), "estimate": estimate, "calibration_seconds": round(
        calibration_seconds, 1), "measured_over_estimate": round(wall / estimate["seconds"], 2),
            "target": TARGET.get(seeds), "cells": cells, "verdicts": [v.sentence for v in report.verdicts],
            "max_score_share": max(c["score_share"] or 0 for c in cells), "load_average": os.getloadavg()[0]}


def render_md(result: dict) -> str:
    lines = ["# The classroom sweep, end to end (the Sweeps tab's defaults)", "",
             f"SmolLM2-135M on `wordproblems-hard`, builtin teacher, standard vs dss at 32 and 128 rows, 2 epochs, "
             f"scored on the first 100 test problems. {result['machine']}.", "",
             "| seeds | cells | measured | target | estimate before launch | measured / estimate | scoring share "
             "(worst cell) |", "|---|---|---|---|---|---|---|"]
    for v in result["variants"]:
        e = v["estimate"]
        target = f"<= {v['target'] / 60:.0f} min" if v["target"] else "-"
        lines.append(f"| {v['seeds']} | {len(v['cells'])} | {v['wall'] / 60:.1f} min | {target} | "
                     f"{e['seconds'] / 60:.1f} min ({e['low'] / 60:.1f}–{e['high'] / 60:.1f}, {e['source']}) | "
                     f"{v['measured_over_estimate']:.2f} | {v['max_score_share']:.0%} |")
    for v in result["variants"]:
        lines += ["", f"**{v['seeds']} seed(s)**, seconds per phase:", "",
                  "| cell | steps | " + " | ".join(TIME_PARTS) + " | accuracy |", "|---" * (3 + len(TIME_PARTS)) + "|"]
        for c in v["cells"]:
            lines.append(f"| {c['run']} | {c['steps']} | " + " | ".join(f"{c[k]:.0f}" for k in TIME_PARTS)
                         + f" | {c['accuracy']:.2f} |")
        lines += [""] + [f"- {s}" for s in v["verdicts"]]
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,3", help="variants: numbers of seeds, comma-separated")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    start = f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the start"
    variants = [run_variant(int(n), args.smoke) for n in args.seeds.split(",")]
    given = [a for a in (argv if argv is not None else sys.argv[1:])]
    if "--out" in given:
        del given[given.index("--out"):given.index("--out") + 2]
    result = {"machine": f"{start}, {os.getloadavg()[0]:.1f} at the end", "variants": variants, "smoke": args.smoke,
              "command": " ".join(["python bench/classroom.py", *given])}
    write_results(args.out, "classroom" + ("-smoke" if args.smoke else ""), result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
