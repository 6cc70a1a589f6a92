"""Teacher generation: examples → prompts → teacher → parser → stored generations.

Resumable by construction: examples that already have a successful generation from the same teacher, template
and sampling settings are skipped, and each batch is committed in its own transaction, so a killed run loses at
most the batch in flight.

>>> summary = generate_rationales(store, task, get_teacher("builtin"), limit=50)   # doctest: +SKIP
>>> summary["parsed"], summary["parse_errors"]                                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError, NothingToDoError
from .prompts import Parsed, PromptTemplate
from .store import Example, Generation, Store
from .tasks.base import Task
from .teachers.base import Teacher, TeacherReply, TeacherRequest

ProgressFn = Callable[[dict], None]


@dataclass
class GenerationPlan:
    """What a generation call would do (the dry run): which examples still need an answer."""

    task: str
    teacher: str
    template_hash: str
    considered: int
    todo: list[Example]
    prompts: list[str]

    @property
    def approx_prompt_tokens(self) -> int:
        # ~4 characters a token for English text: a rough figure for cost estimates, not a tokenizer count.
        return sum(len(p) for p in self.prompts) // 4

    def summary(self) -> dict:
        return {"task": self.task, "teacher": self.teacher, "template_hash": self.template_hash,
                "considered": self.considered, "requests": len(self.todo), "skipped": self.considered - len(self.todo),
                "approx_prompt_tokens": self.approx_prompt_tokens}


def settings_key(teacher: Teacher) -> str:
    return hashlib.sha256(json.dumps(teacher.settings, sort_keys=True).encode()).hexdigest()[:12]


def plan_generation(store: Store, task: Task, teacher: Teacher, *, split: str = "train", limit: int | None = None,
                    template: PromptTemplate | None = None) -> GenerationPlan:
    template = template or task.template()
    if limit is not None and limit < 0:
        raise ConfigError("--limit must be zero or more")
    examples = store.examples(task.name, split, limit)
    if not examples:
        raise NothingToDoError(f"task {task.name!r} has no {split!r} examples; splits: {task.split_names()}")
    done = store.done_example_ids(task.name, teacher.id, template.hash, settings_key(teacher))
    todo = [e for e in examples if e.id not in done]
    return GenerationPlan(task.name, teacher.id, template.hash, len(examples), todo,
                          [template.render(e.input) for e in todo])


def generate_rationales(store: Store, task: Task, teacher: Teacher, *, split: str = "train",
                        limit: int | None = None, template: PromptTemplate | None = None,
                        progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Generate and store teacher answers; returns counts and the teacher's accuracy on the considered examples."""
    if not teacher.can_generate:
        raise ConfigError(f"teacher {teacher.id!r} only replays stored answers; it cannot generate new ones")
    template = template or task.template()
    plan = plan_generation(store, task, teacher, split=split, limit=limit, template=template)
    store.add_template(template.name, template.parser_name, template.text, template.hash)
    parser, skey = template.parser, settings_key(teacher)
    counts = {"generated": 0, "parsed": 0, "parse_errors": 0, "errors": 0}
    started = time.monotonic()
    total = len(plan.todo)
    _report(progress, counts, 0, total, started)
    batch = max(1, int(teacher.batch_size))
    for start in range(0, total, batch):
        if should_stop is not None and should_stop():
            break
        chunk = plan.todo[start:start + batch]
        requests = [TeacherRequest(e, p, task.labels) for e, p in zip(chunk, plan.prompts[start:start + batch])]
        replies = teacher.answer(requests)
        if len(replies) != len(requests):
            raise RuntimeError(f"teacher {teacher.id} returned {len(replies)} replies for {len(requests)} prompts")
        gens = [_to_generation(task, teacher, template, skey, req.example, rep, parser.parse(rep.raw or "", task.labels))
                for req, rep in zip(requests, replies)]
        store.add_generations(gens)
        for g in gens:
            counts["generated"] += 1
            if g.error:
                counts["errors"] += 1
            elif g.parse_error:
                counts["parse_errors"] += 1
            else:
                counts["parsed"] += 1
        _report(progress, counts, start + len(chunk), total, started)
    return {**counts, "skipped": plan.considered - total, "considered": plan.considered,
            "template_hash": template.hash, "teacher": teacher.id,
            "teacher_accuracy": teacher_accuracy(store, task, teacher.id, template.hash, split, limit)}


def _to_generation(task: Task, teacher: Teacher, template: PromptTemplate, skey: str, example: Example,
                   reply: TeacherReply, parsed: Parsed) -> Generation:
    settings = {**teacher.settings, "key": skey}
    if reply.error:
        return Generation(task.name, example.id, teacher.id, template.hash, reply.raw, error=reply.error,
                          settings=settings, seconds=reply.seconds)
    return Generation(task.name, example.id, teacher.id, template.hash, reply.raw, parsed.rationale, parsed.label,
                      parsed.parse_error, None, reply.label_dist, settings, reply.seconds)


def _report(progress: ProgressFn | None, counts: dict, done: int, total: int, started: float) -> None:
    if progress is None:
        return
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else None
    progress({**counts, "done": done, "total": total, "elapsed": elapsed, "eta": eta})


def answer_one(store: Store, task: Task, teacher: Teacher, text: str,
               template: PromptTemplate | None = None) -> dict:
    """Ask a teacher about one new input (prompt → raw text → parsed answer) without storing anything."""
    template = template or task.template()
    example = Example("new", "new", text, None, {})
    reply = teacher.answer([TeacherRequest(example, template.render(text), task.labels)])[0]
    if reply.error:
        return {"label": None, "rationale": None, "raw": reply.raw, "error": reply.error, "parse_error": None}
    parsed = template.parser.parse(reply.raw or "", task.labels)
    return {"label": parsed.label, "rationale": parsed.rationale, "raw": reply.raw, "error": None,
            "parse_error": parsed.parse_error}


def teacher_accuracy(store: Store, task: Task, teacher_id: str, template_hash: str | None = None,
                     split: str = "train", limit: int | None = None) -> float | None:
    """Accuracy of the teacher's latest answers against gold (parse errors count as wrong); None without gold."""
    ids = {e.id for e in store.examples(task.name, split, limit)}
    rows = [r for r in store.latest_generations(task.name, teacher_id, template_hash, split)
            if r["example_id"] in ids and r["gold"] is not None]
    if not rows:
        return None
    right = sum(r["parse_error"] is None and task.is_correct(r["teacher_label"], r["gold"]) for r in rows)
    return right / len(rows)
