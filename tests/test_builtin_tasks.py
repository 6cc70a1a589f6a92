"""The built-in offline tasks: deterministic, well-formed, learnable (short inputs, small vocabulary)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from workbench.builtin.quantnli import NLI_LABELS, nli_label
from workbench.core.errors import ConfigError
from workbench.data.metrics import evaluate_equation
from workbench.data.tasks import TASKS, load_task

SMALL = {"n_train": 300, "n_valid": 30, "n_test": 60}


def build(name: str, **options) -> list:
    return list(TASKS[name](**options).build_examples())


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\b\d+\b", text)]


@pytest.mark.parametrize("name", ["wordproblems", "quantnli"])
def test_same_seed_same_examples_and_another_seed_differs(name):
    first, again, other = build(name, **SMALL), build(name, **SMALL), build(name, **SMALL, seed=1)
    assert first == again
    assert [e.input for e in first] != [e.input for e in other]


def test_examples_are_the_same_in_another_process():
    code = ("import hashlib, json; from workbench.data.tasks import TASKS as T; "
            "rows = [[e.id, e.input, e.label] for n in ('wordproblems', 'quantnli') "
            "for e in T[n](n_train=50, n_valid=5, n_test=5).build_examples()]; "
            "print(hashlib.sha256(json.dumps(rows).encode()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # hash randomisation must not leak into the data
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    rows = [[e.id, e.input, e.label] for n in ("wordproblems", "quantnli")
            for e in build(n, n_train=50, n_valid=5, n_test=5)]
    assert there.stdout.strip() == hashlib.sha256(json.dumps(rows).encode()).hexdigest()


@pytest.mark.parametrize("name", ["wordproblems", "quantnli"])
def test_split_sizes_unique_ids_and_inputs(name):
    examples = build(name, n_train=40, n_valid=7, n_test=11)
    assert Counter(e.split for e in examples) == {"train": 40, "valid": 7, "test": 11}
    assert len({e.id for e in examples}) == len({e.input for e in examples}) == len(examples)


def test_default_sizes():
    for name, sizes in {"wordproblems": (2000, 200, 300), "quantnli": (1500, 150, 300)}.items():
        counts = Counter(e.split for e in build(name))
        assert (counts["train"], counts["valid"], counts["test"]) == sizes


def test_the_test_split_does_not_depend_on_the_train_size():
    small = [e for e in build("wordproblems", n_train=10, n_valid=5, n_test=20) if e.split == "test"]
    large = [e for e in build("wordproblems", n_train=200, n_valid=5, n_test=20) if e.split == "test"]
    assert small == large


@pytest.mark.parametrize("levels", [(1, 2), (3,)])
def test_word_problem_labels_evaluate_to_the_answer(levels):
    for e in build("wordproblems", **SMALL, levels=levels):
        f = e.fields
        assert e.label == f["equation"]
        assert evaluate_equation(e.label) == f["answer"] > 0 and f["answer"] == int(f["answer"])
        assert re.fullmatch(r"[\d()+\-*/ ]+", e.label) and "  " not in e.label  # one space between tokens
        assert len(f["operations"]) == min(f["level"], 2) and f["level"] in levels
        assert numbers(e.label) == f["used"] and all(2 <= v <= 20 for v in f["used"])
        story = numbers(e.input)
        assert all(v in story for v in f["used"])


@pytest.mark.parametrize("levels", [(1, 2), (3,)])
def test_every_word_problem_has_distractors_the_equation_does_not_use(levels):
    for e in build("wordproblems", **SMALL, levels=levels):
        distractors = e.fields["distractors"]
        assert len(distractors) == (2 if levels == (3,) else 1)
        for d in distractors:
            assert d["sentence"] in e.input and str(d["value"]) in d["sentence"]
            assert d["value"] not in numbers(e.label)
        # all numbers in the story are distinct, so "which quantity" is never ambiguous
        assert len(set(numbers(e.input))) == len(numbers(e.input))


def test_word_problems_are_short_with_a_small_vocabulary():
    examples = build("wordproblems", levels=(1, 2, 3))
    lengths = [len(e.input.split()) for e in examples]
    assert max(lengths) <= 45
    assert len({w for e in examples for w in e.input.split()}) <= 300
    assert Counter(e.fields["level"] for e in examples).keys() == {1, 2, 3}
    assert len({tuple(e.fields["operations"]) for e in examples}) >= 10


def test_levels_option_accepts_cli_text_and_rejects_nonsense():
    assert TASKS["wordproblems"](levels="1, 3").spec["levels"] == [1, 3]
    for bad in ("5", "", (0,)):
        with pytest.raises(ConfigError):
            TASKS["wordproblems"](levels=bad)
    with pytest.raises(ConfigError):
        TASKS["quantnli"](n_test=-1)


def test_the_hard_level_has_three_operations_and_two_distractors():
    hard = list(TASKS["wordproblems-hard"](n_train=200, n_valid=0, n_test=0).build_examples())
    assert {e.fields["level"] for e in hard} == {3, 4}
    assert all(len(e.fields["operations"]) == {3: 2, 4: 3}[e.fields["level"]] for e in hard)
    assert all(len(e.fields["distractors"]) == 2 for e in hard)
    assert all(evaluate_equation(e.label) == e.fields["answer"] for e in hard)


def test_quantnli_classes_are_balanced_in_every_split():
    examples = build("quantnli")
    for split in ("train", "valid", "test"):
        counts = Counter(e.label for e in examples if e.split == split)
        assert set(counts) == set(NLI_LABELS) and max(counts.values()) - min(counts.values()) <= 1


def test_quantnli_labels_follow_from_the_facts():
    for e in build("quantnli", **SMALL):
        premise, hypothesis = e.input.split("\n")
        assert premise.startswith("Premise: ") and hypothesis.startswith("Hypothesis: ")
        f = e.fields
        assert nli_label(f["facts"], f["hypothesis"]) == e.label
        assert 0.0 <= f["difficulty"] <= 1.0
        mentioned = {(w, o) for w, o, _ in f["facts"]}
        missing = [tuple(r) for r in f["hypothesis"]["refs"] if tuple(r) not in mentioned]
        assert bool(missing) == (e.label == "neutral")
        assert len(e.input.split()) <= 30


def test_quantnli_covers_every_hypothesis_kind():
    kinds = Counter((e.fields["hypothesis"]["kind"], e.label) for e in build("quantnli"))
    for kind in ("more", "fewer", "at_least", "exactly", "total"):
        assert all(kinds[(kind, label)] > 10 for label in NLI_LABELS), kind


def test_load_task_materialises_into_the_store(store):
    task = load_task("quantnli", store, n_train=30, n_valid=6, n_test=9)
    assert task.split_sizes() == {"train": 30, "valid": 6, "test": 9}
    again = load_task("quantnli", store)
    assert again.labels == NLI_LABELS and again.spec["n_train"] == 30
    stored = again.examples("test")[0]
    assert stored.fields == json.loads(json.dumps(stored.fields)) and "facts" in stored.fields
