"""``workbench serve-model``: a checkpoint or a trained run behind an OpenAI-compatible endpoint (127.0.0.1 by
default), with deterministic fault injection for tests (see :mod:`.app`)."""

from workbench.serving.app import create_app
from workbench.serving.faults import FaultPlan
from workbench.serving.model import ServedModel, resolve_model
from workbench.serving.server import ServerThread, serve

__all__ = ["FaultPlan", "ServedModel", "ServerThread", "create_app", "resolve_model", "serve"]
