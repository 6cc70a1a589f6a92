"""Data verbs: tasks, teachers, generate, export."""

from __future__ import annotations

import sys

from workbench.cli import add_common, open_store
from workbench.core.bounds import LIMIT


def register(sub) -> None:
    p = add_common(sub.add_parser("tasks", help="list tasks (built-in and in this workspace)"))
    p.set_defaults(func=cmd_tasks)

    p = add_common(sub.add_parser("teachers", help="list teacher kinds and the teachers with stored answers"))
    p.add_argument("--task", help="also list the teachers that have answered this task")
    p.set_defaults(func=cmd_teachers)

    p = add_common(sub.add_parser("generate", help="generate teacher rationales (resumable)"))
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="teacher spec, e.g. builtin, hf:PATH, openai:MODEL@URL")
    p.add_argument("--split", default="train")
    p.add_argument("--limit", type=LIMIT, help=LIMIT.help("first N examples of the split (default: all)"))
    p.add_argument("--dry-run", action="store_true", help="only say how many requests (and ~tokens) it would send")
    p.add_argument("--rationalize", action="store_true",
                   help="show the teacher each example's gold answer and ask it to explain it (rationalization)")
    p.set_defaults(func=cmd_generate)

    p = add_common(sub.add_parser("export", help="export the resolved training set as JSONL or CSV"))
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--label-source", choices=["gold", "teacher"], default="gold")
    p.add_argument("--keep-parse-errors", action="store_true")
    p.add_argument("--drop-teacher-wrong", action="store_true")
    p.add_argument("--only-accepted", action="store_true")
    p.add_argument("--out", help="file ending in .jsonl or .csv (default: the workspace's exports/ folder, as the "
                   "app's Export button names it)")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="without --out: the file's format")
    p.set_defaults(func=cmd_export)


def cmd_tasks(args) -> dict:
    from workbench.data.tasks import list_tasks

    tasks = list_tasks(open_store(args))
    args.human = lambda r: "\n".join(
        f"{t['name']:<24} {t['source']:<10} " + " ".join(f"{k}={v}" for k, v in t["splits"].items())
        for t in r["tasks"])
    return {"tasks": tasks}


def cmd_teachers(args) -> dict:
    from workbench.rationales.teachers import TEACHERS  # noqa: F401  (registers the backends)
    from workbench.rationales.teachers.base import teacher_kinds

    out: dict = {"teachers": teacher_kinds()}
    if args.task:
        out["answered"] = open_store(args).teachers_of(args.task)
    return out


def cmd_generate(args) -> dict:
    from tqdm import tqdm

    from workbench.rationales.generation import check_generation, plan_request, run_request

    store = open_store(args)
    # The app's checks and plan: a request the app would refuse is refused here, with the same reason.
    req = check_generation(store, args.task, args.teacher, split=args.split, limit=args.limit,
                           rationalize=args.rationalize)
    if args.dry_run:
        return plan_request(store, req).summary()
    bar = tqdm(total=None, desc=f"{req.teacher} → {req.task}", unit="ex", file=sys.stderr, disable=None)

    def progress(p) -> None:  # a GenerationProgress event
        bar.total = p.total
        bar.n = p.done
        bar.set_postfix(parsed=p.parsed, parse_errors=p.parse_errors, errors=p.errors, refresh=False)
        bar.refresh()

    try:
        return run_request(store, req, progress=progress)
    finally:
        bar.close()


def cmd_export(args) -> dict:
    from workbench.data.tasks import load_task
    from workbench.rationales.trainingset import build_training_set

    store = open_store(args)
    task = load_task(args.task, store)
    ts = build_training_set(store, task, args.teacher, label_source=args.label_source,
                            drop_parse_errors=not args.keep_parse_errors, drop_teacher_wrong=args.drop_teacher_wrong,
                            only_accepted=args.only_accepted)
    path = ts.export(args.out or ts.default_path(store, args.format))
    return {**ts.summary(), "path": str(path)}
