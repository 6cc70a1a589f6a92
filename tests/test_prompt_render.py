"""Quiet wrongness (issue 24, 6): a prompt template renders every placeholder wherever it sits. ``{answer}`` on the
same line as ``{input}`` used to drop the input from the prompt when no answer was given (the hint's whole line
went), and only the first line holding ``{answer}`` was filled.

    .venv/bin/python -m pytest -q tests/test_prompt_render.py
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.data.prompts import ANSWER, PLACEHOLDER, TEMPLATES, PromptTemplate, get_template
from workbench.data.tasks import TASKS

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

IN, ANS = "\u00abIN\u00bb", "\u00abANS\u00bb"  # markers no template text holds
plain = st.text(st.characters(blacklist_characters="{}\u00ab\u00bb\r\n\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e"),
                max_size=12)
piece = st.one_of(plain, st.sampled_from([PLACEHOLDER, ANSWER, "{", "}", "{inp", "ut}", "{{answer}}", " "]))
line = st.lists(piece, max_size=5).map("".join)


@st.composite
def templates(draw) -> str:
    """Lines of text with ``{input}`` somewhere (at least once) and ``{answer}`` anywhere: alone on a line, on the
    input's line before or after it, several times, or not at all."""
    lines = draw(st.lists(line, min_size=1, max_size=6))
    at = draw(st.integers(0, len(lines) - 1))
    cut = draw(st.integers(0, len(lines[at])))
    lines[at] = lines[at][:cut] + PLACEHOLDER + lines[at][cut:]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\nA:"]))


@FUZZ
@given(text=templates(), input_text=plain.map(lambda t: IN + t + "{answer}"),
       answer=plain.map(lambda t: ANS + t + "{input}"))
def test_every_placeholder_renders_wherever_it_sits(text, input_text, answer):
    template = PromptTemplate("t", text, "text")
    shown = template.render(input_text, answer)
    # Each placeholder became its value, once per occurrence, and a value holding a placeholder's text is shown as
    # it is (one pass: never substituted again).
    assert shown.count(IN) == text.count(PLACEHOLDER) and shown.count(ANS) == text.count(ANSWER)
    assert shown.count(input_text) >= text.count(PLACEHOLDER)
    assert shown == _reference(text, input_text, answer)
    # Without an answer the input is still there every time, and nothing of the answer is.
    bare = template.render(input_text)
    assert bare.count(IN) == text.count(PLACEHOLDER) and ANS not in bare
    assert ANSWER not in template.render(IN)  # (with an input free of braces: none of the hint is left)
    others = iter(bare.splitlines())  # the lines that hold neither placeholder stay, in order
    assert all(any(x == y for y in others) for x in text.splitlines() if ANSWER not in x and PLACEHOLDER not in x)


def _reference(text: str, input_text: str, answer: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith(PLACEHOLDER, i):
            out.append(input_text)
            i += len(PLACEHOLDER)
        elif text.startswith(ANSWER, i):
            out.append(answer)
            i += len(ANSWER)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("text, bare", [
    ("Q: {input} (The answer is {answer}.)\nA:", "Q: Anne has 4 apples.\nA:"),
    ("Q: {input}\n(The answer is {answer}.)\nA:", "Q: Anne has 4 apples.\nA:"),
    ("Answer: {answer}. Q: {input}\nA:", "Anne has 4 apples.\nA:"),
    ("Q: {input} {answer}\nA: {answer}\n", "Q: Anne has 4 apples.\n"),
])
def test_the_input_stays_when_there_is_no_answer(text, bare):
    template = PromptTemplate("t", text, "equation")
    assert template.render("Anne has 4 apples.") == bare
    full = template.render("Anne has 4 apples.", "4 - 1")
    assert "Anne has 4 apples." in full and full.count("4 - 1") == text.count(ANSWER)


@pytest.mark.parametrize("name", sorted(TEMPLATES) + sorted(TASKS.names()))  # the library's and the tasks' own
def test_shipped_templates_show_input_and_answer(name):
    template = (get_template(name) if name in TEMPLATES else TASKS[name]().template()).rationalizing()
    assert "Anne has 4 apples" in template.render("Anne has 4 apples") and ANSWER not in template.render("x")
    full = template.render("Anne has 4 apples", "( 4 - 1 )")
    assert "Anne has 4 apples" in full and "The correct answer is ( 4 - 1 )." in full
