"""``wordproblems``: SVAMP-like arithmetic stories with distractors, generated from a seed, and the offline
teacher's writer for them.

A small vocabulary (20 names, 20 objects, 14 story frames) keeps the task learnable by a tiny student on a CPU.
Level 1: one operation; 2: two; 3: two plus a second distractor. The label is an equation over the story's
numbers, scored by value. As the teacher, with probability ``error_rate`` it uses a distractor quantity, picks
the wrong operation (the rationale follows the mistake through), or ends with an answer no parser can read.

>>> task = wordproblems(n_train=4, n_valid=2, n_test=2)
>>> ex = next(iter(task.build_examples()))
>>> ex.split, evaluate_equation(ex.label) == ex.fields["answer"]
('test', True)
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from workbench.builtin.reading import read_word_problem
from workbench.builtin.task_base import NAMES, OBJECTS, SHE, BuiltinTask, fmt, generate, sizes, truncate
from workbench.core.errors import ConfigError
from workbench.core.store_records import Example
from workbench.data.metrics import EquationError, evaluate_equation
from workbench.data.prompts import PromptTemplate
from workbench.rationales.teachers.base import TeacherReply

# The task's own few-shot prompt (its parser: ``equation``). Its text is part of every generation's template hash:
# changing it keeps earlier answers apart from new ones.
PROMPT = PromptTemplate("wordproblems", """\
Answer each math word problem. Say which numbers matter and work it out step by step. Say which numbers do not matter and why. End with "The answer is" and one equation over the numbers in the story.

Q: Anne has 12 apples. She gives 5 to Peter. Anne also has 4 pencils. Then she buys 3 more. How many apples does Anne have now?
A: Anne starts with 12 apples. She gives away 5, so 12 - 5 = 7. Then she buys 3 more, so 7 + 3 = 10. We do not need the 4 pencils, because the question is about apples. The answer is ( 12 - 5 ) + 3.

Q: Tom has 6 bags. Each bag has 4 marbles. The shop opened 9 days ago. How many marbles does Tom have?
A: Tom has 6 bags. Each bag has 4 marbles, so 6 * 4 = 24. We do not need the 9 days since the shop opened, because the question is about marbles. The answer is 6 * 4.

Q: Mia has 7 cards and Leo has 11 cards. Sam is 10 years old. They share them equally among 3 friends. There are 15 kids in Mia's class. How many cards does each friend get?
A: Mia has 7 cards. Leo has 11, so 7 + 11 = 18. They share them among 3 friends, so 18 / 3 = 6. We do not need Sam's age of 10 or the 15 kids in the class, because the question is about cards. The answer is ( 7 + 11 ) / 3.

Q: Ben has 16 shells. Lucy has 9 shells. Ben walks 5 blocks to school. How many more shells does Ben have than Lucy?
A: Ben has 16 shells. Lucy has only 9, so 16 - 9 = 7. We do not need the 5 blocks to school, because the question is about shells. The answer is 16 - 9.

Q: {input}
A:
""", "equation")

# Which mistake, given that one is made: (kind, cumulative share).
_WP_ERRORS = (("wrong_quantity", 0.4), ("wrong_operation", 0.75), ("parse_failure", 1.0))
# Operations a reader confuses an operation with, most plausible first.
_OP_SWAPS = {"+": ("-", "*"), "-": ("+", "/"), "*": ("+", "-"), "/": ("*", "-")}
_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen twenty").split()


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
    # Three operations (level 4): more steps per problem.
    _Frame("give_buy_give", ("-", "+", "-"), ("{N} has {a} {o}.", "{P} gives {b} to {M}.", "Then {p} buys {c} more.",
                                              "Later {p} gives {e} to {K}."),
           "How many {o} does {N} have now?", "{N} starts with {a} {o}.",
           ("{P} gives away {b}", "Then {p} buys {c} more", "Then {p} gives away {e}"), (20, 20, 20, 20)),
    _Frame("buy_find_give", ("+", "+", "-"), ("{N} has {a} {o}.", "{P} buys {b} more.", "{P} finds {c} more.",
                                              "Then {p} gives {e} to {M}."),
           "How many {o} does {N} have now?", "{N} starts with {a} {o}.",
           ("{P} buys {b} more", "{P} finds {c} more", "Then {p} gives away {e}"), (20, 20, 20, 20)),
    _Frame("bags_buy_share", ("*", "+", "/"), ("{N} has {a} bags with {b} {o} in each.", "{P} buys {c} more {o}.",
                                               "{P} shares them equally among {e} friends."),
           "How many {o} does each friend get?", "{N} has {a} bags.",
           ("Each bag has {b} {o}", "Then {p} buys {c} more", "{P} shares them among {e} friends"), (9, 9, 20, 9)),
    _Frame("three_give", ("+", "+", "-"), ("{N} has {a} {o}.", "{M} has {b} {o} and {K} has {c} {o}.",
                                           "They give {e} to their teacher."),
           "How many {o} do they have left?", "{N} has {a} {o}.",
           ("{M} has {b}", "{K} has {c}", "They give away {e}"), (20, 20, 20, 20)),
)
# Operations per level: 1 and 2 as named, 3 is level 2 with a second distractor, 4 has three operations and two.
_OPS_FOR_LEVEL = {1: 1, 2: 2, 3: 2, 4: 3}

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
    frame = rng.choice([f for f in _FRAMES if f.level == _OPS_FOR_LEVEL[level]])
    name, other, third = rng.sample(NAMES, 3)
    pron = "she" if name in SHE else "he"
    values = _draw_values(rng, frame)
    ctx = {"N": name, "M": other, "K": third, "p": pron, "P": pron.capitalize(), "o": rng.choice(OBJECTS),
           **dict(zip("abce", values))}  # not "d": a distractor's own value is {d}
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


# -- the task ----------------------------------------------------------------------------------------------------
class WordProblemsTask(BuiltinTask):
    """SVAMP-like stories with distractors; the label is an equation over the story's numbers."""

    prompt = PROMPT

    required_fields = ("used", "operations", "start", "steps", "distractors", "object")

    def build_examples(self) -> Iterator[Example]:
        levels = self.spec["levels"]
        return generate(self.spec, lambda rng, i: _word_problem(rng, rng.choice(levels)))

    def injected_error(self, example: Example, teacher) -> str | None:
        if teacher.dice(example, "error") >= teacher.error_rate:
            return None
        pick = teacher.dice(example, "kind")
        return next(kind for kind, upto in _WP_ERRORS if pick < upto)

    def write_answer(self, example: Example, teacher) -> TeacherReply:
        return _write(self, teacher, example)

    def read_input(self, text: str) -> dict | None:
        fields = read_word_problem(text)
        if fields is None:
            return None
        try:
            answer = run_steps(fields["used"], fields["operations"])[-1]
        except EquationError:  # a division by zero in the story as read
            return None
        return {**fields, "equation": equation_of(fields["used"], fields["operations"]), "answer": answer}


