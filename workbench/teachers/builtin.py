"""The offline teacher for the built-in tasks (``wordproblems``, ``quantnli``).

It reads each example's structure from ``Example.fields`` and writes raw text the way an LLM would, so the same
parser runs on it as on a real model. Mistakes are seeded per example (a SHA-256 of seed, task and example id,
never ``hash()``), so the same spec gives the same answers in every process:

* wordproblems: with probability ``error_rate`` it uses a distractor quantity, picks the wrong operation (the
  rationale follows the mistake through), or ends with an answer the parser cannot read.
* quantnli: its confidence falls with each pair's difficulty, and it is right with probability equal to that
  confidence, so ``label_dist`` is calibrated; the mean error is ``error_rate``. A wrong answer comes from a
  misread, overlooked or imagined fact, and the rationale reasons correctly from that wrong fact.

>>> from workbench.teachers import get_teacher                     # doctest: +SKIP
>>> teacher = get_teacher("builtin?error_rate=0.1&seed=3")          # doctest: +SKIP
>>> teacher.answer([TeacherRequest(example, prompt)])[0].raw        # doctest: +SKIP
'Anne starts with 12 apples. She gives away 5, so 12 - 5 = 7. … The answer is ( 12 - 5 ) + 3.'
"""

from __future__ import annotations

import hashlib
import re

from ..errors import TeacherError
from ..metrics import EquationError
from ..store import Example
from ..tasks.builtin import NLI_LABELS, equation_of, nli_label, run_steps
from .base import Teacher, TeacherReply, TeacherRequest, register_teacher

UNKNOWN_TASK = ("the builtin teacher only knows the built-in tasks (wordproblems, quantnli); "
                "use hf:… or openai:…")
# Which mistake, given that one is made: (kind, cumulative share).
_WP_ERRORS = (("wrong_quantity", 0.4), ("wrong_operation", 0.75), ("parse_failure", 1.0))
_NLI_PARSE_SHARE = 0.2
# Operations a reader confuses an operation with, most plausible first.
_OP_SWAPS = {"+": ("-", "*"), "-": ("+", "/"), "*": ("+", "-"), "/": ("*", "-")}
_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen twenty").split()
_REQUIRED = {"wordproblems": ("used", "operations", "start", "steps", "distractors", "object"),
             "quantnli": ("facts", "hypothesis", "difficulty")}


