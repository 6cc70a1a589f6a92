from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.data.parsers import ChoiceParser, ClassParser, EquationParser, cut_follow_on
from workbench.data.prompts import PromptTemplate, template_hash

LABELS = ("entailment", "neutral", "contradiction")


def test_equation_parser_cuts_follow_on_examples():
    raw = "They put 10 seeds in each. 10 * 45 is 450. The answer is (10 * 45).\n\nQ: There are 15 trees. The answer is (1)."
    p = EquationParser().parse(raw)
    assert p.ok and p.label == "(10 * 45)" and p.rationale.endswith("10 * 45 is 450.")


def test_equation_parser_accepts_unparenthesised_equations():
    p = EquationParser().parse("12 - 5 = 7 and 7 + 3 = 10. The answer is ( 12 - 5 ) + 3.")
    assert p.ok and p.label == "( 12 - 5 ) + 3"


def test_equation_parser_records_non_arithmetic_labels_as_parse_errors():
    p = EquationParser().parse("Some were left. The answer is (23 + x).")
    assert not p.ok and p.label == "(23 + x)" and "not arithmetic" in p.parse_error


def test_missing_marker_is_a_parse_error_with_the_text_kept():
    p = EquationParser().parse("I think it is twelve.")
    assert p.parse_error.startswith("no answer marker") and p.rationale == "I think it is twelve." and p.label is None


def test_choice_parser_takes_choice_text():
    p = ChoiceParser().parse("Beavers need wood. So the answer is (c) wooded area.\n\nQ: next")
    assert p.ok and p.label == "wooded area"
    assert not ChoiceParser().parse("So the answer is wooded area.").ok


def test_class_parser_needs_exactly_one_label():
    assert ClassParser().parse("5 > 3. So the answer is entailment.", LABELS).label == "entailment"
    assert ClassParser().parse("The premise says so.\nAnswer: neutral", LABELS).label == "neutral"
    assert not ClassParser().parse("So the answer is maybe.", LABELS).ok
    assert not ClassParser().parse("So the answer is neutral or contradiction.", LABELS).ok


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parsers_never_raise_on_model_text(raw):
    for parser in (EquationParser(), ChoiceParser(), ClassParser()):
        p = parser.parse(raw, LABELS)
        assert p.ok == (p.parse_error is None)
        if p.ok:
            assert p.label  # a parsed answer never has an empty label


def test_cut_follow_on():
    assert cut_follow_on("A.\nQ: b") == "A."
    assert cut_follow_on("Q: only") == ""


def test_template_renders_and_hashes():
    t = PromptTemplate("t", "Q: {input}\nA:", "equation")
    assert t.render("2 + {x}") == "Q: 2 + {x}\nA:"
    assert t.hash == template_hash("Q: {input}\nA:", "equation") != t.with_text("Q:{input}").hash


def test_the_papers_anli_rule_branch_by_branch():
    """ANLI1DatasetLoader._parse_llm_output: split before 'Premise:', exactly one 'So the answer is', drop the
    label's last character. The lenient class parser stays the one new teachers get."""
    from workbench.data.parsers import PaperNLIParser, get_parser
    from workbench.imports.paper import PAPER_DATASETS

    p, labels = PaperNLIParser(), LABELS
    ok = p.parse("He is asleep, not awake. So the answer is contradiction.\nPremise: a follow-on", labels)
    assert (ok.rationale, ok.label, ok.parse_error) == ("He is asleep, not awake.", "contradiction", None)
    assert p.parse("  So the answer is   neutral.  ", labels).label == "neutral"  # rstrip, then lstrip the label
    none = p.parse("He is asleep. The answer is contradiction.", labels)
    assert none.label is None and "0 times" in none.parse_error
    twice = p.parse("So the answer is neutral. So the answer is entailment.", labels)
    assert twice.label is None and "2 times" in twice.parse_error
    after = p.parse("No marker here.\nPremise: x. So the answer is neutral.", labels)
    assert after.label is None  # the marker after 'Premise:' is not read
    clipped = p.parse("So the answer is neutral", labels)  # no period: the paper's code drops the 'l'
    assert clipped.label == "neutra" and "not one of" in clipped.parse_error
    assert get_parser("class").parse("So the answer is neutral", labels).label == "neutral"  # lenient
    assert PAPER_DATASETS["anli1"].released_parser == "nli-paper"
    assert PAPER_DATASETS["anli1"].template_name == "anli1"  # new teachers: the lenient class parser
