"""Data efficiency, the paper's central claim, on the built-in word problems: ``standard`` vs ``dss``.

    .venv/bin/python bench/data_efficiency.py                 # the full grid (~50 min on 2 CPU cores); writes
                                                              # bench/results/data_efficiency.{json,md,html}
    .venv/bin/python bench/data_efficiency.py --steps 200 --seeds 0,1   # a reduced grid
    .venv/bin/python bench/data_efficiency.py --smoke         # a seconds-long version (used by the tests)

Both methods train the ``tiny`` student at each training-set fraction and seed for the same number of steps (a
smaller slice is seen more often, as in the paper), through the library's ``train_student``; each student is
scored on the same test split by equation value match. The builtin teacher's accuracy on that test split is the
reference line. Reported per cell: mean ± standard deviation of test accuracy over seeds, and whether the paper's
best case holds: ``dss`` with the smallest fraction at least as accurate as ``standard`` with all the data.
The figure is a self-contained HTML file (plotly.js inline, no CDN), plus a PNG when ``kaleido`` is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.core.store import Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402
from workbench.distill.config import TrainConfig  # noqa: E402
from workbench.distill.runs import train_student  # noqa: E402
from workbench.rationales.generation import generate_rationales  # noqa: E402
from workbench.rationales.teachers import get_teacher  # noqa: E402
from workbench.results import plots  # noqa: E402

METHODS = ("standard", "dss")


def answered_wordproblems(store: Store, *, n_train: int, n_valid: int, n_test: int) -> float:
    """The built-in word problems with the builtin teacher's answers on train and test; its test accuracy."""
    task = load_task("wordproblems", store, n_train=n_train, n_valid=n_valid, n_test=n_test)
    teacher = get_teacher("builtin")
    generate_rationales(store, task, teacher)
    return generate_rationales(store, task, teacher, split="test")["teacher_accuracy"]


def run_grid(store: Store, *, fractions: list[float], seeds: list[int], steps: int, n_test: int,
             log=print, partial: Path | None = None) -> list[dict]:
    """Every cell in the given order; each finished point is also appended to ``partial`` (JSON lines), so an
    interrupted grid keeps what it measured."""
    points = []
    for fraction in fractions:
        for seed in seeds:
            for method in METHODS:
                cfg = TrainConfig(task="wordproblems", method=method, student="tiny", steps=steps,
                                  fraction=fraction, seed=seed, teacher=None if method == "standard" else "builtin",
                                  predict_rationales=False, test_limit=n_test)
                started = time.monotonic()
                r = train_student(store, cfg)
                points.append({"method": method, "fraction": fraction, "seed": seed, "rows": r["training_rows"],
                               "accuracy": r["accuracy"], "train_seconds": r["train_seconds"],
                               "seconds": round(time.monotonic() - started, 1), "run": r["run"]})
                if partial is not None:
                    with partial.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(points[-1]) + "\n")
                log(f"  {method:8} fraction {fraction:<5} seed {seed}: {r['training_rows']:4} rows, accuracy "
                    f"{r['accuracy']:.3f} ({points[-1]['seconds']:.0f} s)")
    return points


def cells(points: list[dict]) -> list[dict]:
    """Mean and spread of accuracy per (method, fraction)."""
    out = []
    for fraction in sorted({p["fraction"] for p in points}):
        for method in METHODS:
            accs = [p["accuracy"] for p in points if p["method"] == method and p["fraction"] == fraction]
            rows = [p["rows"] for p in points if p["method"] == method and p["fraction"] == fraction]
            out.append({"method": method, "fraction": fraction, "n": len(accs), "rows": statistics.median(rows),
                        "mean": statistics.fmean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                        "accuracies": accs})
    return out


def verdict(table: list[dict]) -> dict:
    """The paper's best case: dss at the smallest fraction vs standard at the largest."""
    smallest, largest = min(c["fraction"] for c in table), max(c["fraction"] for c in table)
    cell = {(c["method"], c["fraction"]): c for c in table}
    dss_small, std_full = cell[("dss", smallest)], cell[("standard", largest)]
    gaps = {f: cell[("dss", f)]["mean"] - cell[("standard", f)]["mean"] for f in sorted({c["fraction"] for c in table})}
    return {"dss_smallest_fraction": smallest, "standard_largest_fraction": largest,
            "dss_small_mean": dss_small["mean"], "standard_full_mean": std_full["mean"],
            "paper_best_case_holds": dss_small["mean"] >= std_full["mean"],
            "dss_minus_standard_per_fraction": gaps}


