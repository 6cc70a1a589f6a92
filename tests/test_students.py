"""Students: presets build without downloads, the word-level tokenizer keeps numbers whole, checkpoints load."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from workbench.core.errors import ConfigError, RunError, UnknownNameError
from workbench.distill.students import (
    PRESETS,
    build_word_tokenizer,
    count_parameters,
    load_student,
    make_student,
)

TEXTS = ["Tom has 12 apples. He buys 135 more!", "( 12 - 5 ) + 3", "So the answer is neutral."]


def test_word_tokenizer_keeps_numbers_whole_and_round_trips():
    tok = build_word_tokenizer(TEXTS)
    ids = tok("( 12 - 5 ) + 3", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids) == ["▁(", "▁12", "▁-", "▁5", "▁)", "▁+", "▁3"]
    for text in TEXTS:
        assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    assert tok.convert_ids_to_tokens(tok("[label] Tom", add_special_tokens=False).input_ids)[0] == "[label]"
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1


@pytest.mark.parametrize("name", ["tiny", "small", "tiny-causal"])
def test_presets_build(name):
    student = make_student(name, TEXTS, seed=0)
    assert student.family == PRESETS[name].family
    n = count_parameters(student.model)
    assert n < (2_000_000 if name.startswith("tiny") else 20_000_000)
    if name == "tiny":
        assert 500_000 < n < 1_500_000


def test_base_preset_is_t5_base_sized():
    tok = build_word_tokenizer(TEXTS)
    with torch.device("meta"):  # sizes only: no memory, no time
        model = PRESETS["base"].build(tok)
    assert model.config.d_model == 768 and model.config.num_layers == 12
    assert count_parameters(model) > 150_000_000


def test_unknown_preset_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="tiny"):
        make_student("huge")
    with pytest.raises((RunError, ConfigError), match="cannot load student|is not a folder here"):
        make_student(str(tmp_path / "nothing-here"))  # refused before anything loads, naming what to give


def _save(model, tok, path):
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def tiny_t5_folder(path, texts):
    tok = build_word_tokenizer(texts)
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=1, num_decoder_layers=1,
                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return _save(T5ForConditionalGeneration(cfg), tok, path)


def tiny_llama_folder(path, texts):
    tok = build_word_tokenizer(texts)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4, pad_token_id=0, eos_token_id=1)
    return _save(LlamaForCausalLM(cfg), tok, path)


def test_checkpoint_folders_load_with_their_family(tmp_path):
    s2s = load_student(tiny_t5_folder(tmp_path / "t5", TEXTS))
    causal = make_student(tiny_llama_folder(tmp_path / "llama", TEXTS))
    assert (s2s.family, causal.family) == ("seq2seq", "causal")
    assert causal.tokenizer.pad_token_id is not None
