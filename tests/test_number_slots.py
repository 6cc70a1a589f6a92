"""Number slots: what the student sees and how its answers map back to the input's numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.core.errors import ConfigError
from workbench.data.metrics import evaluate_equation
from workbench.distill.config import TrainConfig
from workbench.distill.encoding import Encoder, encoder_for
from workbench.distill.methods import get_method
from workbench.distill.number_slots import MAX_SLOTS, NumberSlots, resolve_numbers
from workbench.distill.predict import Predictor
from workbench.distill.students import make_student


def test_slots_follow_first_appearance_and_targets_map_by_value():
    text = "Tom has 12 apples. He gives 5 to Mia and 5 to Ben. The shop opened 1,000 days ago. It costs 2.5 coins."
    slots = NumberSlots.of(text)
    assert slots.encode(text) == ("Tom has N0 apples. He gives N1 to Mia and N1 to Ben. "
                                  "The shop opened N2 days ago. It costs N3 coins.")
    # A target writes numbers its own way: 12.0 is 12; a number the input lacks (a result) stays as written.
    assert slots.encode("( 12.0 - 5 ) - 5 = 2") == "( N0 - N1 ) - N1 = 2"
    assert slots.decode("N2 / N3 + N0") == "1000 / 2.5 + 12"
    assert evaluate_equation(slots.decode("N2 / N3")) == 400


def test_words_with_digits_are_not_numbers_and_unknown_slots_stay():
    slots = NumberSlots.of("Mia has 3 x2 cards and a B52 model; page 4.")
    assert slots.encode("Mia has 3 x2 cards and a B52 model; page 4.") == "Mia has N0 x2 cards and a B52 model; page N1."
    assert slots.decode("N0 + N7") == "3 + N7"  # the model named a slot the input has not: a parse error later


def test_an_input_that_already_has_slot_words_keeps_its_numbers():
    text = "Route N2 is 14 km long."
    slots = NumberSlots.of(text)
    assert slots.encode(text) == text and slots.decode("N2 + 1") == "N2 + 1"


def test_at_most_max_slots_then_numbers_stay_text():
    text = " ".join(str(n) for n in range(100, 100 + MAX_SLOTS + 3))
    out = NumberSlots.of(text).encode(text).split()
    assert out[:MAX_SLOTS] == [f"N{i}" for i in range(MAX_SLOTS)] and out[MAX_SLOTS:] == ["116", "117", "118"]


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_round_trip_of_any_numbers(values):
    text = "a " + " b ".join(str(v) for v in values) + " c"
    slots = NumberSlots.of(text)
    assert slots.decode(slots.encode(text)) == text


def test_auto_resolves_by_answer_kind_and_student():
    assert resolve_numbers("auto", "equation", from_scratch=True) == "slots"
    assert resolve_numbers("auto", "equation", from_scratch=False) == "text"  # a pretrained model reads numbers
    assert resolve_numbers("auto", "classes", from_scratch=True) == "text"  # comparisons need the magnitudes
    assert resolve_numbers("slots", "classes", from_scratch=False) == "slots"
    with pytest.raises(ConfigError, match="numbers must be one of"):
        TrainConfig(task="t", method="standard", numbers="digits")


def test_the_encoder_slots_input_label_and_rationale_alike():
    texts = ["Anne has 4 apples and gives Peter 2 and Thomas 1.", "( 4 - 2 ) - 1", "4 - 2 - 1 = 1"]
    student = make_student("tiny", texts=[NumberSlots.of(texts[0]).encode(t) for t in texts])
    enc = Encoder(student.tokenizer, causal=False, numbers="slots")
    row = {"input": texts[0], "label": texts[1], "rationale": texts[2]}
    feature = enc.encode(get_method("dss", alpha=0.5), row)
    decoded = [student.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in feature["targets"]]
    assert decoded == ["( N0 - N1 ) - N2", "N0 - N1 - N2 = N2"]
    assert student.tokenizer.unk_token_id not in sum(feature["sources"], [])
    # "auto" left in a config (a run saved before slots existed) reads as text.
    assert encoder_for(student, TrainConfig(task="t", method="standard")).numbers == "text"
    assert encoder_for(student, TrainConfig(task="t", method="standard", numbers="slots")).numbers == "slots"


def test_the_predictor_maps_generated_slots_back(monkeypatch):
    student = make_student("tiny", texts=["Tom has N0 pens and N1 cups.", "N1 - N0"])
    enc = Encoder(student.tokenizer, causal=False, numbers="slots")
    seen = []

    def fake_generate(student, prompts, *, max_new_tokens, batch_size, **_):  # one_line, progress, should_stop
        seen.extend(student.tokenizer.decode(p, skip_special_tokens=True) for p in prompts)
        return ["N1 - N0"] * len(prompts)

    monkeypatch.setattr("workbench.distill.predict.generate", fake_generate)
    rows = Predictor(student, get_method("standard"), enc).predict(["Tom has 7 pens and 19 cups."])
    assert seen == ["Tom has N0 pens and N1 cups."] and rows[0]["label"] == "19 - 7"