def figure(table: list[dict], teacher: float | None, title: str):
    points = [{"method": c["method"], "fraction": c["fraction"], "accuracy": c["mean"]} for c in table]
    fig = plots.fraction_vs_accuracy(points, teacher=teacher, title=title)
    for trace in fig.data:  # error bars: one standard deviation over seeds
        mine = sorted((c for c in table if c["method"] == trace.name), key=lambda c: c["fraction"])
        trace.error_y = {"type": "data", "array": [c["std"] for c in mine], "visible": True}
    return fig


def render_md(result: dict) -> str:
    v = result["verdict"]
    fr = sorted({c["fraction"] for c in result["cells"]})
    cell = {(c["method"], c["fraction"]): c for c in result["cells"]}
    lines = [f"# Data efficiency on the built-in word problems ({result['machine']})", "",
             f"tiny student, {result['steps']} steps of batch 32 for every cell, seeds {result['seeds']}; test "
             f"accuracy (equation value match) on {result['n_test']} test examples, mean ± std over seeds. "
             f"Builtin teacher on the same test examples: {result['teacher_accuracy']:.3f}. Rows: standard / dss (dss "
             "drops the rows whose teacher answer did not parse).", "",
             "| method | " + " | ".join(f"{100 * f:g}% ({cell[('standard', f)]['rows']:.0f} / {cell[('dss', f)]['rows']:.0f} "
                                      "rows)" for f in fr) + " |",
             "|---|" + "---|" * len(fr)]
    for method in METHODS:
        lines.append(f"| {method} | " + " | ".join(
            f"{cell[(method, f)]['mean']:.3f} ± {cell[(method, f)]['std']:.3f}" for f in fr) + " |")
    lines += ["", f"Paper's best case (dss at {100 * v['dss_smallest_fraction']:g}% >= standard at "
              f"{100 * v['standard_largest_fraction']:g}%): **{'holds' if v['paper_best_case_holds'] else 'does not hold'}**"
              f" ({v['dss_small_mean']:.3f} vs {v['standard_full_mean']:.3f}). dss minus standard per fraction: " +
              ", ".join(f"{100 * float(f):g}%: {g:+.3f}" for f, g in v["dss_minus_standard_per_fraction"].items()) + ".",
              "", f"Whole grid: {result['seconds'] / 60:.1f} min. Figure: `{result['figure']}`.", "",
              f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run (2 fractions, 1 seed, few steps)")
    parser.add_argument("--fractions", default="0.125,1.0,0.25,0.5",
                        help="in the order run: the paper's best case (smallest vs all) first")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps for every cell")
    parser.add_argument("--n-train", type=int, default=2000, help="training examples (100%%)")
    parser.add_argument("--n-test", type=int, default=300, help="test examples")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for the results")
    args = parser.parse_args(argv)
    if args.smoke:
        args.fractions, args.seeds, args.steps, args.n_train, args.n_test = "0.5,1.0", "0,1", 4, 64, 16
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-data-efficiency-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        teacher_acc = answered_wordproblems(store, n_train=args.n_train, n_valid=10, n_test=args.n_test)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        partial = out / "data_efficiency.partial.jsonl"
        partial.unlink(missing_ok=True)
        points = run_grid(store, fractions=fractions, seeds=seeds, steps=args.steps, n_test=args.n_test,
                          partial=partial)
        partial.unlink()
        store.close()
    table = cells(points)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    fig = figure(table, teacher_acc, f"wordproblems, tiny students, {args.steps} steps, {len(seeds)} seed(s)")
    fig.write_html(out / "data_efficiency.html", include_plotlyjs=True)  # inline plotly.js: opens offline
    figure_name = "data_efficiency.html"
    if importlib.util.find_spec("kaleido") is not None:
        fig.write_image(out / "data_efficiency.png")
        figure_name += ", data_efficiency.png"
    result = {"machine": f"{os.cpu_count()} CPU cores (load average {load}), torch {torch.__version__}, "
                         f"{torch.get_num_threads()} thread(s)",
              "smoke": args.smoke, "steps": args.steps, "seeds": seeds, "fractions": fractions,
              "n_train": args.n_train, "n_test": args.n_test, "teacher_accuracy": teacher_acc, "cells": table,
              "verdict": verdict(table), "points": points, "seconds": round(time.monotonic() - started, 1),
              "figure": figure_name,
              "command": " ".join([".venv/bin/python bench/data_efficiency.py",
                                   *(argv if argv is not None else sys.argv[1:])])}
    (out / "data_efficiency.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "data_efficiency.md").write_text(render_md(result), encoding="utf-8")
    print(render_md(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
