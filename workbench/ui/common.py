"""Pieces every tab shares: the error edge, the offline theme, safe HTML helpers and table formatting.

Nothing here knows about distillation; it only adapts library results to Gradio components.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import string
from collections.abc import Callable
from typing import Any

import gradio as gr

from workbench.core.errors import WorkbenchError

log = logging.getLogger("workbench.ui")

# System font stacks only: a font named as a plain string makes Gradio emit no @font-face and no Google Fonts
# link, so the page never asks any host but the app's own for anything (the app must work offline).
THEME = gr.themes.Soft(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
)

CSS = """
.wb-intro { color: var(--body-text-color-subdued); margin-bottom: 0.25rem; }
/* Table headers break between words, never inside one ("rig ht"); a word too wide is clipped (with a tooltip). */
.wb-table th .header.text, .wb-table th span, .wb-md th { word-break: normal !important;
  overflow-wrap: normal !important; hyphens: none; }
/* Cells break between words; a word breaks only when it alone is wider than its column ("unreviewe d" and
   "1,90 4" came from breaking anywhere, which also let the table squeeze columns below their longest word). */
.wb-md td { overflow-wrap: break-word !important; word-break: normal !important; }
.wb-table td span, .wb-table td .cell-wrap { word-break: normal !important; overflow-wrap: break-word !important; }
.wb-bar { background: var(--neutral-200); border-radius: 6px; height: 14px; overflow: hidden; }
.wb-bar > div { background: var(--color-accent); height: 100%; transition: width 0.4s; }
.wb-stats { font-variant-numeric: tabular-nums; font-size: 0.95em; margin-top: 4px; }
"""


def edge(fn: Callable) -> Callable:
    """Convert domain errors to ``gr.Error`` at the UI edge (STYLE.md 8); bugs still raise as bugs. A user's
    mistake prints no traceback on the server, and its message is shown as text (toasts render HTML)."""

    @functools.wraps(fn)  # keeps the signature, so Gradio still injects gr.SelectData and friends
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as err:
            log.info("user error in %s: %s", fn.__name__, err)
            raise user_error(str(err)) from err

    return wrapper


def user_error(message: str) -> gr.Error:
    """A toast for a user's mistake: its text shown literally, no traceback in the server's log."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def info(message: str) -> None:
    """An information toast, its text shown literally (task names and file names are user text)."""
    gr.Info(html.escape(message, quote=False))


_PUNCT = frozenset(string.punctuation)


def md_text(value: Any) -> str:
    """User or model text placed inside Markdown so that it renders literally: every ASCII punctuation character
    becomes a numeric entity, so no image, link, code span, HTML or LaTeX can form (``esc`` alone lets Markdown
    through: ``![p](http://…)`` would make the browser fetch it). Line breaks and leading spaces are kept."""
    lines = []
    for line in ("" if value is None else str(value)).replace("\r\n", "\n").split("\n"):
        body = line.lstrip(" \t")
        lead = line[:len(line) - len(body)].replace("\t", "    ")
        lines.append("&nbsp;" * len(lead) + "".join(f"&#{ord(c)};" if c in _PUNCT else c for c in body))
    return "  \n".join(lines)


def fmt_counts(counts: dict | None, empty: str = "none") -> str:
    """``{"parse error": 95, "rejected": 1}`` → ``95 parse errors, 1 rejected`` (what a person reads)."""
    if not counts:
        return empty
    plural = {"parse error": "parse errors", "no rationale": "without a rationale", "no gold label":
              "without a gold label", "teacher wrong": "where the teacher is wrong", "not accepted": "not accepted",
              "rejected": "rejected"}
    return ", ".join(f"{n:,} {plural.get(k, k) if n != 1 else k}" for k, n in counts.items())


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
