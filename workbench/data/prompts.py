"""Prompt templates: editable few-shot text with one placeholder, ``{input}``, replaced by the example's rendered
input (plain replacement, so braces elsewhere in the text are safe), and the name of the parser
(:mod:`workbench.data.parsers`) that reads the teacher's answer.

>>> t = get_template("svamp")
>>> t.parser.parse("4 - 2 - 1 is 1. The answer is (4 - 2 - 1).").label
'(4 - 2 - 1)'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from importlib import resources

from workbench.core.errors import ConfigError, UnknownNameError
from workbench.data.parsers import Parser, get_parser

PLACEHOLDER = "{input}"
ANSWER = "{answer}"  # in a rationalizing template: the gold answer the teacher is asked to explain


@dataclass(frozen=True)
class PromptTemplate:
    """Few-shot chain-of-thought prompt text with an ``{input}`` placeholder, plus its parser."""

    name: str
    text: str
    parser_name: str

    @property
    def parser(self) -> Parser:
        return get_parser(self.parser_name)

    @property
    def hash(self) -> str:
        return template_hash(self.text, self.parser_name)

    def render(self, input_text: str, answer: str | None = None) -> str:
        """The prompt for one input; a rationalizing template also shows the gold ``answer``, wherever each
        placeholder sits. Without an answer its hint is left out: each line holding ``{answer}``, or on the input's
        own line the part from the input's end (or the line's start) to the hint's end.

        One pass over the template, so an input that holds the text ``{answer}`` (or an answer ``{input}``) is
        shown as it is, never substituted again.

        >>> PromptTemplate("t", "Q: {input} (answer: {answer})\\nA:", "text").render("1 + 1?")
        'Q: 1 + 1?\\nA:'
        """
        text = self.text if answer else _drop_hints(self.text)
        values = {PLACEHOLDER: input_text, ANSWER: answer or ""}
        return _PLACEHOLDERS.sub(lambda m: values[m.group()], text)

    @property
    def rationalizes(self) -> bool:
        return ANSWER in self.text

    def rationalizing(self) -> PromptTemplate:
        """Rationalization (STaR; SCOTT): the same prompt with the gold answer given, so a weak teacher explains the
        right answer instead of finding one. A different text, so its answers are kept apart by template hash.

        >>> t = get_template("svamp").rationalizing()
        >>> t.name, "The correct answer is ( 4 - 2 ) - 1." in t.render("Anne has 4 apples …", "( 4 - 2 ) - 1")
        ('svamp+rationalize', True)
        """
        if self.rationalizes:
            return self
        head, sep, tail = self.text.rpartition(PLACEHOLDER)
        hint = f"\n(The correct answer is {ANSWER}. Explain step by step why, then end with it as usual.)"
        return replace(self, name=f"{self.name}+rationalize", text=head + sep + hint + tail)

    def with_text(self, text: str) -> PromptTemplate:
        """A copy with edited text; validation keeps the placeholder, so an edit cannot silently drop the input."""
        if PLACEHOLDER not in text:
            raise ConfigError(f"the template must contain the placeholder {PLACEHOLDER}")
        return replace(self, text=text)


_PLACEHOLDERS = re.compile(re.escape(PLACEHOLDER) + "|" + re.escape(ANSWER))


def _drop_hints(text: str) -> str:
    """The template without its answer hints (for an example with no gold answer): a line holding ``{answer}`` goes;
    on a line that also holds ``{input}``, only the hint's side of it goes (the input and what stands before it,
    or after it, stay)."""
    kept = []
    for line in text.splitlines(keepends=True):
        if ANSWER not in line:
            kept.append(line)
            continue
        if PLACEHOLDER not in line:
            continue
        body = line.rstrip("\r\n")
        end = line[len(body):]
        first, last = body.index(PLACEHOLDER), body.rindex(PLACEHOLDER) + len(PLACEHOLDER)
        head, middle, tail = body[:first], body[first:last], body[last:]
        head = "" if ANSWER in head else head
        tail = "" if ANSWER in tail else tail
        kept.append(head + middle + tail + end)  # an {answer} between two inputs renders as nothing
    return "".join(kept)


def template_hash(text: str, parser_name: str) -> str:
    return hashlib.sha256(f"{parser_name}\0{text}".encode()).hexdigest()[:16]


# name → (file under workbench/prompt_templates/, parser): the library's templates, which imported and custom tasks
# name. A task class that owns its prompt (``Task.prompt``: the built-in tasks) needs no entry here.
TEMPLATES: dict[str, tuple[str, str]] = {
    "svamp": ("svamp.txt", "equation"),
    "cqa": ("cqa.txt", "choice"),
    "anli1": ("anli.txt", "class"),
    "esnli": ("esnli.txt", "class"),
    "generic-class": ("generic_class.txt", "class"),
    "generic-text": ("generic_text.txt", "text"),
    "generic-equation": ("svamp.txt", "equation"),
}


def get_template(name: str) -> PromptTemplate:
    if name not in TEMPLATES:
        raise UnknownNameError("prompt template", name, list(TEMPLATES))
    filename, parser = TEMPLATES[name]
    text = resources.files("workbench.data").joinpath("prompt_templates", filename).read_text(encoding="utf-8")
    return PromptTemplate(name=name, text=text, parser_name=parser)
