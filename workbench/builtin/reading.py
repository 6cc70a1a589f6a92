"""How the offline teacher reads a new input it has not generated: a word problem or a premise/hypothesis pair
typed into the app, turned into the same structure (``Example.fields``) the task's writer answers from.

It is a small rule-based reader, not a language model: it follows the built-in stories' language (has, gives,
buys, each, shares …, distractor sentences about ages, days, other objects) and says so when it cannot read a
story (None), which the teacher turns into an answer no parser can read — a parse error, shown as such.

>>> f = read_word_problem("Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?")
>>> f["used"], f["operations"], f["object"]
([4, 2, 1], ['-', '-'], 'apples')
>>> read_nli("Premise: Tom has 7 cards. Mia has 4 cards.\\nHypothesis: Tom has more cards than Mia.")["facts"]
[['Tom', 'cards', 7], ['Mia', 'cards', 4]]
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\b\d+\b")
_MINUS = ("give", "gives", "gave", "eats", "ate", "loses", "lost", "spends", "spent", "sells", "sold", "uses", "used",
          "breaks", "broke", "drops", "dropped", "throws", "donates", "left", "away")
_PLUS = ("buy", "buys", "bought", "get", "gets", "got", "find", "finds", "found", "receives", "received", "picks", "makes", "more",
         "adds", "wins", "won")
_DIVIDE = ("shares", "share", "equally", "among", "split", "splits", "into", "divides")
_TIMES = ("each", "every", "per")
_DISTRACTOR = ("years old", "days", "blocks", "kids", "minutes", "hours", "class", "old")
_PRONOUNS = {"she", "he", "they", "it", "her", "his", "their", "then", "also"}


def read_word_problem(text: str) -> dict | None:
    """The fields the word-problem writer needs (quantities, operations, retold steps, distractors, object), or
    None when the story is outside what this reader follows (the task adds the equation and its value)."""
    sentences = [s.strip() for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s.strip()]
    if not sentences or not sentences[-1].endswith("?"):
        return None
    question, story = sentences[-1], sentences[:-1]
    obj = _object_of(question) or _first_object(story)
    subject = next((w for s in story for w in re.findall(r"\b[A-Z][a-z]+\b", s) if w.lower() not in _PRONOUNS),
                   "They")
    values, ops, steps, distractors, start = [], [], [], [], None
    for sentence in story:
        verb = None
        for clause in re.split(r",\s*|\s+and\s+", sentence.rstrip(".!")):
            numbers = [int(n) for n in _NUMBER.findall(clause)]
            if not numbers:
                verb = _verb_of(clause) or verb
                continue
            words = clause.lower()
            if _is_distractor(words, obj, start is None):
                distractors.append({"value": numbers[0], "sentence": clause, "mention": f"the {numbers[0]} in "
                                    f"\"{clause.strip()}\""})
                continue
            if start is None:
                start = f"{subject} has {numbers[0]} {obj}."
                values.append(numbers[0])
                if " with " in words and any(w in words for w in _TIMES) and len(numbers) > 1:  # 3 bags with 4 in each
                    values.append(numbers[1])
                    ops.append("*")
                    steps.append(f"Each one has {numbers[1]} {obj}")
                continue
            verb = _verb_of(clause) or verb
            op = _op_for(words, verb, question)
            if op is None:
                return None
            values.append(numbers[0])
            ops.append(op)
            steps.append(_say(op, subject, numbers[0], obj))
    if start is None or not ops or len(values) != len(ops) + 1:
        return None
    if any(v == 0 for v in values[1:]) and "/" in ops:
        return None
    return {"task": "wordproblems", "read": True, "object": obj, "used": values, "operations": ops,
            "start": start, "steps": steps, "distractors": distractors}


def _object_of(question: str) -> str | None:
    match = re.search(r"[Hh]ow many (\w+)", question)
    word = match.group(1) if match else None
    return None if word in (None, "are", "is", "do", "does", "did", "more", "will") else word


def _first_object(story: list[str]) -> str:
    for sentence in story:
        match = re.search(r"\b\d+\s+([a-z]+)", sentence)
        if match:
            return match.group(1)
    return "things"


def _verb_of(clause: str) -> str | None:
    words = clause.lower().split()
    return next((w for w in words if w in _MINUS + _PLUS + _DIVIDE), None)


def _is_distractor(words: str, obj: str, first: bool) -> bool:
    if any(d in words for d in _DISTRACTOR):
        return True
    other = re.search(r"\b\d+\s+([a-z]+)", words)
    # "She also has 4 pencils" when the question is about apples (the first quantity sets the object otherwise).
    owns = " has " in f" {words} " or " have " in f" {words} "
    return bool(owns and other and not first and other.group(1) != obj and other.group(1) not in ("more", "bags")
                and "each" not in words and not any(w in words for w in _DIVIDE))


def _op_for(words: str, verb: str | None, question: str) -> str | None:
    q = question.lower()
    if any(w in words for w in _DIVIDE):
        return "/"
    if any(f" {w} " in f" {words} " for w in _TIMES):
        return "*"
    if "more" in q and "than" in q:
        return "-"
    if any(w in q for w in ("together", "in total", "altogether", "in all")) and verb not in _MINUS:
        return "+"
    if verb in _MINUS or any(f" {w} " in f" {words} " for w in _MINUS):
        return "-"
    if verb in _PLUS or any(f" {w} " in f" {words} " for w in _PLUS) or " has " in f" {words} ":
        return "+"
    return None


def _say(op: str, subject: str, n: int, obj: str) -> str:
    return {"-": f"{subject} gives away {n}", "+": f"{subject} gets {n} more",
            "*": f"Each one has {n} {obj}", "/": f"They are shared among {n}"}[op]


# -- quantity NLI ---------------------------------------------------------------------------------------------------
_NAME = r"([A-Z][a-z]+)"
_PREMISES = (
    re.compile(rf"^{_NAME} has (\d+) (\w+) and (\d+) (\w+)\.?$"),
    re.compile(rf"^{_NAME} has (\d+) (\w+)\.\s*{_NAME} has (\d+) (\w+)\.?$"),
)
_HYPOTHESES = (
    (re.compile(rf"^{_NAME} has (at least|exactly) (\d+) (\w+)\.?$"), "count"),
    (re.compile(rf"^{_NAME} and {_NAME} have (\d+) (\w+) in total\.?$"), "total_two"),
    (re.compile(rf"^{_NAME} has (\d+) (\w+) and (\w+) in total\.?$"), "total_one"),
    (re.compile(rf"^{_NAME} has (more|fewer) (\w+) than (\w+)\.?$"), "compare"),
)


def read_nli(text: str) -> dict | None:
    """The facts and hypothesis of a ``Premise: …`` / ``Hypothesis: …`` pair in the built-in task's language."""
    match = re.search(r"Premise:\s*(.+?)\s*\n\s*Hypothesis:\s*(.+)", text.strip(), re.S)
    if not match:
        return None
    premise, hypothesis = (" ".join(part.split()) for part in match.groups())
    facts = None
    m = _PREMISES[0].match(premise)
    if m:
        who, a, o1, b, o2 = m.groups()
        facts = [[who, o1, int(a)], [who, o2, int(b)]]
    m = m or _PREMISES[1].match(premise)
    if facts is None and m:
        w1, a, o1, w2, b, o2 = m.groups()
        facts = [[w1, o1, int(a)], [w2, o2, int(b)]]
    if facts is None:
        return None
    hyp = _hypothesis(hypothesis, facts)
    if hyp is None:
        return None
    return {"task": "quantnli", "read": True, "facts": facts, "premise": premise, "hypothesis": hyp}


def _hypothesis(text: str, facts: list[list]) -> dict | None:
    for pattern, shape in _HYPOTHESES:
        m = pattern.match(text)
        if not m:
            continue
        g = m.groups()
        if shape == "count":
            return {"kind": g[1].replace(" ", "_"), "refs": [[g[0], g[3]]], "n": int(g[2])}
        if shape == "total_two":
            return {"kind": "total", "refs": [[g[0], g[3]], [g[1], g[3]]], "n": int(g[2])}
        if shape == "total_one":
            return {"kind": "total", "refs": [[g[0], g[2]], [g[0], g[3]]], "n": int(g[1])}
        who, kind, obj, other = g
        # "Tom has more cards than Mia" (two people) or "Tom has more cards than pens" (two objects).
        return {"kind": kind, "refs": [[who, obj], [other, obj] if other[0].isupper() else [who, other]]}
    return None
