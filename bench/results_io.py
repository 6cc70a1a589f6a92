"""Writing a benchmark's figures: ``<name>.json`` (all numbers) and ``<name>.md`` (the table), and the table printed;
and the process's memory as Linux reports it.

Only the standard library, so that every script (``gpu.py`` included, on a machine without ``datasets``) can use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def write_results(out: str | Path, name: str, result: dict, render_md: Callable[[dict], str]) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_md(result)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(markdown, encoding="utf-8")
    print(markdown)


def rss_kib(key: str = "VmRSS") -> int:
    """This process's memory from ``/proc/self/status``: ``VmRSS`` now, ``VmHWM`` its peak (KiB; 0 elsewhere)."""
    status = Path("/proc/self/status")
    for line in (status.read_text().splitlines() if status.exists() else ()):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> int:
    """Reset the peak RSS (``VmHWM``) to the current RSS (Linux); returns the current RSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return rss_kib("VmRSS")
