"""Task metrics and a safe arithmetic evaluator.

Equations from models are never passed to ``eval``: :func:`evaluate_equation` walks the Python AST and allows
numbers, ``+ - * /``, unary minus and parentheses only.

>>> evaluate_equation("( 12 - 5 ) + 3")
10.0
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_EQUATION_CHARS = 500
MAX_NESTING = 50  # levels of parentheses
_MAX_MAGNITUDE = 1e15


class EquationError(ValueError):
    """The text is not an arithmetic expression of numbers and + - * /."""


def evaluate_equation(text: str) -> float:
    """Value of an arithmetic expression; raises :class:`EquationError` for anything else.

    The cost is bounded by the length (``MAX_EQUATION_CHARS``) and the depth of parentheses (``MAX_NESTING``); a
    long flat sum is not deep.

    >>> evaluate_equation("+".join(["1"] * 200))
    200.0
    """
    if not isinstance(text, str):
        raise EquationError(f"not text: {type(text).__name__}")
    text = text.strip().replace("×", "*").replace("÷", "/").replace("−", "-")
    if not text:
        raise EquationError("empty expression")
    if len(text) > MAX_EQUATION_CHARS:
        raise EquationError(f"expression longer than {MAX_EQUATION_CHARS} characters")
    if _nesting(text) > MAX_NESTING:
        raise EquationError(f"expression nested too deeply (more than {MAX_NESTING} levels of parentheses)")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise EquationError(f"not an arithmetic expression: {text[:60]!r}") from err
    return float(_evaluate(tree.body))


def _nesting(text: str) -> int:
    """The deepest level of parentheses (what makes an expression deep; a chain of + is flat)."""
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def _evaluate(root: ast.AST) -> float:
    """Post-order walk with an explicit stack: no recursion, so a long chain of operators cannot overflow it."""
    stack: list[tuple[ast.AST, bool]] = [(root, False)]
    values: list[float] = []
    while stack:
        node, ready = stack.pop()
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            values.append(_checked(node.value))
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            if not ready:
                stack += [(node, True), (node.right, False), (node.left, False)]
                continue
            right, left = values.pop(), values.pop()
            if isinstance(node.op, ast.Div) and right == 0:
                raise EquationError("division by zero")
            values.append(_checked(_BINOPS[type(node.op)](left, right)))
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            if not ready:
                stack += [(node, True), (node.operand, False)]
                continue
            values.append(_checked(_UNARY[type(node.op)](values.pop())))
        else:
            raise EquationError(f"not allowed in an equation: {type(node).__name__}")
    return values[0]


def _checked(value: float) -> float:
    try:
        value = float(value)
    except OverflowError as err:
        raise EquationError("number out of range") from err
    if not math.isfinite(value) or abs(value) > _MAX_MAGNITUDE:
        raise EquationError("number out of range")
    return value


def equation_match(pred: str | None, gold: str | None, tol: float = 1e-4) -> bool:
    """SVAMP's metric: two equations match when their values agree."""
    if pred is None or gold is None:
        return False
    try:
        return math.isclose(evaluate_equation(pred), evaluate_equation(gold), rel_tol=tol, abs_tol=tol)
    except EquationError:
        return False


def exact_match(pred: str | None, gold: str | None) -> bool:
    if pred is None or gold is None:
        return False
    return normalize_text(pred) == normalize_text(gold)


def normalize_text(text: str) -> str:
    return " ".join(text.strip().split())


METRICS = {"equation": equation_match, "classes": exact_match, "text": exact_match}
METRIC_NAMES = {"equation": "equation value match", "classes": "exact match", "text": "exact match"}


def is_correct(pred: str | None, gold: str | None, answer_kind: str, parse_error: str | None = None) -> bool:
    """Whether an answer counts as right: it parsed, and it matches gold by the answer kind's metric."""
    return parse_error is None and METRICS[answer_kind](pred, gold)


def accuracy(preds: list[str | None], golds: list[str | None], answer_kind: str,
             parse_errors: list[str | None] | None = None) -> float | None:
    """The one accuracy: the share of rows with a gold label that are right (a parse error counts as wrong).
    Rows without gold are not scored; None when no row has one.

    >>> accuracy(["4 - 1", "2 + 2", "x"], ["3", "5", None], "equation")
    0.5
    """
    if len(preds) != len(golds) or (parse_errors is not None and len(parse_errors) != len(golds)):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} gold labels")
    errors = parse_errors if parse_errors is not None else [None] * len(golds)
    scored = [(p, g, e) for p, g, e in zip(preds, golds, errors) if g is not None]
    if not scored:
        return None
    return sum(is_correct(p, g, answer_kind, e) for p, g, e in scored) / len(scored)


