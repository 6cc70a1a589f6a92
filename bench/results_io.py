"""Writing a benchmark's figures: ``<name>.json`` (all numbers) and ``<name>.md`` (the table), and the table printed.

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
