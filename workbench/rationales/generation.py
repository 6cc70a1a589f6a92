"""Teacher generation: examples → prompts → teacher → parser → stored generations, and the ``generate`` job kind.

Resumable by construction: examples that already have a successful generation from the same teacher, template
and sampling settings are skipped, and each batch is committed in its own transaction, so a killed run loses at
most the batch in flight. Concurrent runs share the work: each batch is claimed in the store before the teacher is
asked (:meth:`~workbench.core.store.Store.claim_examples`), so no example is answered twice, and the claims of a
process that dies are dropped by the next claimer. :func:`check_generation` says, before any job starts, whether a
request can work at all, and :func:`plan_request` what it will send; the app, the CLI and the job all call both, so
the sentence shown before launch is the plan the job runs (:func:`run_request`). Progress is reported per batch and,
for a teacher that generates token by token, per token with an ETA; a cancel stops it within a decoding step.

>>> summary = generate_rationales(store, task, get_teacher("builtin"), limit=20)
>>> summary["generated"], summary["parsed"], summary["parse_errors"]      # the builtin teacher errs on purpose
(20, 19, 1)
>>> generate_rationales(store, task, get_teacher("builtin"), limit=20)["generated"]    # resumed: nothing to ask
0
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from workbench.core.errors import ConfigError, NothingToDoError, StoreError, TeacherError, WorkbenchError
from workbench.core.events import GenerationProgress
from workbench.core.jobs import JobContext
from workbench.core.locks import OwnerLock
from workbench.core.store import Store, write_error
from workbench.core.store_records import Example, Generation
from workbench.data.metrics import accuracy
from workbench.data.parsers import Parsed
from workbench.data.prompts import PromptTemplate
from workbench.data.tasks import Task, load_task
from workbench.rationales.progress import (
    ANSWERING,
    GenerationCancelled,
    ProgressFn,
    Reporter,
    cancel_on_sigterm,
)
from workbench.rationales.teachers.base import (
    Teacher,
    TeacherReply,
    TeacherRequest,
    get_teacher,
    teacher_class,
)

PAID_DEFAULT = 20  # what a teacher that costs time or money answers unless told otherwise
COST_WORDS = {"free": "free and instant", "compute": "a local model: minutes per hundred on a CPU",
              "money": "an endpoint: may be billed"}


@dataclass
class GenerationPlan:
    """What a generation call would do (the dry run): which examples still need an answer."""

    task: str
    teacher: str
    template_hash: str
    considered: int
    todo: list[Example]
    prompts: list[str]
    split: str = "train"
    cost: str | None = None  # the teacher's cost class, when known (plan_request)
    rationalize: bool = False

    @property
    def approx_prompt_tokens(self) -> int:
        # ~4 characters a token for English text: a rough figure for cost estimates, not a tokenizer count.
        return sum(len(p) for p in self.prompts) // 4

    def sentence(self) -> str:
        """What a click will send, in words (the app's line before launch, the job's first log line).

        >>> GenerationPlan("t", "builtin", "h", 4, [], [], cost="free").sentence()
        'Will ask 0 of 4 train examples (free and instant; ~0 prompt tokens); 4 already answered'
        """
        done = self.considered - len(self.todo)
        how = "rationalization: each shown its gold answer; " if self.rationalize else ""
        cost = f"{COST_WORDS[self.cost]}; " if self.cost in COST_WORDS else ""
        return (f"Will ask {len(self.todo):,} of {self.considered:,} {self.split} examples ({how}{cost}"
                f"~{self.approx_prompt_tokens:,} prompt tokens)" + (f"; {done:,} already answered" if done else ""))

    def summary(self) -> dict:
        return {"task": self.task, "teacher": self.teacher, "template_hash": self.template_hash,
                "considered": self.considered, "requests": len(self.todo), "skipped": self.considered - len(self.todo),
                "approx_prompt_tokens": self.approx_prompt_tokens, "sentence": self.sentence()}


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
                          [template.render(e.input, e.label) for e in todo])


def generate_rationales(store: Store, task: Task, teacher: Teacher, *, split: str = "train",
                        limit: int | None = None, template: PromptTemplate | None = None,
                        progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Generate and store teacher answers; returns counts and the teacher's accuracy on the considered examples.

    ``progress`` gets a :class:`GenerationProgress` after every batch and, while a teacher that generates token by
    token answers one, about once a second (rows in flight, tokens, ETA). ``should_stop`` is polled between
    batches and by such a teacher between tokens: a cancelled batch is not stored (its rows stay to do); the
    batches answered before it are kept."""
    if not teacher.can_generate:
        raise ConfigError(f"teacher {teacher.id!r} only replays stored answers; it cannot generate new ones")
    template = template or task.template()
    plan = plan_generation(store, task, teacher, split=split, limit=limit, template=template)
    store.add_template(template.name, template.parser_name, template.text, template.hash)
    parser, skey = template.parser, settings_key(teacher)
    report = Reporter(progress, len(plan.todo), max(1, int(teacher.batch_size)))
    taken = 0  # answered or being answered by another process since the plan was made
    report.send()
    owner, lock = _claim_owner(store)
    try:
        for start in range(0, report.total, report.batch):
            if should_stop is not None and should_stop():
                break
            chunk = plan.todo[start:start + report.batch]
            # Claim before asking: a concurrent job on the same task and teacher never pays for the same example.
            mine = set(store.claim_examples(task.name, teacher.id, template.hash, skey, [e.id for e in chunk], owner))
            pairs = [(e, p) for e, p in zip(chunk, plan.prompts[start:start + report.batch]) if e.id in mine]
            taken += len(chunk) - len(pairs)
            if pairs:
                requests = [TeacherRequest(e, p, task.labels, task) for e, p in pairs]
                watch = teacher.watch = report.watch(start, len(requests), should_stop)
                try:
                    ANSWERING.set()
                    replies = teacher.answer(requests)
                except GenerationCancelled:  # a cancel that could not wait for the teacher (cancel_on_sigterm)
                    watch.stopped = True
                finally:
                    ANSWERING.clear()
                    teacher.watch = None
                if watch.stopped:  # cut short by a cancel: incomplete answers are not stored
                    break
                if len(replies) != len(requests):
                    raise RuntimeError(f"teacher {teacher.id} returned {len(replies)} replies for {len(requests)} "
                                       "prompts")
                gens = [_to_generation(task, teacher, template, skey, req.example, rep,
                                       parser.parse(rep.raw or "", task.labels)) for req, rep in zip(requests, replies)]
                with store.transaction():  # the answers and the release of their claims commit together
                    store.add_generations(gens)
                    store.release_claims(owner, [g.example_id for g in gens])
                report.count(gens)
            report.done = start + len(chunk)
            report.send()
    finally:
        with contextlib.suppress(StoreError):  # a full disk: the dead lock below frees the claims all the same
            store.release_claims(owner)
        lock.release(remove=True)
    return {**report.counts, "skipped": plan.considered - report.total + taken, "considered": plan.considered,
            "template_hash": template.hash, "teacher": teacher.id,
            "teacher_accuracy": teacher_accuracy(store, task, teacher.id, template.hash, split, limit)}