def _levels(levels) -> list[int]:
    if isinstance(levels, str):  # from a CLI flag: "1,2,3"
        levels = [p for p in levels.replace(" ", "").split(",") if p]
    out = sorted({int(v) for v in levels})
    if not out or not set(out) <= set(_OPS_FOR_LEVEL):
        raise ConfigError(f"levels must be some of 1, 2, 3, 4 (e.g. levels=1,2), not {levels!r}")
    return out


def wordproblems(n_train=2000, n_valid=200, n_test=300, seed=0, levels=(1, 2)) -> WordProblemsTask:
    """Level 1: one operation; 2: two; 3: two plus a second distractor; 4: three operations and two distractors.
    Levels are mixed evenly."""
    spec = {**sizes(n_train, n_valid, n_test, seed), "levels": _levels(levels)}
    return WordProblemsTask(name="wordproblems", answer_kind="equation",
                            source="builtin", spec=spec)


def wordproblems_hard(n_train=2000, n_valid=200, n_test=300, seed=0, levels=(3, 4)) -> WordProblemsTask:
    """The harder built-in word problems: two or three operations, two distractors each (levels 3 and 4), so a
    pretrained student does not reach 1.00 from a few rows and a data-efficiency curve has room to rise."""
    task = wordproblems(n_train, n_valid, n_test, seed, levels)
    task.name = "wordproblems-hard"
    return task




# -- the offline teacher's writer -------------------------------------------------------------------------------
def _write(task: WordProblemsTask, teacher, ex: Example) -> TeacherReply:
    f = ex.fields
    values, ops = [int(v) for v in f["used"]], list(f["operations"])
    says, unused = [f["start"], *f["steps"]], list(f["distractors"])
    error = task.injected_error(ex, teacher)
    if error == "wrong_quantity":  # reads a distractor as if it were one of the story's quantities
        i, j = _wrong_quantity(values, ops, unused, teacher.dice(ex, "where"))
        d = unused.pop(j)
        says[i] = re.sub(rf"\b{values[i]}\b", str(d["value"]), says[i], count=1)
        values[i] = int(d["value"])
    elif error == "wrong_operation":
        i = int(teacher.dice(ex, "where") * len(ops))
        ops[i] = _wrong_op(values, ops, i)
    text = _retell(values, ops, says, unused, f["object"])
    result = run_steps(values, ops)[-1]
    if error == "parse_failure":
        return TeacherReply(_unparseable_equation(text, result, f["object"], teacher.dice(ex, "how")))
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
        sentences.append(f"{say}, so {fmt(prev)} {op} {v} = {fmt(result)}.")
        prev = result
    if unused:
        mentions = " or ".join(d["mention"] for d in unused)
        sentences.append(f"We do not need {mentions}, because the question is about {obj}.")
    return " ".join(sentences)


def _unparseable_equation(text: str, result: float, obj: str, how: float) -> str:
    """The right reasoning with an answer no equation parser can read: words, units, or cut off."""
    if how < 0.4:
        words = _WORDS[int(result)] if result == int(result) and 0 <= result <= 20 else fmt(result)
        return f"{text} The answer is {words} {obj}."
    if how < 0.7:
        return f"{text} So that makes {fmt(result)} {obj} in the end."
    return truncate(text)
