"""Parsers: a teacher's raw text → a :class:`Parsed` record (rationale and label, or a ``parse_error`` saying why
not). A model's mistake is data: parsers never raise on model text.

Each prompt template names its parser (registry :data:`PARSERS`). Teachers run on into invented follow-on examples
(``Q: …``); every parser cuts them first.

>>> get_parser("equation").parse("4 - 2 - 1 is 1. The answer is (4 - 2 - 1).").label
'(4 - 2 - 1)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.core.registry import Registry
from workbench.data.metrics import EquationError, evaluate_equation

# Teachers run on into invented follow-on examples; cut at the first of these.
_FOLLOW_ON = re.compile(r"\n\s*(?:Q:|Question:|Premise:)|^Q:", re.MULTILINE)


@dataclass(frozen=True)
class Parsed:
    rationale: str | None
    label: str | None
    parse_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.parse_error is None


class Parser:
    """Base parser: cut the follow-on examples, split at the answer marker, normalise the label."""

    name = "base"
    markers: tuple[str, ...] = ("The answer is",)

    def parse(self, raw: str, labels: tuple[str, ...] | None = None) -> Parsed:
        text = cut_follow_on(raw or "").strip()
        if not text:
            return Parsed(None, None, "empty answer")
        hit = _find_marker(text, self.markers)
        if hit is None:
            return Parsed(text, None, f"no answer marker ({' / '.join(repr(m) for m in self.markers)})")
        start, end = hit
        rationale = text[:start].strip()
        return self.finish(rationale, text[end:], labels)

    def finish(self, rationale: str, tail: str, labels: tuple[str, ...] | None) -> Parsed:
        label = _first_line(tail).rstrip(".").strip()
        if not label:
            return Parsed(rationale, None, "empty label after the answer marker")
        return Parsed(rationale, label)


def cut_follow_on(raw: str) -> str:
    match = _FOLLOW_ON.search(raw)
    return raw[: match.start()] if match else raw


def _find_marker(text: str, markers: tuple[str, ...]) -> tuple[int, int] | None:
    best = None
    for marker in markers:
        for m in re.finditer(re.escape(marker), text, flags=re.IGNORECASE):
            # Of markers ending at the same place ("So the answer is" / "the answer is") the longer one wins, so
            # the rationale does not end with a dangling "So".
            if best is None or m.end() > best[1] or (m.end() == best[1] and m.start() < best[0]):
                best = (m.start(), m.end())
    return best  # the last marker wins: rationales may say "the answer is not X" before concluding


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


class EquationParser(Parser):
    """``… The answer is (84 / 2).`` → label ``(84 / 2)``; the label must evaluate as arithmetic."""

    name = "equation"

    def finish(self, rationale, tail, labels):
        line = _first_line(tail).strip().rstrip(".").strip()
        candidates = [line]
        paren = re.search(r"\(.*\)", tail)  # the paper's rule: the widest parenthesised span
        if paren:
            candidates.append(paren.group(0))
        last_err = "empty label after the answer marker"
        for candidate in candidates:
            if not candidate:
                continue
            try:
                evaluate_equation(candidate)
            except EquationError as err:
                last_err = f"label {candidate[:60]!r} is not arithmetic: {err}"
                continue
            return Parsed(rationale, candidate)
        return Parsed(rationale, candidates[-1] or None, last_err)


class PaperEquationParser(EquationParser):
    """The paper's own SVAMP rule, for its released outputs: the span from the first ``(`` to the last ``)`` after
    the marker (``re.search(r'\\(.*\\)')``) and nothing else, so ``(12 - 2) - 7`` gives ``(12 - 2)``. Kept apart
    from :class:`EquationParser` so that imported figures match the paper's (SVAMP test 148/200)."""

    name = "equation-paper"

    def finish(self, rationale, tail, labels):
        paren = re.search(r"\(.*\)", tail)
        if not paren:
            return Parsed(rationale, None, "no parenthesised equation after the answer marker")
        try:
            evaluate_equation(paren.group(0))
        except EquationError as err:
            return Parsed(rationale, paren.group(0), f"label {paren.group(0)[:60]!r} is not arithmetic: {err}")
        return Parsed(rationale, paren.group(0))


class ChoiceParser(Parser):
    """``… So the answer is (c) wooded area.`` → label ``wooded area`` (the choice text, as the paper's code)."""

    name = "choice"
    markers = ("So the answer is", "The answer is")

    def finish(self, rationale, tail, labels):
        line = _first_line(tail)
        match = re.match(r"\s*\(([a-eA-E])\)\s*(.*)", line)
        if not match:
            return Parsed(rationale, line.rstrip(".") or None, "no answer choice '(a)'–'(e)' after the marker")
        label = match.group(2).strip().rstrip(".").strip()
        if not label:
            return Parsed(rationale, None, f"choice ({match.group(1)}) without its text")
        return Parsed(rationale, label)


class ClassParser(Parser):
    """``… So the answer is neutral.`` or ``…\\nAnswer: neutral`` → a label from the task's label space."""

    name = "class"
    markers = ("So the answer is", "The answer is", "Answer:")

    def finish(self, rationale, tail, labels):
        line = _first_line(tail).rstrip(".").strip()
        if not line:
            return Parsed(rationale, None, "empty label after the answer marker")
        if labels:
            found = {lab for lab in labels if re.search(rf"\b{re.escape(lab)}\b", line, re.IGNORECASE)}
            if len(found) != 1:
                why = "no label" if not found else f"several labels ({', '.join(sorted(found))})"
                return Parsed(rationale, line, f"{why} of {', '.join(labels)} in {line[:60]!r}")
            return Parsed(rationale, found.pop())
        return Parsed(rationale, line)


class TextParser(Parser):
    name = "text"


class PaperNLIParser(Parser):
    """The paper's own ANLI rule, for its released outputs (``ANLI1DatasetLoader._parse_llm_output``): the text
    before the first ``Premise:``, right-stripped, split on ``So the answer is``; anything but exactly two parts is
    unparsed, and the label is the second part left-stripped with its last character dropped (the period). No
    follow-on cutting, no case folding: what the paper's code reads, this reads, so imported accuracies match it.

    >>> PaperNLIParser().parse("A man sleeps. So the answer is contradiction.", ("entailment", "neutral", "contradiction")).label
    'contradiction'
    >>> PaperNLIParser().parse("So the answer is neutral", ("neutral",)).parse_error
    "label 'neutra' is not one of neutral"
    """

    name = "nli-paper"
    markers = ("So the answer is",)

    def parse(self, raw: str, labels: tuple[str, ...] | None = None) -> Parsed:
        parts = (raw or "").split("Premise:")[0].rstrip().split("So the answer is")
        if len(parts) != 2:
            found = len(parts) - 1
            return Parsed((raw or "").strip() or None, None,
                          f"'So the answer is' appears {found} times before any 'Premise:' (the paper's rule needs "
                          "exactly one)")
        rationale, label = parts[0].rstrip(), parts[1].lstrip()[:-1]
        if labels and label not in labels:
            return Parsed(rationale, label or None, f"label {label[:60]!r} is not one of {', '.join(labels)}")
        return Parsed(rationale, label or None, None if label else "empty label after the answer marker")


PARSERS: Registry[type[Parser]] = Registry("parser", group="workbench.parsers")
for _cls in (EquationParser, PaperEquationParser, ChoiceParser, ClassParser, TextParser, PaperNLIParser):
    PARSERS.register(_cls)


def get_parser(name: str) -> Parser:
    return PARSERS[name]()
