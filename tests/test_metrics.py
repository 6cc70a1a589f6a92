import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.data.metrics import (
    EquationError,
    accuracy,
    confusion_matrix,
    equation_match,
    evaluate_equation,
    exact_match,
)


@pytest.mark.parametrize("text, value", [
    ("( 12 - 5 ) + 3", 10.0), ("(84.0 / 2.0)", 42.0), ("-3 + 4", 1.0), ("2 * (3 + 4)", 14.0), ("7 × 2", 14.0),
    ("((1))", 1.0), ("1e3 / 10", 100.0),
])
def test_evaluates_arithmetic(text, value):
    assert evaluate_equation(text) == value


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo hi')", "x + 1", "(23 + x)", "(14, 21)", "2 ** 10", "2 // 3", "abs(-1)",
    "[1, 2]", "'a' + 'b'", "1 if 1 else 2", "", "   ", "1 / 0", "True + 1", "lambda: 1", "1 + (" * 80 + "1" + ")" * 80,
    "9" * 400, "1e400",
])
def test_rejects_anything_but_arithmetic(text):
    with pytest.raises(EquationError):
        evaluate_equation(text)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_never_raises_anything_but_equation_error(text):
    try:
        value = evaluate_equation(text)
    except EquationError:
        return
    assert math.isfinite(value)


_num = st.integers(min_value=0, max_value=50)  # depth 3 keeps products under the 1e15 cap


@st.composite
def expressions(draw, depth=3):
    if depth == 0 or draw(st.booleans()):
        n = draw(_num)
        return str(n), float(n)
    (lt, lv), (rt, rv) = draw(expressions(depth=depth - 1)), draw(expressions(depth=depth - 1))
    op = draw(st.sampled_from("+-*/"))
    if op == "/" and rv == 0:
        op = "+"
    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else 0}[op]
    return f"( {lt} {op} {rt} )", value


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_fuzz_agrees_with_python_arithmetic(expr):
    text, value = expr
    assert math.isclose(evaluate_equation(text), value, rel_tol=1e-9, abs_tol=1e-9)


def test_equation_match_compares_values():
    assert equation_match("(10 * 45)", "( 10.0 * 45.0 )")
    assert not equation_match("(10 + 45)", "( 10.0 * 45.0 )")
    assert not equation_match(None, "1")
    assert not equation_match("x", "1")


def test_exact_match_and_accuracy():
    assert exact_match(" wooded  area", "wooded area")
    assert accuracy(["a", "b", None], ["a", "c", "c"], "classes") == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        accuracy(["a"], [], "classes")


def test_confusion_matrix_counts_unparseable_as_other():
    cm = confusion_matrix(["yes", "no", None, "maybe"], ["yes", "yes", "no", "no"], ["yes", "no"])
    assert cm["matrix"] == [[1, 1, 0], [0, 0, 2]]
    assert cm["per_class"]["yes"]["recall"] == 0.5


@pytest.mark.timeout(30)
def test_a_long_chain_without_an_equals_sign_is_read_at_once():
    """An under-trained student writes "1 + 1 + 1 + ..." with no "=": the step checker (Compare, review) read 14
    such terms in 187 s and 30 in practically never; now any length is one linear-ish scan."""
    from workbench.data.metrics import check_steps

    assert check_steps("1 + " * 400 + "1 .").ok is None
    assert check_steps("( 1 + " * 200 + "1 ) and 2 + 2 = 4").summary() == "1/1 ✓"
    assert check_steps("(  ( 1 + 2 ) ) * 3 = 9").summary() == "1/1 ✓"  # spaces between brackets: read too