def _claim_owner(store: Store) -> tuple[str, OwnerLock]:
    """A fresh claim owner and its lock: its claims live exactly as long as this process holds the lock."""
    owner = uuid.uuid4().hex[:16]  # the lock file names it; the pid is written inside, for messages
    path = store.owner_lock_path(owner)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return owner, OwnerLock.acquire(path)
    except OSError as err:
        raise write_error(err, store.workspace, path.parent) from err


def _to_generation(task: Task, teacher: Teacher, template: PromptTemplate, skey: str, example: Example,
                   reply: TeacherReply, parsed: Parsed) -> Generation:
    settings = {**teacher.settings, "key": skey}
    if reply.error:
        return Generation(task.name, example.id, teacher.id, template.hash, reply.raw, error=reply.error,
                          settings=settings, seconds=reply.seconds)
    return Generation(task.name, example.id, teacher.id, template.hash, reply.raw, parsed.rationale, parsed.label,
                      parsed.parse_error, None, reply.label_dist, settings, reply.seconds)


# -- checks before a job starts, and the job kind ----------------------------------------------------------------
@dataclass(frozen=True)
class GenerationRequest:
    """A checked request to generate: what a ``generate`` job's spec holds (plain JSON)."""

    task: str
    teacher: str
    split: str = "train"
    limit: int | None = None
    template_text: str | None = None  # an edited template; None: the task's own
    rationalize: bool = False  # show the teacher the gold answer and ask it to explain it

    def to_spec(self) -> dict:
        return {"task": self.task, "teacher": self.teacher, "split": self.split, "limit": self.limit,
                "template_text": self.template_text, "rationalize": self.rationalize}


