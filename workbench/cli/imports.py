"""Import verbs: the paper's release folders and custom CSV/JSONL files.

    workbench import-paper ../datasets/svamp --task svamp --json
    workbench task-add reviews data/reviews.csv --input text --label sentiment --labels pos,neg --json
"""

from __future__ import annotations

from workbench.cli import add_common, open_store
from workbench.core.bounds import SEED, UPLOAD_MB

KINDS = ("classes", "text", "equation")
# Literal copies, so that building the parser does not import the task package (and `datasets`) for --help;
# a test checks them against tasks.paper.PAPER_DATASETS.
PAPER_TASKS = ("anli1", "cqa", "esnli", "svamp")
SHOWN_ERRORS = 20  # human output lists this many rejected rows; --json gives them all


def register(sub) -> None:
    p = add_common(sub.add_parser("import-paper", help="import one dataset of the paper's release with PaLM's answers"))
    p.add_argument("dir", metavar="DIR", help="the unzipped release folder, or its <dataset>/ folder")
    p.add_argument("--task", required=True, choices=PAPER_TASKS, help="which of the paper's datasets")
    p.add_argument("--name", help="task name in the workspace (default: the dataset's name)")
    p.set_defaults(func=cmd_import_paper, human=_human_paper)

    p = add_common(sub.add_parser("task-add", help="add a task from a CSV/TSV/JSONL file and a column mapping"))
    p.add_argument("name", metavar="NAME", help="task name (letters, digits, '_', '.', '-')")
    p.add_argument("file", metavar="FILE", help="a .csv, .tsv or .jsonl file")
    p.add_argument("--input", action="append", required=True, metavar="COL",
                   help="input column; repeat for several (joined as 'col: value' lines)")
    p.add_argument("--label", metavar="COL", help="gold label column (omit for unlabeled data)")
    p.add_argument("--rationale", metavar="COL", help="rationale column, stored as teacher released:file")
    p.add_argument("--split-col", metavar="COL", help="split column (else a seeded 80/10/10 split)")
    p.add_argument("--id-col", metavar="COL", help="id column (else line-based ids)")
    p.add_argument("--kind", choices=KINDS, help="answer kind (default: inferred from the labels)")
    p.add_argument("--labels", metavar="A,B,C", help="the label space; rows with other labels are rejected")
    p.add_argument("--seed", type=SEED, default=0, help=SEED.help("seed of the default split (default: 0)"))
    p.add_argument("--max-upload-mb", type=UPLOAD_MB, default=None, metavar="MB",
                   help=UPLOAD_MB.help("refuse a larger file before anything is written (default: "
                                       "$WORKBENCH_MAX_UPLOAD_MB or 50)"))
    p.set_defaults(func=cmd_task_add, human=_human_custom)


def cmd_import_paper(args) -> dict:
    from workbench.imports.paper import import_paper

    return import_paper(open_store(args), args.dir, args.task, name=args.name)


def cmd_task_add(args) -> dict:
    from workbench.imports.custom import ColumnMapping, import_custom

    labels = tuple(args.labels.split(",")) if args.labels is not None else None
    mapping = ColumnMapping(inputs=tuple(args.input), label=args.label, rationale=args.rationale,
                            split=args.split_col, id=args.id_col, kind=args.kind, labels=labels, seed=args.seed)
    return import_custom(open_store(args), args.name, args.file, mapping, max_upload_mb=args.max_upload_mb)


def _human_paper(r: dict) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in r["examples"].items())
    acc = ", ".join(f"{k} {v:.2%}" for k, v in r["teacher_accuracy"].items()) or "n/a"
    again = " (already imported; nothing written)" if r.get("already_imported") else ""
    return (f"task {r['task']}{again}: {splits} examples; {r['generations']} answers from {r['teacher']}, "
            f"{r['parse_errors']} parse errors; teacher accuracy {acc}")


def _human_custom(r: dict) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in r["examples"].items())
    lines = [f"task {r['task']} ({r['answer_kind']}): {splits} examples, {r['rejected']} rows rejected"
             + (f", {r['generations']} rationales as teacher {r['teacher']}" if r["generations"] else "")]
    lines += [f"  line {e['line']}: {e['reason']}" for e in r["errors"][:SHOWN_ERRORS]]
    if r["rejected"] > SHOWN_ERRORS:
        lines.append(f"  … and {r['rejected'] - SHOWN_ERRORS} more (see --json)")
    return "\n".join(lines)
