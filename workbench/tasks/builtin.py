"""Built-in offline tasks: ``wordproblems`` (SVAMP-like arithmetic stories) and ``quantnli`` (NLI about counts).

Both are generated from a seed with a small vocabulary (20 names, 20 objects, a dozen story frames), so a tiny
student trained from scratch on CPU can learn them in about a minute. Both keep their structure in
``Example.fields`` (the quantities that matter, the distractors, the operations, the facts), which is what the
built-in teacher reads to answer, and to err, the way an LLM would.

>>> task = BUILTIN_TASKS["wordproblems"](n_train=4, n_valid=2, n_test=2)
>>> ex = next(iter(task.build_examples()))
>>> ex.split, evaluate_equation(ex.label) == ex.fields["answer"]
('test', True)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import ConfigError
from ..metrics import evaluate_equation
from ..store import Example
from .base import BUILTIN_TASKS, Task, register_task

__all__ = ["BUILTIN_TASKS", "NLI_LABELS", "WordProblemsTask", "QuantNLITask", "nli_label", "run_steps"]

_SHE = ("Anne", "Mia", "Lily", "Emma", "Sara", "Lucy", "Nora", "Kate", "Rosa", "Ella")
_HE = ("Tom", "Peter", "Sam", "Ben", "Jack", "Leo", "Max", "Paul", "Omar", "Dan")
NAMES = _SHE + _HE
OBJECTS = ("apples", "pears", "oranges", "cookies", "cakes", "pencils", "pens", "books", "cards", "stickers",
           "marbles", "balls", "toys", "shells", "stamps", "flowers", "eggs", "candies", "coins", "cups")
NLI_LABELS = ("entailment", "neutral", "contradiction")
# Test first, then valid, then train: inputs are unique across splits, and the test split stays the same when
# only n_train changes.
_SPLIT_ORDER = ("test", "valid", "train")


# -- word problems -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Frame:
    """A story shape. Steps are left-nested (``( a op b ) op c``), so the teacher can retell them one by one."""

    name: str
    ops: tuple[str, ...]
    story: tuple[str, ...]
    question: str
    start: str
    steps: tuple[str, ...]
    highs: tuple[int, ...] = (20, 20, 20)  # largest value per quantity: factors stay small so products do too

    @property
    def level(self) -> int:
        return len(self.ops)


_FRAMES = (
    _Frame("buy", ("+",), ("{N} has {a} {o}.", "{P} buys {b} more."), "How many {o} does {N} have now?",
           "{N} starts with {a} {o}.", ("{P} buys {b} more",)),
    _Frame("give", ("-",), ("{N} has {a} {o}.", "{P} gives {b} to {M}."), "How many {o} does {N} have left?",
           "{N} starts with {a} {o}.", ("{P} gives away {b}",)),
    _Frame("together", ("+",), ("{N} has {a} {o}.", "{M} has {b} {o}."), "How many {o} do they have together?",
           "{N} has {a} {o}.", ("{M} has {b}",)),
    _Frame("compare", ("-",), ("{N} has {a} {o}.", "{M} has {b} {o}."),
           "How many more {o} does {N} have than {M}?", "{N} has {a} {o}.", ("{M} has only {b}",)),
    _Frame("bags", ("*",), ("{N} has {a} bags.", "Each bag has {b} {o}."), "How many {o} does {N} have?",
           "{N} has {a} bags.", ("Each bag has {b} {o}",), (9, 9)),
    _Frame("share", ("/",), ("{N} has {a} {o}.", "{P} shares them equally among {b} friends."),
           "How many {o} does each friend get?", "{N} has {a} {o}.", ("{P} shares them among {b} friends",)),
    _Frame("give_two", ("-", "-"), ("{N} has {a} {o}.", "{P} gives {b} to {M} and {c} to {K}."),
           "How many {o} does {N} have left?", "{N} starts with {a} {o}.",
           ("{P} gives {b} to {M}", "Then {p} gives {c} to {K}")),
    _Frame("give_buy", ("-", "+"), ("{N} has {a} {o}.", "{P} gives {b} to {M}.", "Then {p} buys {c} more."),
           "How many {o} does {N} have now?", "{N} starts with {a} {o}.",
           ("{P} gives away {b}", "Then {p} buys {c} more")),
    _Frame("buy_give", ("+", "-"), ("{N} has {a} {o}.", "{P} buys {b} more.", "Then {p} gives {c} to {M}."),
           "How many {o} does {N} have now?", "{N} starts with {a} {o}.",
           ("{P} buys {b} more", "Then {p} gives away {c}")),
    _Frame("three", ("+", "+"), ("{N} has {a} {o}.", "{M} has {b} {o} and {K} has {c} {o}."),
           "How many {o} do they have together?", "{N} has {a} {o}.", ("{M} has {b}", "{K} has {c}")),
    _Frame("bags_buy", ("*", "+"), ("{N} has {a} bags with {b} {o} in each.", "{P} buys {c} more {o}."),
           "How many {o} does {N} have now?", "{N} has {a} bags.",
           ("Each bag has {b} {o}", "Then {p} buys {c} more"), (9, 9, 20)),
    _Frame("bags_give", ("*", "-"), ("{N} has {a} bags with {b} {o} in each.", "{P} gives {c} {o} to {M}."),
           "How many {o} does {N} have left?", "{N} has {a} bags.",
           ("Each bag has {b} {o}", "Then {p} gives away {c}"), (9, 9, 20)),
    _Frame("pool_share", ("+", "/"), ("{N} has {a} {o} and {M} has {b} {o}.",
                                      "They share them equally among {c} friends."),
           "How many {o} does each friend get?", "{N} has {a} {o}.",
           ("{M} has {b}", "They share them among {c} friends")),
    _Frame("give_pack", ("-", "/"), ("{N} has {a} {o}.", "{P} gives {b} to {M}.",
                                     "{P} puts the rest equally into {c} bags."),
           "How many {o} are in each bag?", "{N} starts with {a} {o}.",
           ("{P} gives away {b}", "{P} puts the rest into {c} bags")),
)

# (sentence, how the teacher names it when it says what is not needed); {X} is any name, {o2} another object.
_DISTRACTORS = (
    ("{N} also has {d} {o2}.", "the {d} {o2}"),
    ("{X} is {d} years old.", "{X}'s age of {d}"),
    ("The shop opened {d} days ago.", "the {d} days since the shop opened"),
    ("There are {d} kids in {X}'s class.", "the {d} kids in the class"),
    ("{X} walks {d} blocks to school.", "the {d} blocks to school"),
)


def run_steps(values: list[int], ops: list[str]) -> list[float]:
    """Running results of ``values[0] op values[1] op …`` left to right: ``run_steps([12, 5, 3], ['-', '+'])``
    is ``[7.0, 10.0]``. Shared with the teacher, which retells the same steps."""
    out, acc = [], float(values[0])
    for op, v in zip(ops, values[1:]):
        acc = evaluate_equation(f"{acc} {op} {v}")
        out.append(acc)
    return out


def equation_of(values: list[int], ops: list[str]) -> str:
    """``equation_of([12, 5, 3], ['-', '+'])`` is ``'( 12 - 5 ) + 3'``: spaces around every token."""
    text = f"{values[0]} {ops[0]} {values[1]}"
    for op, v in zip(ops[1:], values[2:]):
        text = f"( {text} ) {op} {v}"
    return text


def _draw_values(rng: random.Random, frame: _Frame) -> list[int]:
    # Rejection sampling keeps every frame's rule in one place: distinct numbers, every step a positive integer.
    while True:
        values: list[int] = []
        for high in frame.highs[: frame.level + 1]:
            values.append(rng.choice([v for v in range(2, high + 1) if v not in values]))
        steps = run_steps(values, list(frame.ops))
        if all(s > 0 and s == int(s) for s in steps):
            return values


def _draw_distractors(rng: random.Random, count: int, ctx: dict, used: list[int]) -> list[dict]:
    taken = set(used)
    out = []
    for sentence, mention in rng.sample(_DISTRACTORS, count):
        d = rng.choice([v for v in range(2, 21) if v not in taken])
        taken.add(d)
        sub = {**ctx, "d": d, "X": rng.choice(NAMES), "o2": rng.choice([o for o in OBJECTS if o != ctx["o"]])}
        out.append({"value": d, "sentence": sentence.format(**sub), "mention": mention.format(**sub)})
    return out


def _word_problem(rng: random.Random, level: int) -> tuple[str, str, dict]:
    """One story: (input text, gold equation, fields)."""
    frame = rng.choice([f for f in _FRAMES if f.level == min(level, 2)])
    name, other, third = rng.sample(NAMES, 3)
    pron = "she" if name in _SHE else "he"
    values = _draw_values(rng, frame)
    ctx = {"N": name, "M": other, "K": third, "p": pron, "P": pron.capitalize(), "o": rng.choice(OBJECTS),
           **dict(zip("abc", values))}
    distractors = _draw_distractors(rng, 2 if level >= 3 else 1, ctx, values)
    sentences = [s.format(**ctx) for s in frame.story]
    for d in distractors:  # never first: "She also has …" needs the story's subject introduced
        sentences.insert(rng.randint(1, len(sentences)), d["sentence"])
    text = " ".join([*sentences, frame.question.format(**ctx)])
    equation = equation_of(values, list(frame.ops))
    fields = {
        "task": "wordproblems", "level": level, "frame": frame.name, "object": ctx["o"],
        "entities": [n for n in NAMES if re.search(rf"\b{n}\b", text)], "used": values,
        "distractors": distractors, "operations": list(frame.ops), "equation": equation,
        "answer": int(run_steps(values, list(frame.ops))[-1]), "start": frame.start.format(**ctx),
        "steps": [s.format(**ctx) for s in frame.steps],
    }
    return text, equation, fields


# -- quantity NLI ------------------------------------------------------------------------------------------------
def nli_label(facts: list[list], hyp: dict) -> str:
    """Gold label of a hypothesis over premise facts ``[[who, object, count], …]``: a hypothesis about a person
    or object the premise does not mention is neutral. Shared with the teacher, which reasons the same way.

    >>> nli_label([["Tom", "cards", 7], ["Mia", "cards", 4]], {"kind": "more", "refs": [["Tom", "cards"], ["Mia", "cards"]]})
    'entailment'
    """
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


# -- tasks -------------------------------------------------------------------------------------------------------
def _generate(spec: dict, make: Callable[[random.Random, int], tuple[str, str, dict]]) -> Iterator[Example]:
    """Examples of every split from ``make(rng, index)``; duplicates of earlier inputs are drawn again."""
    seen: set[str] = set()
    for split in _SPLIT_ORDER:
        rng = random.Random(f"{spec['seed']}/{split}")  # str seeds hash with SHA-512: same in every process
        for i in range(spec[f"n_{split}"]):
            text, label, fields = make(rng, i)
            while text in seen:
                text, label, fields = make(rng, i)
            seen.add(text)
            yield Example(f"{split}-{i:05d}", split, text, label, fields)


def _sizes(n_train, n_valid, n_test, seed) -> dict:
    spec = {"n_train": int(n_train), "n_valid": int(n_valid), "n_test": int(n_test), "seed": int(seed)}
    if min(spec["n_train"], spec["n_valid"], spec["n_test"]) < 0:
        raise ConfigError(f"split sizes must be zero or more, not {spec}")
    return spec


class WordProblemsTask(Task):
    """SVAMP-like stories with distractors; the label is an equation over the story's numbers."""

    def build_examples(self) -> Iterator[Example]:
        levels = self.spec["levels"]
        return _generate(self.spec, lambda rng, i: _word_problem(rng, rng.choice(levels)))