def check_generation(store: Store, task_name: str, spec: str, *, split: str = "train", limit: int | None = None,
                     template_text: str | None = None, rationalize: bool = False) -> GenerationRequest:
    """Refuse, with the reason, a generation that cannot work: an unknown task or teacher, a teacher that only
    replays answers or cannot read this task, a template without ``{input}``, an empty split, a bad limit. Every
    front (the app, the CLI, a job) goes through it."""
    if not task_name:
        raise ConfigError("pick a task first")
    task = load_task(task_name, store)
    teacher = get_teacher(spec, store=store)  # parses and checks the spec and its options; loads nothing
    if not teacher.can_generate:
        stored = len(store.latest_generations(task.name, teacher.id))
        raise ConfigError(f"the teacher {teacher.id!r} cannot generate: it replays the answers an import stored "
                          f"({stored:,} for {task.name!r}) and sends no prompts; they are in the review table. "
                          "To ask for new answers, pick a teacher that generates")
    why = teacher.can_answer(task)
    if why:
        raise TeacherError(why)
    if limit is not None and int(limit) < 1:
        raise ConfigError("the limit (--limit, or Examples to answer) must be 1 or more, or left out for the whole "
                          "split")
    default = task.template()
    edited = template_text if template_text and template_text != default.text else None
    if edited:
        default.with_text(edited)  # refuses a template without {input}
    if not store.examples(task.name, split, 1):
        raise NothingToDoError(f"task {task.name!r} has no {split!r} examples; splits: {task.split_names()}")
    if rationalize and not any(e.label for e in store.examples(task.name, split)):
        raise NothingToDoError(f"rationalization shows the teacher the gold answer, and the {split!r} examples of "
                               f"{task.name!r} have none")
    return GenerationRequest(task.name, spec, split, None if limit is None else int(limit), edited, bool(rationalize))


def request_template(task: Task, req: GenerationRequest) -> PromptTemplate:
    """The template a checked request asks with: the task's (or its edited text), rationalizing when asked."""
    template = task.template().with_text(req.template_text) if req.template_text else task.template()
    return template.rationalizing() if req.rationalize else template


def plan_request(store: Store, req: GenerationRequest) -> GenerationPlan:
    """What a checked request will send: the plan the job itself makes (same examples, template and settings)."""
    task = load_task(req.task, store)
    teacher = get_teacher(req.teacher, store=store)
    plan = plan_generation(store, task, teacher, split=req.split, limit=req.limit, template=request_template(task, req))
    plan.split, plan.cost, plan.rationalize = req.split, type(teacher).cost, req.rationalize
    return plan


def default_limit(spec: str) -> int | None:
    """How many examples a generation asks unless told: all (None) for a free teacher; a first batch of
    :data:`PAID_DEFAULT` for one that costs time or money (or an unknown one, which will be refused anyway)."""
    try:
        return None if teacher_class(spec).cost == "free" else PAID_DEFAULT
    except WorkbenchError:
        return PAID_DEFAULT


