"""Launch the workbench in the browser, offline, on http://127.0.0.1:7860 with the built-in demo ready.

    python app.py                                   # ./workspace (or $WORKBENCH_HOME)
    python app.py --workspace ~/wb --port 7861
    python app.py --host 0.0.0.0 --auth me:secret   # exposed: always with a password
    python app.py --connections connections.toml    # the endpoints (and keys) the teacher picker offers

Never creates a public share link. Offline unless --online or WORKBENCH_ONLINE=1. A browser user reaches an
endpoint's key only through a connection of --connections; uploads are capped (--max-upload-mb, default 50).
"""

from __future__ import annotations

import argparse
import os
import sys

from workbench.core import offline
from workbench.core.bounds import UPLOAD_MB

# Before gradio (and huggingface_hub) are imported: they read these at import time. No analytics, no hub
# calls unless --online (or WORKBENCH_ONLINE=1), and local requests never go through a proxy.
offline.apply(online=True if "--online" in sys.argv[1:] and __name__ == "__main__" else None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Distilling step by step — workbench (Gradio app)")
    parser.add_argument("--workspace", default=os.environ.get("WORKBENCH_HOME", "workspace"),
                        help="workspace folder (default: $WORKBENCH_HOME or ./workspace)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", default=os.environ.get("WORKBENCH_AUTH"),
                        help="USER:PASSWORD for basic login (also $WORKBENCH_AUTH); use it with --host 0.0.0.0")
    parser.add_argument("--connections", default=os.environ.get("WORKBENCH_CONNECTIONS"), metavar="FILE",
                        help="TOML or JSON file of the endpoints the app offers, each with the variable holding its "
                             "key (also $WORKBENCH_CONNECTIONS); an address typed in the app is sent no key")
    parser.add_argument("--max-upload-mb", type=UPLOAD_MB, default=None, metavar="MB",
                        help=UPLOAD_MB.help("largest file a user may upload (default: $WORKBENCH_MAX_UPLOAD_MB or 50)"))
    parser.add_argument("--online", action="store_true", help="let hub models download (default: offline)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from workbench.core.errors import WorkbenchError
    from workbench.ui import launch

    try:
        launch(args.workspace, host=args.host, port=args.port, auth=args.auth, connections=args.connections,
               max_upload_mb=args.max_upload_mb)
    except (WorkbenchError, ValueError) as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the port is taken, or the address is not this machine's
        reason = err.strerror or str(err).split(". ")[0]
        print(f"app.py: error: cannot listen on {args.host}:{args.port} ({reason}); pick another --port",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
