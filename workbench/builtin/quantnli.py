"""``quantnli``: natural language inference about counts and comparisons, generated from a seed with balanced
classes, and the offline teacher's writer for it.

As the teacher, its confidence falls with each pair's difficulty and it is right with probability equal to that
confidence, so ``label_dist`` is calibrated; the mean error is ``error_rate``. A wrong answer comes from a misread,
overlooked or imagined fact, and the rationale reasons correctly from that wrong fact.

>>> nli_label([["Tom", "cards", 7], ["Mia", "cards", 4]], {"kind": "more", "refs": [["Tom", "cards"], ["Mia", "cards"]]})
'entailment'
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from workbench.builtin.reading import read_nli
from workbench.builtin.task_base import NAMES, OBJECTS, BuiltinTask, generate, sizes, truncate
from workbench.core.store_records import Example
from workbench.data.prompts import PromptTemplate
from workbench.data.tasks import NLI_LABELS
from workbench.rationales.teachers.base import TeacherReply

# The task's own few-shot prompt (its parser: ``class``). Its text is part of every generation's template hash:
# changing it keeps earlier answers apart from new ones.
PROMPT = PromptTemplate("quantnli", """\
Decide whether the hypothesis follows from the premise. Say which counts matter and compare them. Answer entailment if the hypothesis must be true, contradiction if it must be false, and neutral if the premise does not say. End with "So the answer is" and one of entailment, neutral, contradiction.

Q: Premise: Anne has 5 apples and 3 pears.
Hypothesis: Anne has more apples than pears.
A: The premise says Anne has 5 apples and 3 pears. 5 is more than 3, so the hypothesis is true. So the answer is entailment.

Q: Premise: Tom has 7 cards. Mia has 4 cards.
Hypothesis: Mia has at least 9 cards.
A: The premise says Mia has 4 cards. We do not need Tom's 7 cards. 4 is less than 9, so the hypothesis is false. So the answer is contradiction.

Q: Premise: Leo has 12 stamps. Sara has 6 stamps.
Hypothesis: Leo and Ben have 18 stamps in total.
A: The premise does not say how many stamps Ben has, so we cannot tell. So the answer is neutral.

Q: Premise: Kate has 8 eggs and 11 cups.
Hypothesis: Kate has 19 eggs and cups in total.
A: The premise says Kate has 8 eggs and 11 cups. 8 + 11 = 19, so the hypothesis is true. So the answer is entailment.