def confusion_matrix(preds: list[str | None], golds: list[str], labels: list[str]) -> dict:
    """Rows are gold labels, columns predictions; an unparseable or out-of-space prediction counts as ``other``."""
    cols = [*labels, "other"]
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(cols) for _ in labels]
    for pred, gold in zip(preds, golds):
        if gold not in index:
            continue
        col = index.get(normalize_text(pred) if pred else "", len(labels))
        matrix[index[gold]][col] += 1
    per_class = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return {"labels": labels, "columns": cols, "matrix": matrix, "per_class": per_class}


def score_predictions(rows: list[dict], answer_kind: str, labels: list[str] | None = None) -> dict:
    """Accuracy of prediction rows (``label``, ``gold``, ``parse_error``) over those with a gold label; for class
    tasks also per-class figures and a confusion matrix."""
    gold_rows = [r for r in rows if r.get("gold") is not None]
    out = {"accuracy": accuracy([r["label"] for r in rows], [r.get("gold") for r in rows], answer_kind,
                                [r.get("parse_error") for r in rows]),
           "n": len(gold_rows), "parse_errors": sum(1 for r in rows if r.get("parse_error"))}
    if answer_kind == "classes" and labels and gold_rows:
        cm = confusion_matrix([r["label"] for r in gold_rows], [r["gold"] for r in gold_rows], list(labels))
        out["per_class"], out["confusion"] = cm.pop("per_class"), cm
    return out


# -- checking a rationale's arithmetic ------------------------------------------------------------------------------
# Each space belongs to one place in the pattern: with ``\s*`` on both sides of an optional bracket, a long chain with
# no "=" (an untrained student's "1 + 1 + 1 + ...") made the search backtrack exponentially (14 terms: 187 s).
_OPERAND = r"(?:\(\s*)*-?\d+(?:\.\d+)?(?:\s*\))*"
_STEP = re.compile(rf"((?:{_OPERAND}\s*[-+*/×÷−]\s*)+{_OPERAND})\s*=\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class StepCheck:
    """The ``a op b = c`` steps of a rationale, each evaluated safely: how many, and which are wrong."""

    steps: int
    wrong: tuple[str, ...] = ()
    checked: tuple[tuple[str, bool], ...] = ()  # every step read, in order, with whether it is right

    @property
    def ok(self) -> bool | None:
        """True: every step is right; False: one is wrong; None: the text has no step to check."""
        return None if not self.steps else not self.wrong

    def summary(self) -> str:
        if not self.steps:
            return "–"
        return f"{self.steps - len(self.wrong)}/{self.steps} " + ("✓" if not self.wrong else "✗")


def check_steps(text: str | None) -> StepCheck:
    """Evaluate every arithmetic step ``expression = number`` in a rationale (never with ``eval``): the label's ✓
    says only that the final answer is right; a class should also see wrong steps on the way.

    >>> check_steps("She gives away 2, so 4 - 2 = 2. Then 2 - 1 = 1.").summary()
    '2/2 ✓'
    >>> check_steps("9 * 7 = 18, so ( 18 + 2 ) = 20").wrong
    ('9 * 7 = 18',)
    >>> check_steps("No numbers here.").ok is None
    True
    """
    steps, wrong, checked = 0, [], []
    for match in _STEP.finditer(text or ""):
        expression, result = match.group(1).strip(), float(match.group(2))
        if expression.count("(") != expression.count(")"):  # "( 12 - 5 ) + 3 = 10" caught from inside: trim
            expression = expression.lstrip("( ").rstrip(") ") if "(" not in expression.strip("( ") else expression
        try:
            value = evaluate_equation(expression)
        except EquationError:
            continue  # not a step this checker can read; the parser's job, not the arithmetic's
        steps += 1
        tol = 0.01 if "." in match.group(2) else 1e-6  # "10 / 3 = 3.33": rounded results are right
        right = math.isclose(value, result, rel_tol=tol, abs_tol=tol)
        if not right:
            wrong.append(" ".join(match.group(0).split()))
        checked.append((" ".join(match.group(0).split()), right))
    return StepCheck(steps, tuple(wrong), tuple(checked))
