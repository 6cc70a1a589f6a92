"""Sweep verbs: the paper's experiments as a grid of runs (``sweep``), and the sweeps of a workspace (``sweeps``).

    workbench sweep --task wordproblems-hard --teacher builtin --methods standard,dss --rows 32,128 \\
        --students smollm2-135m --epochs 2 --estimate      # how long, per phase, before anything runs
    workbench sweep --task wordproblems-hard --teacher builtin --rows 32,128 --students smollm2-135m --epochs 2
    workbench sweep --resume NAME            # continue a stopped or killed sweep
    workbench sweeps                         # the saved sweeps, with what each holds so far

The grid's defaults are :class:`~workbench.distill.sweeps.SweepConfig`'s own (3 seeds, standard and dss, the
tiny student); every number is checked with the range it must lie in before the first cell starts.
"""

from __future__ import annotations

import argparse

from workbench.cli import add_common, open_store


def _list(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.replace(" ", "").split(",") if x)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, not {text!r}") from err
    return parse


def register(sub) -> None:
    from workbench.distill.sweeps import MAX_CELLS, MAX_EPOCHS, MAX_ROWS, MAX_STEPS

    p = add_common(sub.add_parser("sweep", help="train a grid of runs: methods x sizes x students x seeds"))
    p.add_argument("--task")
    p.add_argument("--teacher", help="teacher spec whose rationales every cell learns from")
    p.add_argument("--methods", type=_list(str), help="comma-separated (default: standard,dss)")
    p.add_argument("--rows", type=_list(int), help=f"training rows per cell, e.g. 16,64,256 (1 to {MAX_ROWS:,})")
    p.add_argument("--fractions", type=_list(float), help="or shares of the training set, e.g. 0.25,1 (in (0, 1])")
    p.add_argument("--students", type=_list(str), help="comma-separated (default: tiny)")
    p.add_argument("--seeds", type=_list(int), help="comma-separated, 0 to 4294967295 (default: 0,1,2)")
    p.add_argument("--steps", type=int, help=f"steps of every cell, 1 to {MAX_STEPS:,} (default: the student's "
                   "recipe)")
    p.add_argument("--epochs", type=float, help=f"or the same passes over the rows in every cell (up to {MAX_EPOCHS})")
    p.add_argument("--label-source", choices=("gold", "teacher"), default="gold")
    p.add_argument("--test-limit", type=int, help="score every cell on the first N test examples (default: 100 "
                   "for a pretrained student, all otherwise)")
    p.add_argument("--name")
    p.add_argument("--resume", metavar="NAME", help="continue a saved sweep")
    p.add_argument("--background", action="store_true", help="start the sweep as a background job and return")
    p.add_argument("--estimate", action="store_true",
                   help="only say how many cells and steps, and how long (per phase; calibrates each student once)")
    p.epilog = f"A sweep holds at most {MAX_CELLS} cells."
    p.set_defaults(func=cmd_sweep)

    p = add_common(sub.add_parser("sweeps", help="list the saved sweeps"))
    p.set_defaults(func=cmd_sweeps)


def _config(args):
    from workbench.distill.sweeps import SweepConfig

    given = {"methods": args.methods, "rows": args.rows, "fractions": args.fractions, "students": args.students,
             "seeds": args.seeds, "steps": args.steps, "epochs": args.epochs, "test_limit": args.test_limit,
             "name": args.name}
    return SweepConfig(task=args.task, teacher=args.teacher, label_source=args.label_source,
                       **{k: v for k, v in given.items() if v is not None})


def cmd_sweep(args) -> dict:
    from workbench.core.errors import ConfigError
    from workbench.core.jobs import job_status
    from workbench.distill.sweeps import (
        check_sweep,
        create_sweep,
        estimate_sweep,
        load_sweep,
        run_sweep,
        start_sweep,
    )
    from workbench.results.sweep_report import sweep_report

    store = open_store(args)
    if args.resume:
        sweep, name = load_sweep(store, args.resume), args.resume
    else:
        if not args.task:
            raise ConfigError("a task is required: --task NAME (or --resume SWEEP)")
        sweep, name = _config(args), None
    if args.estimate:
        check_sweep(store, sweep)
        out = estimate_sweep(store, sweep)
        args.human = lambda e: (f"{e['cells']} cells, {e['steps']:,} steps: {e['text']}; per phase: "
                                + ", ".join(f"{k} {v:.0f} s" for k, v in e["parts"].items()))
        return out
    if args.background:
        name, job = start_sweep(store, name or sweep)
        return {"sweep": name, "job": job, "status": job_status(store, job)["status"]}
    if name is None:
        name = create_sweep(store, sweep)
    from workbench.cli.training import _printer

    run_sweep(store, name, progress=_printer(False, getattr(args, "json", False)))
    report = sweep_report(store, name)
    args.human = lambda _: "\n".join(report.lines())
    return report.to_dict()


def cmd_sweeps(args) -> dict:
    from workbench.core.errors import ConfigError
    from workbench.distill.sweeps import list_sweeps, sweep_status

    store = open_store(args)
    out = []
    for name in list_sweeps(store):
        try:
            s = sweep_status(store, name)
        except ConfigError as err:  # one unreadable sweep is listed as such; the others still are
            out.append({"sweep": name, "task": None, "done": None, "total": None, "job": None, "error": str(err)})
            continue
        out.append({"sweep": name, "task": s["config"]["task"], "done": s["done"], "total": s["total"],
                    "job": (s["job"] or {}).get("status")})

    def human(r: dict) -> str:
        lines = [f"{x['sweep']:<48} unreadable: {x['error']}" if x.get("error") else
                 f"{x['sweep']:<48} {x['task']:<18} {x['done']}/{x['total']} {x['job'] or ''}" for x in r["sweeps"]]
        return "\n".join(lines) or "no sweeps yet"

    args.human = human
    return {"sweeps": out}