Q: {input}
A:
""", "class")

_NLI_PARSE_SHARE = 0.2  # of the wrong answers, this share ends in no single label


def nli_label(facts: list[list], hyp: dict) -> str:
    """Gold label of a hypothesis over premise facts ``[[who, object, count], …]``: a hypothesis about a person
    or object the premise does not mention is neutral. Shared with the teacher, which reasons the same way."""
    counts = {(who, obj): n for who, obj, n in facts}
    xs = [counts.get(tuple(ref)) for ref in hyp["refs"]]
    if any(x is None for x in xs):
        return "neutral"
    kind, n = hyp["kind"], hyp.get("n")
    holds = {"more": lambda: xs[0] > xs[1], "fewer": lambda: xs[0] < xs[1], "at_least": lambda: xs[0] >= n,
             "exactly": lambda: xs[0] == n, "total": lambda: sum(xs) == n}[kind]()
    return "entailment" if holds else "contradiction"


def render_hypothesis(hyp: dict) -> str:
    """``{"kind": "at_least", "refs": [["Tom", "cards"]], "n": 4}`` → ``'Tom has at least 4 cards.'``"""
    (who, obj), kind, n = hyp["refs"][0], hyp["kind"], hyp.get("n")
    if kind in ("at_least", "exactly"):
        return f"{who} has {kind.replace('_', ' ')} {n} {obj}."
    who2, obj2 = hyp["refs"][1]
    if kind == "total":
        if who == who2:
            return f"{who} has {n} {obj} and {obj2} in total."
        return f"{who} and {who2} have {n} {obj} in total."
    if who == who2:
        return f"{who} has {kind} {obj} than {obj2}."
    return f"{who} has {kind} {obj} than {who2}."


def _premise(rng: random.Random) -> tuple[list[list], str]:
    a, b = rng.sample(range(2, 21), 2)
    if rng.random() < 0.5:  # one person, two objects
        who, (o1, o2) = rng.choice(NAMES), rng.sample(OBJECTS, 2)
        return [[who, o1, a], [who, o2, b]], f"{who} has {a} {o1} and {b} {o2}."
    (w1, w2), obj = rng.sample(NAMES, 2), rng.choice(OBJECTS)
    return [[w1, obj, a], [w2, obj, b]], f"{w1} has {a} {obj}. {w2} has {b} {obj}."


def _missing_ref(rng: random.Random, facts: list[list], ref: list) -> list:
    """``ref`` with its person or object swapped for one the premise never mentions (a neutral hypothesis)."""
    same_person = facts[0][0] == facts[1][0]
    if same_person:  # the premise lists objects: ask about an object it does not list
        return [ref[0], rng.choice([o for o in OBJECTS if o not in {f[1] for f in facts}])]
    return [rng.choice([n for n in NAMES if n not in {f[0] for f in facts}]), ref[1]]


def _hypothesis(rng: random.Random, facts: list[list], label: str) -> dict:
    kind = rng.choice(("compare", "at_least", "exactly", "total"))
    order = rng.sample([0, 1], 2)
    refs = [facts[i][:2] for i in order]
    x, y = (facts[i][2] for i in order)
    want = "entailment" if label == "neutral" else label  # neutral: a plausible claim about a missing thing
    if kind == "compare":
        kind = "more" if (x > y) == (want == "entailment") else "fewer"
        hyp = {"kind": kind, "refs": refs}
    elif kind == "total":
        hyp = {"kind": kind, "refs": refs, "n": x + y + (0 if want == "entailment" else rng.choice((-2, -1, 1, 2)))}
    else:
        near = rng.choice((1, 2, 3))
        if want == "entailment":
            n = x if kind == "exactly" else max(2, x - rng.choice((0, 1, 2)))
        else:  # exactly: off by a little either way; at least: a little more than there is
            n = x - near if kind == "exactly" and x - near >= 2 and rng.random() < 0.5 else x + near
        hyp = {"kind": kind, "refs": refs[:1], "n": n}
    if label == "neutral":
        i = rng.randrange(len(hyp["refs"]))
        hyp["refs"][i] = _missing_ref(rng, facts, hyp["refs"][i])
    return hyp


def nli_difficulty(facts: list[list], hyp: dict) -> float:
    """How hard a pair is, in [0, 1]: close numbers, boundaries and sums are harder (the teacher's confidence
    follows it)."""
    counts = {(who, obj): n for who, obj, n in facts}
    xs = [counts.get(tuple(ref)) for ref in hyp["refs"]]
    if any(x is None for x in xs):  # a missing person is easier to miss than a missing object
        return 0.45 if hyp["refs"][0][0] != hyp["refs"][-1][0] else 0.35
    if hyp["kind"] == "total":
        return 0.55 if sum(xs) == hyp["n"] else 0.75
    gap = abs(xs[0] - (xs[1] if len(xs) == 2 else hyp["n"]))
    base = {"more": 0.4, "fewer": 0.5, "at_least": 0.45, "exactly": 0.25}[hyp["kind"]]
    return min(1.0, base + (0.3 if gap <= 1 else 0.1 if gap <= 3 else 0.0))


def _nli_pair(rng: random.Random, label: str) -> tuple[str, str, dict]:
    facts, premise = _premise(rng)
    hyp = _hypothesis(rng, facts, label)
    assert nli_label(facts, hyp) == label, (facts, hyp, label)  # a generator bug, not data
    text = f"Premise: {premise}\nHypothesis: {render_hypothesis(hyp)}"
    fields = {"task": "quantnli", "facts": facts, "premise": premise, "hypothesis": hyp,
              "difficulty": round(nli_difficulty(facts, hyp), 3)}
    return text, label, fields


# -- the task ----------------------------------------------------------------------------------------------------
class QuantNLITask(BuiltinTask):
    """Premise/hypothesis pairs about counts and comparisons, with balanced classes."""

    prompt = PROMPT

    required_fields = ("facts", "hypothesis", "difficulty")

    def build_examples(self) -> Iterator[Example]:
        deck = list(NLI_LABELS)

        def make(rng: random.Random, i: int) -> tuple[str, str, dict]:
            # Labels are dealt from a deck of the three classes reshuffled every third example, so every split
            # is balanced to ±1 (a redrawn duplicate keeps its slot's label).
            if i % 3 == 0:
                rng.shuffle(deck)
            return _nli_pair(rng, deck[i % 3])

        return generate(self.spec, make)

    def confidence(self, example: Example, teacher) -> float:
        """Probability that the teacher's answer is right; falls with difficulty, averages ``1 - error_rate``."""
        hardness = 0.5 * float(example.fields["difficulty"]) + 0.5 * teacher.dice(example, "hardness")
        # hardness averages 0.5, so the mean error is error_rate; the floor keeps the chosen label the likeliest.
        return max(0.45, 1.0 - 2.0 * teacher.error_rate * hardness)

    def injected_error(self, example: Example, teacher) -> str | None:
        if teacher.dice(example, "error") < self.confidence(example, teacher):
            return None
        return "parse_failure" if teacher.dice(example, "kind") < _NLI_PARSE_SHARE else "wrong_label"

    def write_answer(self, example: Example, teacher) -> TeacherReply:
        return _write(self, teacher, example)

    def read_input(self, text: str) -> dict | None:
        fields = read_nli(text)
        return None if fields is None else {**fields, "difficulty": round(nli_difficulty(fields["facts"],
                                                                                          fields["hypothesis"]), 3)}


def quantnli(n_train=1500, n_valid=150, n_test=300, seed=0) -> QuantNLITask:
    return QuantNLITask(name="quantnli", answer_kind="classes", labels=NLI_LABELS,
                        source="builtin", spec=sizes(n_train, n_valid, n_test, seed))


# -- the offline teacher's writer -------------------------------------------------------------------------------
def _write(task: QuantNLITask, teacher, ex: Example) -> TeacherReply:
    facts, hyp = ex.fields["facts"], ex.fields["hypothesis"]
    gold = nli_label(facts, hyp)
    confusion = _confusable(gold, teacher.dice(ex, "confuse"))
    error = task.injected_error(ex, teacher)
    label, believed = (gold, facts) if error is None else (confusion, _misread(facts, hyp, confusion))
    text = _explain(believed, hyp)
    conf = task.confidence(ex, teacher)
    second = confusion if error is None else gold
    third = next(lab for lab in NLI_LABELS if lab not in (label, second))
    rest = round(1.0 - conf, 6)
    dist = {label: round(conf, 6), second: round(0.7 * rest, 6)}
    dist[third] = round(1.0 - dist[label] - dist[second], 6)
    if error == "parse_failure":
        return TeacherReply(_unparseable_label(text, label, second, teacher.dice(ex, "how")), label_dist=dist)
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
    return truncate(text)
