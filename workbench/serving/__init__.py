"""``workbench serve-model``: a checkpoint or a trained run behind an OpenAI-compatible endpoint (127.0.0.1 by
default), with bounded memory (:mod:`.limits`) and deterministic fault injection for tests (see :mod:`.app`).

Names are imported on first use, so the CLI can read :mod:`.limits` for its ``--help`` without loading FastAPI."""

from importlib import import_module

_EXPORTS = {"FaultPlan": "faults", "Limits": "limits", "ServedModel": "model", "ServerThread": "server",
            "create_app": "app", "resolve_model": "model", "serve": "server"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
