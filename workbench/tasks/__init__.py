"""Tasks register themselves on import; importing this package registers the built-in generators."""

from . import builtin  # noqa: F401  (registration side effects)
from .base import BUILTIN_TASKS, Task, list_tasks, load_task, register_task, save_task

__all__ = ["BUILTIN_TASKS", "Task", "list_tasks", "load_task", "register_task", "save_task"]
