"""The job kinds: each a function ``(store, spec, ctx) -> result dict`` registered by name.

Generation lives here; training registers ``train`` in :mod:`workbench.runs` (see ``jobs.KIND_MODULES``).
"""

from __future__ import annotations

from .errors import ConfigError
from .generation import generate_rationales
from .jobs import JobContext, register_job_kind
from .store import Store


@register_job_kind("generate")
def generate_job(store: Store, spec: dict, ctx: JobContext) -> dict:
    """spec: task, teacher, split (train), limit, template_text (optional edited template)."""
    from .tasks import load_task
    from .teachers import get_teacher

    task = load_task(spec["task"], store)
    teacher = get_teacher(spec["teacher"], store=store)
    template = task.template()
    if spec.get("template_text"):
        template = template.with_text(spec["template_text"])
    if spec.get("limit") is not None and int(spec["limit"]) < 0:
        raise ConfigError("limit must be zero or more")
    ctx.log(f"generating: task={task.name} teacher={teacher.id} limit={spec.get('limit')}")
    try:
        summary = generate_rationales(store, task, teacher, split=spec.get("split", "train"), limit=spec.get("limit"),
                                      template=template, progress=ctx.progress, should_stop=ctx.should_stop)
    finally:
        teacher.close()
    ctx.log(f"done: {summary}")
    return summary
