"""The Gradio front end: ``build_app(workspace)`` gives the ``gr.Blocks``; ``launch(...)`` serves it.

Run it with ``python app.py`` (or ``make run``); see :mod:`workbench.ui.app`.
"""

from workbench.ui.app import build_app, launch

__all__ = ["build_app", "launch"]
