"""Teachers register themselves on import; importing this package registers every built-in backend."""

from . import builtin, hf, openai_compat, released, run_teacher  # noqa: F401  (registration side effects)
from .base import TEACHERS, Teacher, TeacherReply, TeacherRequest, get_teacher, parse_spec, register_teacher

__all__ = ["TEACHERS", "Teacher", "TeacherReply", "TeacherRequest", "get_teacher", "parse_spec", "register_teacher"]
