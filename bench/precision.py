"""bf16 mixed precision against float32 on this machine: seconds per training step and per scored test example.

    .venv/bin/python bench/precision.py                  # tiny, small and SmolLM2; bench/results/precision.{json,md}
    .venv/bin/python bench/precision.py --students smollm2-135m --methods dss --steps 16
    .venv/bin/python bench/precision.py --smoke          # seconds: the tiny student, 2 steps (the tests run it)

Each cell is a real run (``train_student``: the Trainer, the method's loss, test scoring) of one student and method
with ``bf16`` false and then true, on the same rows, seed and steps; the two differ only in precision (weights
stay float32 either way: autocast). Per cell: training seconds per step, scoring seconds per test example (labels
only, as a sweep scores), the accuracy each reached (one seed, few steps: a sanity check that bf16 learns the
same, not a measurement of accuracy), and the speed-up. What ``bf16 auto`` picks on this machine is printed with
the table: the rule it follows (:func:`workbench.distill.students.device_info`) was set from these figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.core.store import Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402
from workbench.distill.config import TrainConfig  # noqa: E402
from workbench.distill.runs import train_student  # noqa: E402
from workbench.distill.students import cpu_bf16, device_info  # noqa: E402
from workbench.rationales.generation import generate_rationales  # noqa: E402
from workbench.rationales.teachers.base import get_teacher  # noqa: E402

# Per student: its task and the steps, batch and test examples of one cell (a pretrained student is slow here).
PLANS = {"tiny": ("wordproblems", 60, 32, 300), "small": ("wordproblems", 30, 32, 300),
         "smollm2-135m": ("wordproblems-hard", 10, 8, 100)}


def run_cell(store: Store, student: str, method: str, bf16: str, steps: int, batch: int, test_limit: int) -> dict:
    task = PLANS.get(student, PLANS["smollm2-135m"])[0]
    cfg = TrainConfig(task=task, method=method, student=student, teacher="builtin", steps=steps, batch_size=batch,
                      seed=0, bf16=bf16, eval_every=0, save_every=10_000, predict_rationales=False,
                      test_limit=test_limit)
    summary = train_student(store, cfg)
    t = summary["timings"]
    return {"train_s_per_step": round(t["train"] / steps, 3), "score_s_per_example": round(t["score"] / test_limit, 4),
            "accuracy": summary["accuracy"], "timings": t}


def run(students: list[str], methods: list[str], steps: int | None, smoke: bool, log=print) -> dict:
    cells = []
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        sizes = {"n_train": 64, "n_valid": 4, "n_test": 8} if smoke else {}
        for task in sorted({PLANS.get(s, PLANS["smollm2-135m"])[0] for s in students}):
            load_task(task, store, **sizes)
            generate_rationales(store, load_task(task, store), get_teacher("builtin", store=store))
        for student in students:
            _, plan_steps, batch, test_limit = PLANS.get(student, PLANS["smollm2-135m"])
            n = 2 if smoke else (steps or plan_steps)
            test_limit = 4 if smoke else test_limit
            for method in methods:
                row = {"student": student, "method": method, "steps": n, "batch": batch, "test_examples": test_limit,
                       "auto_picks_bf16": device_info("auto", student)["bf16"]}
                for bf16 in ("false", "true"):
                    row[bf16] = run_cell(store, student, method, bf16, n, batch, test_limit)
                    log(f"  {student} {method} bf16={bf16}: {row[bf16]['train_s_per_step']} s/step, "
                        f"{row[bf16]['score_s_per_example']} s/example, accuracy {row[bf16]['accuracy']}")
                row["train_speedup"] = round(row["false"]["train_s_per_step"] / row["true"]["train_s_per_step"], 2)
                row["score_speedup"] = round(row["false"]["score_s_per_example"]
                                             / max(row["true"]["score_s_per_example"], 1e-6), 2)
                cells.append(row)
        store.close()
    cpu = platform.processor() or platform.machine()
    machine = f"{os.cpu_count()} CPU cores ({cpu}), native bf16: {'yes' if cpu_bf16() else 'no'}"
    return {"cells": cells, "cpu_bf16": cpu_bf16(), "machine": machine, "smoke": smoke}


def render_md(result: dict) -> str:
    lines = ["# bf16 mixed precision vs float32", "", f"{result['machine']}. One real run per cell (same rows, seed and "
             "steps; labels-only test scoring). Accuracy: one seed and few steps, a sanity check only.", "",
             "| student | method | steps x batch | float32 s/step | bf16 s/step | speed-up | float32 s/test example | "
             "bf16 s/test example | speed-up | accuracy float32 / bf16 | `auto` picks bf16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["cells"]:
        f, b = c["false"], c["true"]
        lines.append(f"| {c['student']} | {c['method']} | {c['steps']} x {c['batch']} | {f['train_s_per_step']} | "
                     f"{b['train_s_per_step']} | {c['train_speedup']}x | {f['score_s_per_example']} | "
                     f"{b['score_s_per_example']} | {c['score_speedup']}x | {f['accuracy']:.2f} / {b['accuracy']:.2f} | "
                     f"{'yes' if c['auto_picks_bf16'] else 'no'} |")
    lines += ["", "Command: `python bench/precision.py`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", default="tiny,small,smollm2-135m")
    parser.add_argument("--methods", default="standard,dss")
    parser.add_argument("--steps", type=int, help="steps per cell (default: each student's plan)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    students = ["tiny"] if args.smoke else args.students.split(",")
    result = run(students, args.methods.split(","), args.steps, args.smoke)
    write_results(args.out, "precision", result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