class QuantNLITask(Task):
    """Premise/hypothesis pairs about counts and comparisons, with balanced classes."""

    def build_examples(self) -> Iterator[Example]:
        deck = list(NLI_LABELS)

        def make(rng: random.Random, i: int) -> tuple[str, str, dict]:
            # Labels are dealt from a deck of the three classes reshuffled every third example, so every split
            # is balanced to ±1 (a redrawn duplicate keeps its slot's label).
            if i % 3 == 0:
                rng.shuffle(deck)
            return _nli_pair(rng, deck[i % 3])

        return _generate(self.spec, make)


def _levels(levels) -> list[int]:
    if isinstance(levels, str):  # from a CLI flag: "1,2,3"
        levels = [p for p in levels.replace(" ", "").split(",") if p]
    out = sorted({int(v) for v in levels})
    if not out or not set(out) <= {1, 2, 3}:
        raise ConfigError(f"levels must be some of 1, 2, 3 (e.g. levels=1,2), not {levels!r}")
    return out


@register_task("wordproblems")
def wordproblems(n_train=2000, n_valid=200, n_test=300, seed=0, levels=(1, 2)) -> WordProblemsTask:
    """Level 1: one operation; 2: two; 3: two plus a second distractor. Levels are mixed evenly."""
    spec = {**_sizes(n_train, n_valid, n_test, seed), "levels": _levels(levels)}
    return WordProblemsTask(name="wordproblems", answer_kind="equation", template_name="wordproblems",
                            source="builtin", spec=spec,
                            description="Arithmetic word problems with distractors (offline, SVAMP-like).")


@register_task("quantnli")
def quantnli(n_train=1500, n_valid=150, n_test=300, seed=0) -> QuantNLITask:
    return QuantNLITask(name="quantnli", answer_kind="classes", labels=NLI_LABELS, template_name="quantnli",
                        source="builtin", spec=_sizes(n_train, n_valid, n_test, seed),
                        description="Natural language inference about quantities and comparisons (offline).")
