"""Serving verbs: ``serve-model`` puts a checkpoint or a trained run behind an OpenAI-compatible endpoint.

    workbench serve-model runs/quantnli-dss-tiny-20250101-120000 --port 8001
    workbench serve-model run:my-run --workspace ws --port 8001     # the run's label head; 'my-run:rationale'
    workbench generate --task quantnli --teacher 'openai:my-run:rationale@http://127.0.0.1:8001/v1'
"""

from __future__ import annotations

import argparse
import sys

from workbench.cli import add_common
from workbench.core.bounds import PORT, UPLOAD_MB, Bounds
from workbench.core.loopback import is_loopback


def register(sub) -> None:
    p = add_common(sub.add_parser("serve", help="open the Gradio workbench (what `make run` does)"))
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=PORT, default=7860, help=PORT.help("port (default 7860)"))
    p.add_argument("--auth", help="USER:PASSWORD for basic login (also $WORKBENCH_AUTH); use it with --host 0.0.0.0")
    p.add_argument("--connections", metavar="FILE",
                   help="TOML or JSON file of the endpoints the app offers, each with the variable holding its key "
                        "(also $WORKBENCH_CONNECTIONS); an address typed in the app is sent no key")
    p.add_argument("--max-upload-mb", type=UPLOAD_MB, default=None, metavar="MB",
                   help=UPLOAD_MB.help("largest file a user may upload (default: $WORKBENCH_MAX_UPLOAD_MB or 50)"))
    p.set_defaults(func=cmd_serve)

    p = add_common(sub.add_parser("serve-model", help="serve a model folder or a trained run with the OpenAI API"))
    p.add_argument("model", metavar="RUN_OR_PATH", help="a run folder, run:NAME, a model folder or a hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=PORT, default=8000, help=PORT.help("port (default 8000)"))
    latency, batch, tokens, threads = (Bounds(0, 600_000, integer=False), Bounds(1, 1024), Bounds(0, 1_000_000),
                                       Bounds(0, 1024))
    p.add_argument("--latency-ms", type=latency, default=0.0,
                   help=latency.help("make every completion take at least this long (benchmarks)"))
    p.add_argument("--max-batch", type=batch, default=32, help=batch.help("requests generated together at most"))
    p.add_argument("--max-input-tokens", type=tokens, default=0,
                   help=tokens.help("keep only the last N prompt tokens (default: what the model's positions allow)"))
    p.add_argument("--threads", type=threads, default=0,
                   help=threads.help("CPU threads for torch (default: torch's choice; 1 is fastest for tiny models "
                                     "on a busy CPU)"))
    _limit_flags(p)
    # Fault injection for tests: 'fail_500=3,rate_limit=2,retry_after=1,slow=1,drop=1,garbage=1,empty=1'.
    p.add_argument("--faults", default="", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve_model)


def _limit_flags(p) -> None:
    """What one request may ask for and how much the server holds at once (memory stays bounded); the defaults
    and the reasons for them are in :mod:`workbench.serving.limits`."""
    from workbench.serving import limits as lim

    size = Bounds(1, lim.CEILING)
    for flag, default, text in (
            ("--max-prompt-tokens", lim.MAX_PROMPT_TOKENS, "prompt tokens one request may hold, after the chat "
             "template; more is HTTP 413"),
            ("--max-tokens", lim.MAX_TOKENS, "the longest answer (max_tokens) a request may ask for; more is HTTP "
             "400 (batches run to their end: a long answer holds other clients back)"),
            ("--max-n", lim.MAX_N, "samples of one prompt (n) a request may ask for; more is HTTP 400"),
            ("--max-tokens-in-flight", lim.MAX_TOKENS_IN_FLIGHT, "token positions, (prompt + max_tokens) × n, "
             "held at once by the requests queued or generating (~45 KB each for SmolLM2-135M); a request that can "
             "never fit is HTTP 413, one that does not fit now 429 with Retry-After")):
        p.add_argument(flag, type=size, default=default, help=size.help(f"{text} (default {default:,})"))


def cmd_serve(args) -> None:
    import os

    from workbench.core import offline

    offline.apply()  # before gradio is imported: it reads these at import time
    from workbench.core.errors import ConfigError
    from workbench.ui import launch
    from workbench.ui.app import parse_auth

    if not 0 < args.port < 65536:
        raise ConfigError("--port must be 1..65535")
    auth = args.auth or os.environ.get("WORKBENCH_AUTH")
    try:
        parse_auth(auth)
    except ValueError as err:
        raise ConfigError(f"{err} (both non-empty; the password may hold ':')") from err
    try:
        launch(args.workspace, host=args.host, port=args.port, auth=auth, connections=args.connections,
               max_upload_mb=args.max_upload_mb)
    except OSError as err:  # the port is taken or the address is not this machine's
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({err.strerror or str(err).split('. ')[0]}); "
                          "pick another --port") from err


def cmd_serve_model(args) -> None:
    from workbench.core import offline

    offline.apply()  # a catalog name (smollm2-135m) is its converted folder, never the hub, unless --online
    from workbench.core.errors import ConfigError
    from workbench.serving import FaultPlan, Limits, serve

    if not 0 < args.port < 65536 or args.max_batch < 1 or args.latency_ms < 0 or args.max_input_tokens < 0:
        raise ConfigError("--port must be 1..65535, --max-batch at least 1, --latency-ms and --max-input-tokens "
                          "0 or more")
    if not is_loopback(args.host):
        print(f"workbench serve-model: warning: listening on {args.host} without authentication: anyone who can "
              "reach this address can use the model", file=sys.stderr)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    faults = FaultPlan.parse(args.faults)

    def announce(url: str) -> None:  # called once the port is bound and the model loaded
        print(f"serving {args.model} on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)

    serve(args.model, host=args.host, port=args.port, workspace=args.workspace, latency_ms=args.latency_ms,
          faults=faults, max_batch=args.max_batch, announce=announce,
          limits=Limits(args.max_prompt_tokens, args.max_tokens, args.max_n, args.max_tokens_in_flight),
          options={"max_input_tokens": str(args.max_input_tokens)} if args.max_input_tokens > 0 else None)
