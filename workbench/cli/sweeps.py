"""Sweep verbs: the paper's experiments as a grid of runs (``sweep``), and the sweeps of a workspace (``sweeps``).

    workbench sweep --task wordproblems-hard --teacher builtin --methods standard,dss --rows 16,64,256 \\
        --seeds 0,1,2 --students tiny,smollm2-135m --epochs 3 --json
    workbench sweep --resume NAME            # continue a stopped or killed sweep
    workbench sweeps                         # the saved sweeps, with what each holds so far
"""

from __future__ import annotations

from workbench.cli import add_common, open_store


def _list(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.replace(" ", "").split(",") if x)
        except ValueError as err:
            import argparse

            raise argparse.ArgumentTypeError(f"expected comma-separated values, not {text!r}") from err
    return parse


def register(sub) -> None:
    p = add_common(sub.add_parser("sweep", help="train a grid of runs: methods x sizes x students x seeds"))
    p.add_argument("--task")
    p.add_argument("--teacher", help="teacher spec whose rationales every cell learns from")
    p.add_argument("--methods", type=_list(str), default=("standard", "dss"))
    p.add_argument("--rows", type=_list(int), default=(), help="training rows per cell, e.g. 16,64,256")
    p.add_argument("--fractions", type=_list(float), default=(), help="or shares of the training set, e.g. 0.25,1")
    p.add_argument("--students", type=_list(str), default=("tiny",))
    p.add_argument("--seeds", type=_list(int), default=(0,))
    p.add_argument("--steps", type=int, help="steps of every cell (default: the student's recipe)")
    p.add_argument("--epochs", type=float, help="or the same passes over the rows in every cell")
    p.add_argument("--label-source", choices=("gold", "teacher"), default="gold")
    p.add_argument("--test-limit", type=int)
    p.add_argument("--name")
    p.add_argument("--resume", metavar="NAME", help="continue a saved sweep")
    p.add_argument("--background", action="store_true", help="start the sweep as a background job and return")
    p.add_argument("--estimate", action="store_true", help="only say how many cells and steps, and how long")
    p.set_defaults(func=cmd_sweep)

    p = add_common(sub.add_parser("sweeps", help="list the saved sweeps"))
    p.set_defaults(func=cmd_sweeps)


def cmd_sweep(args) -> dict:
    from workbench.core.errors import ConfigError
    from workbench.core.jobs import job_status
    from workbench.distill.sweeps import (
        SweepConfig,
        estimate_sweep,
        load_sweep,
        run_sweep,
        start_sweep,
        sweep_status,
    )

    store = open_store(args)
    if args.resume:
        sweep, name = load_sweep(store, args.resume), args.resume
    else:
        if not args.task:
            raise ConfigError("a task is required: --task NAME (or --resume SWEEP)")
        sweep = SweepConfig(task=args.task, teacher=args.teacher, methods=args.methods, rows=args.rows,
                            fractions=args.fractions, students=args.students, seeds=args.seeds, steps=args.steps,
                            epochs=args.epochs, label_source=args.label_source, test_limit=args.test_limit,
                            name=args.name)
        name = None
    if args.estimate:
        return estimate_sweep(store, sweep)
    if args.background:
        name, job = start_sweep(store, name or sweep)
        return {"sweep": name, "job": job, "status": job_status(store, job)["status"]}
    if name is None:
        from workbench.distill.sweeps import create_sweep

        name = create_sweep(store, sweep)
    from workbench.cli.training import _printer

    run_sweep(store, name, progress=_printer(False))
    status = sweep_status(store, name)
    status.pop("job", None)
    args.human = _human
    return status


def _human(s: dict) -> str:
    lines = [f"sweep {s['sweep']}: {s['done']}/{s['total']} cells done; teacher (test) {s['teacher_accuracy']}"]
    for c in s["cells"]:
        acc = "" if c["accuracy"] is None else f" {c['accuracy']:.3f}"
        lines.append(f"  {c['run']:<60} {c['status']}{acc}")
    return "\n".join(lines)


def cmd_sweeps(args) -> dict:
    from workbench.distill.sweeps import list_sweeps, sweep_status

    store = open_store(args)
    out = []
    for name in list_sweeps(store):
        s = sweep_status(store, name)
        out.append({"sweep": name, "task": s["config"]["task"], "done": s["done"], "total": s["total"],
                    "job": (s["job"] or {}).get("status")})
    args.human = lambda r: "\n".join(f"{x['sweep']:<48} {x['task']:<18} {x['done']}/{x['total']} {x['job'] or ''}"
                                     for x in r["sweeps"]) or "no sweeps yet"
    return {"sweeps": out}

