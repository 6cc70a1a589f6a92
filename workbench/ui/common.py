"""Pieces every tab shares: the error edge, the offline theme, safe HTML helpers and table formatting.

Nothing here knows about distillation; it only adapts library results to Gradio components.
"""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from workbench.core.errors import WorkbenchError

# System font stacks only: a font named as a plain string makes Gradio emit no @font-face and no Google Fonts
# link, so the page never asks any host but the app's own for anything (the app must work offline).
THEME = gr.themes.Soft(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
)

CSS = """
.wb-intro { color: var(--body-text-color-subdued); margin-bottom: 0.25rem; }
.wb-bar { background: var(--neutral-200); border-radius: 6px; height: 14px; overflow: hidden; }
.wb-bar > div { background: var(--color-accent); height: 100%; transition: width 0.4s; }
.wb-stats { font-variant-numeric: tabular-nums; font-size: 0.95em; margin-top: 4px; }
"""


def edge(fn: Callable) -> Callable:
    """Convert domain errors to ``gr.Error`` at the UI edge (STYLE.md 8); bugs still raise as bugs."""

    @functools.wraps(fn)  # keeps the signature, so Gradio still injects gr.SelectData and friends
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as err:
            raise gr.Error(str(err), print_exception=False) from err

    return wrapper


def bind(fn: Callable, *bound: Any) -> Callable:
    """``functools.partial`` that Gradio can read: the remaining parameters keep their names and type hints, so
    ``evt: gr.SelectData`` is still injected (Gradio cannot see through a ``partial`` object)."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[len(bound):]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*bound, *args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {k: v for k, v in getattr(fn, "__annotations__", {}).items()
                               if k == "return" or k in {p.name for p in params}}
    return wrapper


def intro(text: str) -> gr.Markdown:
    """The one-line explanation under each tab's title (our own text, never user text)."""
    return gr.Markdown(text, elem_classes=["wb-intro"])


def esc(value: Any) -> str:
    """Escape anything that goes into HTML or Markdown: teacher and user text must render as text."""
    return html.escape("" if value is None else str(value), quote=True)


def clip(text: Any, n: int = 160) -> str:
    """Shorten a table cell; the full text is shown when the row is selected."""
    s = "" if text is None else str(text).replace("\n", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def progress_html(fraction: float | None, stats: list[tuple[str, Any]], status: str = "") -> str:
    """A progress bar plus a line of ``name value`` pairs, all escaped."""
    frac = 0.0 if fraction is None else min(1.0, max(0.0, float(fraction)))
    parts = " · ".join(f"<b>{esc(k)}</b> {esc(v)}" for k, v in stats)
    head = f"<b>{esc(status)}</b> · " if status else ""
    return (f'<div class="wb-bar" role="progressbar" aria-valuenow="{frac * 100:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div style="width:{frac * 100:.1f}%"></div></div>'
            f'<div class="wb-stats">{head}{esc(f"{frac * 100:.0f} %")} · {parts}</div>')


def first(choices: list, default: Any = None) -> Any:
    return choices[0] if choices else default