def _uniform(*parts) -> float:
    """A uniform number in [0, 1) from its parts: stable across processes, unlike ``hash()``."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:.2f}".rstrip("0")


@register_teacher
class BuiltinTeacher(Teacher):
    """Offline teacher for the built-in tasks, with a seeded error rate: ``builtin?error_rate=0.2&seed=0``."""

    kind = "builtin"
    batch_size = 256  # it is instant; big batches just mean fewer store transactions

    def __init__(self, target: str = "", *, store=None, **options: str):
        super().__init__(target, store=store, **options)
        if target:
            raise TeacherError(f"the builtin teacher takes no target ({target!r}); use 'builtin?error_rate=0.1'")
        unknown = sorted(set(options) - {"error_rate", "seed"})
        if unknown:
            raise TeacherError(f"unknown builtin teacher option(s) {', '.join(unknown)}; known: error_rate, seed")
        try:
            self.error_rate = float(options.get("error_rate", 0.2))
            self.seed = int(options.get("seed", 0))
        except ValueError as err:
            raise TeacherError(f"bad builtin teacher option: {err}; e.g. builtin?error_rate=0.2&seed=0") from err
        if not 0.0 <= self.error_rate <= 1.0:
            raise TeacherError(f"error_rate must be between 0 and 1, not {self.error_rate}")

    @property
    def settings(self) -> dict:
        # Normalised, so 'builtin' and 'builtin?error_rate=0.2' share cached generations.
        return {"error_rate": self.error_rate, "seed": self.seed}

    def answer(self, requests: list[TeacherRequest]) -> list[TeacherReply]:
        return [self._answer_one(r.example) for r in requests]

    def _answer_one(self, example: Example) -> TeacherReply:
        task = _task_of(example)
        if task is None:
            return TeacherReply(raw=None, error=UNKNOWN_TASK)
        return _write_wordproblem(self, example) if task == "wordproblems" else _write_nli(self, example)

    def _u(self, example: Example, purpose: str) -> float:
        return _uniform(self.seed, example.fields["task"], example.id, purpose)

    def confidence(self, example: Example) -> float:
        """quantnli: probability that the answer is right; falls with difficulty, averages ``1 - error_rate``."""
        hardness = 0.5 * float(example.fields["difficulty"]) + 0.5 * self._u(example, "hardness")
        # hardness averages 0.5, so the mean error is error_rate; the floor keeps the chosen label the likeliest.
        return max(0.45, 1.0 - 2.0 * self.error_rate * hardness)

    def injected_error(self, example: Example) -> str | None:
        """The mistake this teacher makes on ``example``, or None when it answers correctly (or cannot answer)."""
        task = _task_of(example)
        if task == "wordproblems":
            if self._u(example, "error") >= self.error_rate:
                return None
            pick = self._u(example, "kind")
            return next(kind for kind, upto in _WP_ERRORS if pick < upto)
        if task == "quantnli":
            if self._u(example, "error") < self.confidence(example):
                return None
            return "parse_failure" if self._u(example, "kind") < _NLI_PARSE_SHARE else "wrong_label"
        return None


def _task_of(example: Example) -> str | None:
    fields = example.fields if isinstance(example.fields, dict) else {}
    task = fields.get("task")
    if task in _REQUIRED and all(k in fields for k in _REQUIRED[task]):
        return task
    return None


# -- word problems -----------------------------------------------------------------------------------------------
def _write_wordproblem(teacher: BuiltinTeacher, ex: Example) -> TeacherReply:
    f = ex.fields
    values, ops = [int(v) for v in f["used"]], list(f["operations"])
    says, unused = [f["start"], *f["steps"]], list(f["distractors"])
    error = teacher.injected_error(ex)
    if error == "wrong_quantity":  # reads a distractor as if it were one of the story's quantities
        i, j = _wrong_quantity(values, ops, unused, teacher._u(ex, "where"))
        d = unused.pop(j)
        says[i] = re.sub(rf"\b{values[i]}\b", str(d["value"]), says[i], count=1)
        values[i] = int(d["value"])
    elif error == "wrong_operation":
        i = int(teacher._u(ex, "where") * len(ops))
        ops[i] = _wrong_op(values, ops, i)
    text = _retell(values, ops, says, unused, f["object"])
    result = run_steps(values, ops)[-1]
    if error == "parse_failure":
        return TeacherReply(_unparseable_equation(text, result, f["object"], teacher._u(ex, "how")))
    return TeacherReply(f"{text} The answer is {equation_of(values, ops)}.")


def _wrong_quantity(values: list[int], ops: list[str], distractors: list[dict], u: float) -> tuple[int, int]:
    """(position, distractor) to swap in: a seeded pick among the swaps that keep every step positive, since a
    reader who misplaces a number rarely ends up with a negative count."""
    swaps = [(i, j) for i in range(len(values)) for j in range(len(distractors))]
    positive = [(i, j) for i, j in swaps
                if min(run_steps([*values[:i], int(distractors[j]["value"]), *values[i + 1:]], ops)) > 0]
    pool = positive or swaps
    return pool[int(u * len(pool))]


def _wrong_op(values: list[int], ops: list[str], i: int) -> str:
    """A confusable operation that changes the answer (preferring one that keeps every step positive)."""
    gold = run_steps(values, ops)[-1]
    options = []
    for op in _OP_SWAPS[ops[i]]:
        try:
            steps = run_steps(values, [*ops[:i], op, *ops[i + 1:]])
        except EquationError:  # division by zero
            continue
        if steps[-1] != gold:
            options.append((min(steps) <= 0, op))
    return min(options)[1]  # the swaps of two distinct numbers always change the value: never empty


def _retell(values: list[int], ops: list[str], says: list[str], unused: list[dict], obj: str) -> str:
    """``Anne starts with 12 apples. She gives away 5, so 12 - 5 = 7. … We do not need the 4 pencils, …``"""
    sentences, prev = [says[0]], float(values[0])
    for say, op, v, result in zip(says[1:], ops, values[1:], run_steps(values, ops)):
        sentences.append(f"{say}, so {_fmt(prev)} {op} {v} = {_fmt(result)}.")
        prev = result
    if unused:
        mentions = " or ".join(d["mention"] for d in unused)
        sentences.append(f"We do not need {mentions}, because the question is about {obj}.")
    return " ".join(sentences)


def _unparseable_equation(text: str, result: float, obj: str, how: float) -> str:
    """The right reasoning with an answer no equation parser can read: words, units, or cut off."""
    if how < 0.4:
        words = _WORDS[int(result)] if result == int(result) and 0 <= result <= 20 else _fmt(result)
        return f"{text} The answer is {words} {obj}."
    if how < 0.7:
        return f"{text} So that makes {_fmt(result)} {obj} in the end."
    return _truncate(text)


def _truncate(text: str) -> str:
    """Cut off mid-sentence, as when a model runs out of tokens before its answer."""
    words = text.split()
    return " ".join(words[: max(3, len(words) * 2 // 3)])


# -- quantity NLI ------------------------------------------------------------------------------------------------
def _write_nli(teacher: BuiltinTeacher, ex: Example) -> TeacherReply:
    facts, hyp = ex.fields["facts"], ex.fields["hypothesis"]
    gold = nli_label(facts, hyp)
    confusion = _confusable(gold, teacher._u(ex, "confuse"))
    error = teacher.injected_error(ex)
    label, believed = (gold, facts) if error is None else (confusion, _misread(facts, hyp, confusion))
    text = _explain(believed, hyp)
    conf = teacher.confidence(ex)
    second = confusion if error is None else gold
    third = next(lab for lab in NLI_LABELS if lab not in (label, second))
    rest = round(1.0 - conf, 6)
    dist = {label: round(conf, 6), second: round(0.7 * rest, 6)}
    dist[third] = round(1.0 - dist[label] - dist[second], 6)
    if error == "parse_failure":
        return TeacherReply(_unparseable_label(text, label, second, teacher._u(ex, "how")), label_dist=dist)
    return TeacherReply(f"{text} So the answer is {label}.", label_dist=dist)


def _confusable(gold: str, u: float) -> str:
    """The label a reader would mistake ``gold`` for: entailment and contradiction mostly swap with each other."""
    if gold == "neutral":
        return "entailment" if u < 0.5 else "contradiction"
    opposite = "contradiction" if gold == "entailment" else "entailment"
    return opposite if u < 0.7 else "neutral"


def _misread(facts: list[list], hyp: dict, target: str) -> list[list]:
    """Facts as a careless reader sees them, so that sound reasoning from them reaches ``target``: two counts
    swapped, a count misread, a fact imagined for something the premise never mentions, or a fact overlooked."""
    counts = {(w, o): int(n) for w, o, n in facts}
    refs = [tuple(r) for r in hyp["refs"]]
    candidates = []
    if len(facts) == 2:
        (w1, o1, n1), (w2, o2, n2) = facts
        candidates.append([[w1, o1, n2], [w2, o2, n1]])
    for ref in refs:
        others = sum(counts.get(r, 0) for r in refs if r != ref)
        pivot = counts.get(ref, (hyp["n"] - others) if hyp["kind"] == "total" else hyp.get("n", others))
        for v in sorted(range(1, 31), key=lambda v: (abs(v - pivot), v)):
            if v != counts.get(ref):
                candidates.append([[w, o, n] for w, o, n in facts if (w, o) != ref] + [[*ref, v]])
    candidates += [[f for f in facts if tuple(f[:2]) != ref] for ref in refs]
    for believed in candidates:
        if nli_label(believed, hyp) == target:
            return believed
    raise AssertionError(f"no misreading of {facts} turns {hyp} into {target}")  # unreachable: a bug


def _explain(facts: list[list], hyp: dict) -> str:
    """Reasoning from ``facts`` to the hypothesis' truth: which counts matter, which do not, and the comparison."""
    counts = {(w, o): int(n) for w, o, n in facts}
    refs = [tuple(r) for r in hyp["refs"]]
    missing = [r for r in refs if r not in counts]
    if missing:
        who, obj = missing[0]
        return f"The premise does not say how many {obj} {who} has, so we cannot tell."
    if len(refs) == 2 and refs[0][0] == refs[1][0]:  # one person, two objects: name them once
        said = f"{refs[0][0]} has {counts[refs[0]]} {refs[0][1]} and {counts[refs[1]]} {refs[1][1]}"
    else:
        said = " and ".join(f"{w} has {counts[(w, o)]} {o}" for w, o in refs)
    parts = [f"The premise says {said}."]
    ignored = [f"{w}'s {n} {o}" for w, o, n in facts if (w, o) not in refs]
    if ignored:
        parts.append(f"We do not need {' or '.join(ignored)}.")
    xs, n = [counts[r] for r in refs], hyp.get("n")
    holds = nli_label(facts, hyp) == "entailment"
    verdict = f"so the hypothesis is {'true' if holds else 'false'}."
    kind = hyp["kind"]
    if kind in ("more", "fewer"):
        rel = "more than" if xs[0] > xs[1] else "less than" if xs[0] < xs[1] else "equal to"
        parts.append(f"{xs[0]} is {rel} {xs[1]}, {verdict}")
    elif kind == "at_least":
        parts.append(f"{xs[0]} is {'at least' if holds else 'less than'} {n}, {verdict}")
    elif kind == "exactly":
        parts.append(f"That is exactly {n}, {verdict}" if holds else f"{xs[0]} is not {n}, {verdict}")
    else:
        total = f"{xs[0]} + {xs[1]} = {sum(xs)}"
        parts.append(f"{total}, {verdict}" if holds else f"{total}, not {n}, {verdict}")
    return " ".join(parts)


def _unparseable_label(text: str, label: str, other: str, how: float) -> str:
    """Reasoning toward ``label`` that ends in no single label: yes/no, a hedge, or cut off."""
    if how < 0.4:
        word = {"entailment": "yes", "contradiction": "no"}.get(label, "maybe")
        return f"{text} So the answer is {word}."
    if how < 0.7:
        return f"{text} So the answer is {label} or {other}."
    return _truncate(text)
