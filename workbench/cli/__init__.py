"""The ``workbench`` command line: stable verbs over the library (see the README's CLI contract).

Each verb lives in a module of this package that exposes ``register(subparsers)``; a verb's handler takes the
parsed arguments and returns a dict. With ``--json`` that dict is printed as the last line of stdout; without it,
a short human summary. Domain errors exit with code 2 and a one-line message on stderr.

Offline is the program's default (:mod:`workbench.core.offline`, set before any verb runs): the hub is reached only
with the global ``--online`` flag or ``WORKBENCH_ONLINE=1``.

    workbench tasks
    workbench generate --task wordproblems --teacher builtin --limit 200 --json
    workbench --online models                # what the hub would add
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from workbench.core.errors import WorkbenchError

COMMAND_MODULES = ("data", "imports", "training", "serving", "models", "sweeps")


def default_workspace() -> str:
    return os.environ.get("WORKBENCH_HOME", "workspace")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake on one line (what is wrong, and where the help is) instead of the usage text:
    the same shape as every other error of the CLI. Subparsers are made of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="Step-by-step distillation workbench")
    parser.add_argument("--workspace", default=default_workspace(),
                        help="workspace folder (default: $WORKBENCH_HOME or ./workspace)")
    parser.add_argument("--online", action="store_true",
                        help="let hub models download (default: offline; also WORKBENCH_ONLINE=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            continue  # a verb group that is not part of this build
        module.register(sub)
    return parser


def add_common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options every verb takes: ``--json`` and ``--workspace`` (also accepted after the verb)."""
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.add_argument("--workspace", default=argparse.SUPPRESS, help="workspace folder")
    p.add_argument("--online", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def open_store(args):
    from workbench.core.store import Store

    return Store.open(args.workspace)


def main(argv: list[str] | None = None) -> int:
    from workbench.core import offline

    # Before any verb imports huggingface_hub or gradio (they read the variables at import time).
    offline.apply(online=_online_flag(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], dict] = args.func
    try:
        result = handler(args)
    except WorkbenchError as err:
        # One line, always: some messages quote a library's multi-line error (e.g. transformers' offline hint).
        message = " ".join(part.strip() for part in str(err).replace("\r", "\n").split("\n") if part.strip())
        print(f"workbench {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted; what was committed is kept", file=sys.stderr)
        return 130
    if result is None:
        return 0
    if getattr(args, "json", False):
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        human = getattr(args, "human", None)
        print(human(result) if human else _pretty(result))
    return 0


def _online_flag(argv: list[str]) -> bool | None:
    """``--online`` anywhere before ``--`` (a global flag, also accepted after the verb); None: the environment
    decides (``WORKBENCH_ONLINE``)."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    return True if "--online" in words else None


def _pretty(result: dict) -> str:
    lines = []
    for key, value in result.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
