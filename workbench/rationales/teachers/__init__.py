"""Teachers: the base class and registry (:mod:`.base`) and the backends that need no trained student:
``released`` (stored answers), ``hf`` (a transformers checkpoint) and ``openai`` (an OpenAI-compatible endpoint).
The offline ``builtin`` teacher lives with the built-in tasks, the ``run`` teacher with the runs; all register
through the same entry-point group."""

from workbench.rationales.teachers.base import (
    TEACHERS,
    Option,
    Teacher,
    TeacherReply,
    TeacherRequest,
    compose_spec,
    get_teacher,
    parse_spec,
    register_teacher,
    teacher_class,
    teacher_id,
)

__all__ = ["TEACHERS", "Option", "Teacher", "TeacherReply", "TeacherRequest", "compose_spec", "get_teacher",
           "parse_spec", "register_teacher", "teacher_class", "teacher_id"]
