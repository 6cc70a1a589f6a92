"""Students: presets trained from scratch (no download) and any local or hub checkpoint, seq2seq or causal.

A preset builds a model from a config sized for its purpose, with a word-level tokenizer trained on the task's
own text (numbers stay whole tokens: copying ``12`` is one step, not two). Anything else is read with
``AutoConfig``: ``is_encoder_decoder`` picks ``AutoModelForSeq2SeqLM``, otherwise ``AutoModelForCausalLM``.

>>> student = make_student("tiny", texts=["Tom has 12 apples.", "( 12 - 5 ) + 3"])
>>> student.family, count_parameters(student.model) < 2_000_000
('seq2seq', True)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from .errors import ConfigError, RunError, UnknownNameError
from .padding import pad_batch

LABEL_PREFIX = "[label]"
RATIONALE_PREFIX = "[rationale]"
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", LABEL_PREFIX, RATIONALE_PREFIX)
# Words (letters or digits runs, with their leading-space marker) and single punctuation marks: "(12" → "(", "12".
_WORD_PATTERN = r"▁?[^\W_]+|▁?[^\w\s▁]|▁"


@dataclass
class Student:
    """A model, its tokenizer and its family (``seq2seq`` or ``causal``)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    family: str
    source: str

    @property
    def is_causal(self) -> bool:
        return self.family == "causal"


# -- tokenizers -------------------------------------------------------------------------------------------------
def build_word_tokenizer(texts: Iterable[str], vocab_size: int = 16000) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on ``texts``; decodes back to the original spacing.

    >>> tok = build_word_tokenizer(["Tom has 12 apples."])
    >>> tok.convert_ids_to_tokens(tok("Tom has 12", add_special_tokens=False).input_ids)
    ['▁Tom', '▁has', '▁12']
    """
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    # Metaspace keeps the spaces as "▁" so that decode(encode(text)) == text, which exact-match metrics need.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=list(SPECIAL_TOKENS))
    tok.train_from_iterator((t for t in texts if t), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   extra_special_tokens=[LABEL_PREFIX, RATIONALE_PREFIX])


# -- presets ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """A from-scratch student: its family and a builder from the tokenizer to an initialised model."""

    name: str
    family: str
    build: Callable[[PreTrainedTokenizerBase], PreTrainedModel]
    description: str


PRESETS: dict[str, Preset] = {}


def register_preset(name: str, family: str, description: str):
    def deco(build: Callable[[PreTrainedTokenizerBase], PreTrainedModel]):
        PRESETS[name] = Preset(name, family, build, description)
        return build

    return deco


def _t5(tok: PreTrainedTokenizerBase, **sizes) -> T5ForConditionalGeneration:
    config = T5Config(vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      decoder_start_token_id=tok.pad_token_id, **sizes)
    return T5ForConditionalGeneration(config)


@register_preset("tiny", "seq2seq", "T5-style, d_model 128, 2+2 layers (~1M params): learns built-in tasks on CPU")
def _tiny(tok):
    # Measured on 2 CPU cores: ~0.05 s/step at batch 32; no dropout since a few hundred steps cannot overfit.
    return _t5(tok, d_model=128, d_kv=32, num_heads=4, d_ff=512, num_layers=2, num_decoder_layers=2,
               dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True)


@register_preset("small", "seq2seq", "T5-style, d_model 256, 4+4 layers (~8M params)")
def _small(tok):
    return _t5(tok, d_model=256, d_kv=32, num_heads=8, d_ff=1024, num_layers=4, num_decoder_layers=4,
               dropout_rate=0.1, feed_forward_proj="gated-gelu", tie_word_embeddings=False)


@register_preset("base", "seq2seq", "T5-v1.1-base-sized (d_model 768, 12+12 layers): for GPUs")
def _base(tok):
    return _t5(tok, d_model=768, d_kv=64, num_heads=12, d_ff=2048, num_layers=12, num_decoder_layers=12,
               dropout_rate=0.1, feed_forward_proj="gated-gelu", tie_word_embeddings=False)


@register_preset("tiny-causal", "causal", "Llama-style decoder, hidden 128, 4 layers (~1M params)")
def _tiny_causal(tok):
    config = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def make_student(spec: str, texts: Iterable[str] = (), *, trust_remote_code: bool = False,
                 seed: int | None = None) -> Student:
    """A preset (tokenizer trained on ``texts``) or a checkpoint (local folder, or hub id when online)."""
    if spec in PRESETS:
        preset = PRESETS[spec]
        tok = build_word_tokenizer(texts)
        if seed is not None:
            torch.manual_seed(seed)  # the initial weights are part of what a seed reproduces
        return Student(preset.build(tok), tok, preset.family, spec)
    if os.path.isdir(spec) or "/" in spec:
        return load_student(spec, trust_remote_code=trust_remote_code)
    raise UnknownNameError("student preset", spec, list(PRESETS))


def load_student(path: str | Path, *, trust_remote_code: bool = False) -> Student:
    """Load a seq2seq or causal checkpoint with its tokenizer; the family comes from its config."""
    where = str(path)
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot load student {where!r}: {err}. Give a preset ({', '.join(PRESETS)}), a folder "
                       "with config.json and a tokenizer, or a hub id (online only)") from err
    family = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
    try:  # safetensors only: a pickled weights file is never unpickled
        model = auto.from_pretrained(where, config=config, trust_remote_code=trust_remote_code, use_safetensors=True)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot load the {family} weights of {where!r} as safetensors: {err}. Convert a "
                       "pytorch_model.bin checkpoint with save_pretrained(..., safe_serialization=True)") from err
    _ensure_special_tokens(tok, model, where)
    return Student(model, tok, family, where)


def _ensure_special_tokens(tok: PreTrainedTokenizerBase, model: PreTrainedModel, where: str) -> None:
    if tok.eos_token_id is None:
        raise ConfigError(f"the tokenizer of {where!r} has no end-of-sequence token; students need one")
    if tok.pad_token_id is None:  # common for causal models: padding is masked out anyway
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def list_presets() -> list[dict]:
    return [{"name": p.name, "family": p.family, "description": p.description} for p in PRESETS.values()]


# -- generation -------------------------------------------------------------------------------------------------
@torch.no_grad()
def generate(student: Student, prompts: list[list[int]], *, max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy continuations of already-tokenized prompts, decoded without special tokens.

    Prompts are sorted by length so each batch pads little; results come back in the caller's order.
    """
    model, tok = student.model, student.tokenizer
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = pad_batch([prompts[i] for i in idx], tok.pad_token_id, left=student.is_causal)
        ids, mask = ids.to(device), mask.to(device)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             num_beams=1, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if student.is_causal:
            gen = gen[:, ids.shape[1]:]  # a decoder-only model echoes its prompt
        for i, seq in zip(idx, gen.tolist()):
            out[i] = tok.decode(seq, skip_special_tokens=True).strip()
    model.train(was_training)
    return out
