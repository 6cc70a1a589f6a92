"""Numbers as text or as slots (``N0``, ``N1``, …) for a student trained from scratch on the built-in word problems.

    .venv/bin/python bench/number_slots.py            # ~4 min on 2 CPU cores; writes bench/results/number_slots.{json,md}
    .venv/bin/python bench/number_slots.py --label-source teacher --tag teacher-labels
    .venv/bin/python bench/number_slots.py --smoke    # a seconds-long version (used by the tests)

The same student, data, seed and steps, once with ``numbers=text`` and once with ``numbers=slots``, through the
library's ``train_student``; the valid accuracy along the way (every ``steps / 6``) and the test accuracy at the
end, by equation value match, with the builtin teacher's accuracy on the same test examples as the reference.
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

from data_efficiency import answered_wordproblems  # noqa: E402 - the same answered demo data
from results_io import write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.core.store import Store  # noqa: E402
from workbench.distill.config import TrainConfig  # noqa: E402
from workbench.distill.runs import train_student  # noqa: E402

MODES = ("text", "slots")


def render_md(result: dict) -> str:
    a = result["args"]
    steps = [p["step"] for p in result["runs"][0]["curve"]]
    lines = [f"# Numbers as text or as slots ({result['machine']})", "",
             f"tiny student, method {a['method']}, labels from {a['label_source']}, {a['n_train']} training "
             f"examples, {a['steps']} steps of batch 32, seed {a['seed']}; valid accuracy on 200 examples along the "
             f"way, test accuracy on {a['n_test']}. Builtin teacher on the same test examples: "
             f"{result['teacher_accuracy']:.3f}.", "",
             "| numbers | " + " | ".join(f"valid @ {s}" for s in steps) + " | test accuracy | training s |",
             "|---|" + "---|" * (len(steps) + 2)]
    for r in result["runs"]:
        lines.append(f"| {r['numbers']} | " + " | ".join(f"{p['accuracy']:.3f}" for p in r["curve"]) +
                     f" | {r['accuracy']:.3f} | {r['train_seconds']:.0f} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run (small task, few steps)")
    parser.add_argument("--method", default="standard", choices=("standard", "dss"))
    parser.add_argument("--label-source", default="gold", choices=("gold", "teacher"))
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for number_slots.json/.md")
    parser.add_argument("--tag", help="write number_slots-TAG.json/.md instead (another setting)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.n_train, args.n_test = 6, 64, 16
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-numbers-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        teacher_acc = answered_wordproblems(store, n_train=args.n_train, n_valid=200, n_test=args.n_test)
        for mode in MODES:
            cfg = TrainConfig(task="wordproblems", method=args.method, student="tiny", teacher="builtin",
                              label_source=args.label_source, numbers=mode, steps=args.steps, seed=args.seed,
                              eval_every=max(1, args.steps // 6), save_every=10**6, predict_rationales=False)
            started = time.monotonic()
            r = train_student(store, cfg)
            runs.append({"numbers": mode, "accuracy": r["accuracy"], "train_seconds": r["train_seconds"],
                         "seconds": round(time.monotonic() - started, 1),
                         "curve": [{"step": s, "accuracy": a} for s, a in r["eval_history"]]})
            print(f"  numbers={mode}: test accuracy {r['accuracy']:.3f} ({runs[-1]['seconds']:.0f} s)", flush=True)
        store.close()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {"machine": f"{os.cpu_count()} CPU cores (load average {load}), torch {torch.__version__}",
              "smoke": args.smoke, "args": {k: v for k, v in vars(args).items() if k not in ("out", "smoke", "tag")},
              "teacher_accuracy": teacher_acc, "runs": runs,
              "command": " ".join([".venv/bin/python bench/number_slots.py", *(argv if argv is not None else sys.argv[1:])])}
    write_results(args.out, f"number_slots-{args.tag}" if args.tag else "number_slots", result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
