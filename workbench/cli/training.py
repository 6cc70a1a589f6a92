"""Training verbs: train (and resume), eval, compare, runs.

    workbench train --task wordproblems --method dss --student tiny --teacher builtin --steps 600 --json
    workbench train --resume RUN_NAME
    workbench eval --run RUN_NAME --json
    workbench compare --run RUN_NAME --limit 20 --json
    workbench runs
"""

from __future__ import annotations

import sys

from workbench.cli import add_common, open_store
from workbench.core.bounds import LIMIT


def register(sub) -> None:
    from workbench.distill.config import add_config_arguments

    p = add_common(sub.add_parser("train", help="train a student (or --resume a stopped run)"))
    add_config_arguments(p)
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint with its saved config")
    p.add_argument("--estimate", action="store_true",
                   help="only say how long the run would take (per phase; calibrates the student here once)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_train)

    p = add_common(sub.add_parser("eval", help="score a run on a split by the task metric"))
    p.add_argument("--run", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=LIMIT, help=LIMIT.help("first N examples of the split"))
    p.set_defaults(func=cmd_eval)

    p = add_common(sub.add_parser("compare", help="teacher vs student per test example, with summaries"))
    p.add_argument("--run", required=True)
    p.add_argument("--limit", type=LIMIT, help=LIMIT.help("first N test examples"))
    p.add_argument("--no-teacher-generation", action="store_true",
                   help="never ask the built-in teacher for missing test answers")
    p.set_defaults(func=cmd_compare)

    p = add_common(sub.add_parser("runs", help="list the runs of this workspace"))
    p.add_argument("--task")
    p.set_defaults(func=cmd_runs)


def _printer(quiet: bool, as_json: bool = False):
    """Progress on stderr: one line per typed event worth one (a phase's start and end, steps, evaluations), or
    with ``--json`` every event as a JSON line (phases with their progress and ETA, at most one a second)."""
    import json
    import time

    from workbench.core.events import Phase

    last = {"phase": 0.0}

    def progress(event) -> None:
        if quiet:
            return
        if as_json:
            if isinstance(event, Phase) and 0 < event.done < event.total:
                now = time.monotonic()
                if now - last["phase"] < 1.0:
                    return
                last["phase"] = now
            print(json.dumps(event.to_dict(), default=str), file=sys.stderr, flush=True)
            return
        line = event.line()
        if line:
            print(line, file=sys.stderr, flush=True)

    return progress


def cmd_train(args) -> dict:
    from workbench.distill.config import config_from_args
    from workbench.distill.runs import resume_run, train_student

    store = open_store(args)
    progress = _printer(args.quiet, getattr(args, "json", False))
    if args.estimate:
        from workbench.distill.estimates import estimate_run

        cfg = config_from_args(args)
        est = estimate_run(store, cfg, calibrate=True)
        args.human = lambda e: f"{e['text']}; per phase: " + ", ".join(
            f"{k} {v:.0f} s" for k, v in e["parts"].items())
        return {**est.to_dict(), "steps": cfg.resolved().steps}
    _warn_if_busy(store)
    if args.resume:
        summary = resume_run(store, args.resume, progress=progress)
    else:
        summary = train_student(store, config_from_args(args), progress=progress)
    args.human = _human_train
    return summary


def _warn_if_busy(store) -> None:
    """A run started here while the app trains shares the cores with it: say so (both will be slower)."""
    from workbench.core.jobs import job_queue

    running = [j["id"] for j in job_queue(store) if j["position"] == 0]
    if running:
        print(f"note: {', '.join(running)} is running in this workspace; both will run at a fraction of their "
              "speed (the app's jobs queue behind each other; this command does not)", file=sys.stderr)


def _human_train(s: dict) -> str:
    acc = "n/a" if s.get("accuracy") is None else f"{s['accuracy']:.3f}"
    teacher = "" if s.get("teacher_accuracy") is None else f" (teacher {s['teacher_accuracy']:.3f})"
    return (f"run {s['run']}: {s['status']} after {s['steps']} steps in {s['train_seconds']:.0f} s; "
            f"test accuracy {acc}{teacher}\n{s['run_dir']}")


def cmd_eval(args) -> dict:
    from workbench.results.evaluation import evaluate

    return evaluate(open_store(args), args.run, split=args.split, limit=args.limit)


def cmd_compare(args) -> dict:
    from workbench.results.compare import compare

    out = compare(open_store(args), args.run, limit=args.limit, generate_teacher=not args.no_teacher_generation)
    args.human = lambda r: "\n".join(
        [f"student {r['student_accuracy']}, teacher {r['teacher_accuracy']}, agreement {r['agreement']} "
         f"(n={r['n']}); student right/teacher wrong: {r['student_right_teacher_wrong']}, reverse: "
         f"{r['teacher_right_student_wrong']}"] + ([f"→ {r['verdict']['sentence']}"] if r.get("verdict") else [])
        + ([r["note"]] if r.get("note") else []))
    return out


def cmd_runs(args) -> dict:
    runs = open_store(args).list_runs(args.task)
    args.human = lambda r: "\n".join(
        f"{x['name']:<48} {x['status']:<10} {x['method']:<8} {x['student']:<12} "
        f"acc={x['summary'].get('accuracy')}" for x in r["runs"]) or "no runs yet"
    return {"runs": runs}
