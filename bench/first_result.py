"""Time to first result: from launching training in the embedded demo to a scored student.

    .venv/bin/python bench/first_result.py            # writes bench/results/first_result.json and .md
    .venv/bin/python bench/first_result.py --method standard --tag standard   # another setting of the Train form
    .venv/bin/python bench/first_result.py --smoke    # a seconds-long version (used by the tests)

What the app does, through the same calls: a fresh workspace gets the demo task (``prepare_demo``); the builtin
teacher answers the train and test splits as ``generate`` jobs (the Rationales tab; timed, but before the clock
of this benchmark starts); then the demo recipe (``workbench.builtin.demo``, whose ``form_defaults`` the Train tab
shows) is launched as a detached ``train`` job (``start_job``, what the Train button calls), and the
clock runs until the job is done and its student scored on the test split (``wait_job``). Goal: <= 120 s on 2 CPU
cores, with the student more accurate than the builtin teacher on the same test examples.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.builtin.demo import DEMO, form_defaults  # noqa: E402
from workbench.core.jobs import start_job, wait_job  # noqa: E402
from workbench.core.store import Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402

DEMO_TASK, DEMO_TEACHER = DEMO.task, DEMO.teacher
# The form fields a user changes most; any TrainConfig field could be added here.
FORM_FIELDS = ("student", "method", "numbers", "alpha", "fraction", "steps", "batch_size", "learning_rate", "seed",
               "eval_every", "test_limit")

GOAL_SECONDS = 120
# The README's teaching example, asked of the trained student and the teacher as the Compare tab's Ask both does:
# the README says what the demo's student answers, and this run is where that sentence is checked.
README_EXAMPLE = "Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?"


def prepare(store: Store, task_sizes: dict | None) -> dict:
    """The demo task with the teacher's answers on train and test, as the Rationales tab makes them (as jobs)."""
    load_task(DEMO_TASK, store, **(task_sizes or {}))  # what the app does on first start (smoke: smaller)
    out = {}
    for split in ("train", "test"):
        started = time.monotonic()
        job = wait_job(store, start_job(store, "generate", {"task": DEMO_TASK, "teacher": DEMO_TEACHER,
                                                            "split": split, "limit": None}), timeout=600)
        if job["status"] != "done":
            raise RuntimeError(f"generation on {split} {job['status']}: {job.get('error')}")
        out[split] = {"seconds": round(time.monotonic() - started, 1), **job["progress"]["result"]}
    return out


def time_training(store: Store, form: dict, timeout: float) -> dict:
    """The estimate the Train form shows before launch (a calibration of the student here, not timed), then launch
    the form's config as the Train button does; seconds until the student is scored."""
    from workbench.distill.estimates import estimate_run

    cfg = DEMO.config(**form).resolved()
    estimate = estimate_run(store, cfg, calibrate=True)
    started = time.monotonic()
    job_id = start_job(store, "train", cfg.to_dict())
    job = wait_job(store, job_id, timeout=timeout, poll=0.2)
    seconds = time.monotonic() - started
    if job["status"] != "done":
        raise RuntimeError(f"training {job['status']}: {job.get('error')}")
    result = job["progress"]["result"]
    return {"seconds": round(seconds, 1), "config": cfg.to_dict(), "accuracy": result["accuracy"],
            "teacher_accuracy": result["teacher_accuracy"], "n_test": result["n_test"],
            "train_seconds": result["train_seconds"], "predict_seconds": result["predict_seconds"],
            "other_seconds": round(seconds - result["train_seconds"] - result["predict_seconds"], 1),
            "eval_history": result.get("eval_history"), "run": result["run"], "timings": result.get("timings"),
            "estimate": estimate.to_dict(), "measured_over_estimate": round(seconds / estimate.seconds, 2),
            "readme_example": ask_readme_example(store, result["run"])}


def ask_readme_example(store: Store, run: str) -> dict:
    from workbench.results.ask import ask_both

    asked = ask_both(store, run, README_EXAMPLE)
    return {side.who: {"label": side.label, "value": side.value_text, "rationale": side.rationale,
                       "steps": side.steps_text()} for side in (asked.student, asked.teacher)}


def render_md(result: dict) -> str:
    t = result["training"]
    beats = t["accuracy"] > t["teacher_accuracy"]
    form = ", ".join(f"{k}={v}" for k, v in result["form"].items())
    return "\n".join([
        f"# Time to first result in the demo ({result['machine']})", "",
        f"Train form: {form}.", "",
        "| measure | value | goal |", "|---|---|---|",
        f"| launch → scored student | {t['seconds']:.1f} s | <= {GOAL_SECONDS} s |",
        f"| estimate before launch ({t['estimate']['source']}) | {t['estimate']['seconds']:.0f} s "
        f"({t['estimate']['low']:.0f}–{t['estimate']['high']:.0f}); measured / estimate "
        f"{t['measured_over_estimate']:.2f} | within 1.5x |",
        f"| of which training / scoring the test split / start-up and the rest | {t['train_seconds']:.1f} / "
        f"{t['predict_seconds']:.1f} / {t['other_seconds']:.1f} s | |",
        f"| student test accuracy ({t['n_test']} examples) | {t['accuracy']:.3f} | > teacher |",
        f"| builtin teacher, same examples | {t['teacher_accuracy']:.3f} | |",
        f"| goal met | {'yes' if t['seconds'] <= GOAL_SECONDS and beats else 'no'} | |",
        f"| before the clock: teacher answers train / test | {result['generation']['train']['seconds']:.1f} / "
        f"{result['generation']['test']['seconds']:.1f} s | |", "",
        f"The README's example, asked as the Compare tab's *Ask both* does: \"{README_EXAMPLE}\"", "",
        "| who | label | value | steps of its rationale |", "|---|---|---|---|",
        *(f"| {who} | `{a['label']}` | {a['value']} | {a['steps']} |"
          for who, a in t.get("readme_example", {}).items()), "",
        f"Command: `{result['command']}`", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run (small task, few steps)")
    defaults = form_defaults()
    for key in FORM_FIELDS:  # every Train form field can be changed; the defaults are the app's
        if key != "student":
            parser.add_argument("--" + key.replace("_", "-"), type=type(defaults[key] or 0), default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for first_result.json/.md")
    parser.add_argument("--tag", help="write first_result-TAG.json/.md instead (another setting of the form)")
    args = parser.parse_args(argv)
    form = {k: defaults[k] for k in FORM_FIELDS}
    form.update({k: getattr(args, k) for k in FORM_FIELDS if getattr(args, k, None) is not None})
    sizes = None
    if args.smoke:
        form.update(steps=4, eval_every=2, test_limit=8)
        sizes = {"n_train": 64, "n_valid": 8, "n_test": 8}
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-first-result-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        generation = prepare(store, sizes)
        training = time_training(store, form, timeout=900)
        if training["teacher_accuracy"] is None:  # standard learns gold labels: the teacher is not in its run
            training["teacher_accuracy"] = generation["test"]["teacher_accuracy"]
        store.close()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {"machine": f"{os.cpu_count()} CPU cores (load average {load}), torch {torch.__version__}",
              "smoke": args.smoke, "form": form, "generation": generation, "training": training,
              "goal_seconds": GOAL_SECONDS,
              "goal_met": training["seconds"] <= GOAL_SECONDS and training["accuracy"] > training["teacher_accuracy"],
              "command": " ".join([".venv/bin/python bench/first_result.py",
                                   *(argv if argv is not None else sys.argv[1:])])}
    write_results(args.out, f"first_result-{args.tag}" if args.tag else "first_result", result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