def run_request(store: Store, req: GenerationRequest, *, progress: ProgressFn | None = None,
                should_stop: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Run a checked request (what a ``generate`` job and ``workbench generate`` both do); returns the summary."""
    task = load_task(req.task, store)
    teacher = get_teacher(req.teacher, store=store)
    if log is not None:
        log(f"generating: {plan_request(store, req).sentence()} (task {task.name}, teacher {teacher.id})")
    try:
        return generate_rationales(store, task, teacher, split=req.split, limit=req.limit,
                                   template=request_template(task, req), progress=progress, should_stop=should_stop)
    finally:
        teacher.close()


def generate_job(store: Store, spec: dict, ctx: JobContext) -> dict:
    """The ``generate`` job kind. spec: a :class:`GenerationRequest` as a dict."""
    req = check_generation(store, spec["task"], spec["teacher"], split=spec.get("split", "train"),
                           limit=spec.get("limit"), template_text=spec.get("template_text"),
                           rationalize=bool(spec.get("rationalize")))
    ctx.state = GenerationProgress()
    with cancel_on_sigterm():
        summary = run_request(store, req, progress=ctx.progress, should_stop=ctx.should_stop, log=ctx.log)
    ctx.log(f"done: {summary}")
    return summary


def _generation_is_heavy(store: Store, spec: dict) -> bool:
    """A local model's answers take the machine's cores (the job queues for the slot); an endpoint's or a file's
    do not."""
    from workbench.rationales.teachers.base import teacher_class

    return teacher_class(spec["teacher"]).cost == "compute"


generate_job.heavy = _generation_is_heavy


def answer_one(store: Store, task: Task, teacher: Teacher, text: str,
               template: PromptTemplate | None = None) -> dict:
    """Ask a teacher about one new input (prompt → raw text → parsed answer) without storing anything."""
    template = template or task.template()
    example = Example("new", "new", text, None, {})
    reply = teacher.answer([TeacherRequest(example, template.render(text), task.labels, task)])[0]
    if reply.error:
        return {"label": None, "rationale": None, "raw": reply.raw, "error": reply.error, "parse_error": None}
    parsed = template.parser.parse(reply.raw or "", task.labels)
    return {"label": parsed.label, "rationale": parsed.rationale, "raw": reply.raw, "error": None,
            "parse_error": parsed.parse_error}


def teacher_accuracy(store: Store, task: Task, teacher_id: str, template_hash: str | None = None,
                     split: str = "train", limit: int | None = None) -> float | None:
    """Accuracy of the teacher's latest answers against gold (parse errors count as wrong); None without gold.

    Only answers written without the gold answer in view count: a rationalizing template (or any template that
    shows ``{answer}``) makes answers that copy the key, which are never a teacher's accuracy, on any split."""
    from workbench.data.prompts import ANSWER

    ids = {e.id for e in store.examples(task.name, split, limit)}
    rows = [r for r in store.latest_generations(task.name, teacher_id, template_hash, split, unless_template_has=ANSWER)
            if r["example_id"] in ids]
    return accuracy([r["teacher_label"] for r in rows], [r["gold"] for r in rows], task.answer_kind,
                    [r["parse_error"] for r in rows])


def ensure_answers(store: Store, task_name: str, spec: str, *, split: str = "test", ask_free: bool = True) -> str | None:
    """Make sure a teacher has answered a split, when that costs nothing: a free teacher (``cost == "free"``) is
    asked now for every example it has not answered; any other teacher is never called implicitly (it may cost
    money or time). Returns None when answers are there, else a note saying which command fills them in."""
    from workbench.rationales.teachers.base import teacher_class, teacher_id

    cls = teacher_class(spec)
    free = ask_free and cls.cost == "free" and cls.can_generate
    # A free teacher fills in what it has not answered (a split it answered 50 of is compared on all of it);
    # any other teacher is compared on what it answered.
    if not free and store.latest_generations(task_name, teacher_id(spec), split=split):
        return None
    if free:
        task = load_task(task_name, store)
        teacher = get_teacher(spec, store=store)
        if teacher.can_answer(task) is None:
            try:
                generate_rationales(store, task, teacher, split=split)
            finally:
                teacher.close()
            if store.latest_generations(task_name, teacher.id, split=split):
                return None
    return (f"teacher {spec!r} has not answered the {split} split; run `workbench generate --task {task_name} "
            f"--teacher {spec} --split {split}` to fill its columns")
