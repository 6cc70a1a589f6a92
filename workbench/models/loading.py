"""The one checkpoint loader students, teachers and the server share, and the transformers plumbing around it: special
tokens, batch padding, parameter counts, and a tiny random checkpoint for tests and demos.

A checkpoint is a local folder (or a hub id while online) with ``config.json``, a tokenizer and safetensors
weights, or a name from the pretrained catalog (:mod:`workbench.models.catalog`, e.g. ``smollm2-135m``). Its
family comes from the config (``is_encoder_decoder``: seq2seq, else causal). Pickled weights are never unpickled,
and a checkpoint's own Python code runs only when ``trust_remote_code`` is asked for by name.

>>> from workbench.core.errors import RunError, TeacherError
>>> model, tokenizer, family = load_checkpoint(save_random_checkpoint("tiny-llama"), role="teacher", error=TeacherError)
>>> family, type(model).__name__
('causal', 'LlamaForCausalLM')
>>> load_checkpoint("no-such-model", role="student", error=RunError)     # doctest: +ELLIPSIS
Traceback (most recent call last):
...
workbench.core.errors.RunError: cannot load student 'no-such-model': ... Give a folder with config.json and a tokenizer, or a hub id while online
"""

from __future__ import annotations

import os

from safetensors import SafetensorError

from workbench.core.errors import ConfigError, WorkbenchError
from workbench.models import catalog, convert

FAMILIES = ("seq2seq", "causal")


def load_checkpoint(where: str, *, role: str, error: type[WorkbenchError], dtype=None,
                    trust_remote_code: bool = False, attn_implementation: str | None = None):
    """(model, tokenizer, family) of a checkpoint; a missing or pickled one raises ``error`` naming ``role``.

    A catalog name loads its converted folder (converting it on first use) or its hub id, with SDPA attention; a
    layer-subset name loads its base and keeps the subset's layers. The model's ``name_or_path`` is the catalog
    name, so a LoRA adapter saved from it names it as its base."""
    if where in catalog.MODELS and not os.path.isdir(where):  # a folder of that name wins
        return _load_pretrained(where, role=role, error=error, dtype=dtype, attn_implementation=attn_implementation)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise error(f"cannot load {role} {where!r}: {err}. Give a folder with config.json and a tokenizer, or a "
                    "hub id while online") from err
    family = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
    extra = {"dtype": dtype} if dtype is not None else {}
    if attn_implementation:
        extra["attn_implementation"] = attn_implementation
    try:  # use_safetensors: a pickled .bin checkpoint is refused, never unpickled
        model = auto.from_pretrained(where, config=config, use_safetensors=True,
                                     trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, SafetensorError) as err:  # SafetensorError: a truncated or empty file
        raise error(f"cannot load the {family} weights of {where!r} as safetensors: {err}. Only safetensors "
                    "checkpoints are read: convert a pytorch_model.bin one with "
                    "save_pretrained(..., safe_serialization=True)") from err
    ensure_special_tokens(tok, model, where)
    return model, tok, family


def _load_pretrained(name: str, *, role: str, error: type[WorkbenchError], dtype, attn_implementation):
    entry = catalog.MODELS[name]
    ok, why = catalog.availability(name)
    if not ok:
        raise error(f"cannot load {role} {name!r}: {why}")
    if entry.base:
        model, tok, family = _load_pretrained(entry.base, role=role, error=error, dtype=dtype,
                                              attn_implementation=attn_implementation)
        model = catalog.layer_subset(model, entry.layers)
    else:
        attn = attn_implementation or ("sdpa" if entry.family == "causal" else None)
        model, tok, family = load_checkpoint(convert.resolve(name), role=role, error=error, dtype=dtype,
                                             attn_implementation=attn)
    model.name_or_path = model.config._name_or_path = name
    return model, tok, family


def ensure_special_tokens(tok, model, where: str) -> None:
    """Students and teachers need an end-of-sequence token; padding falls back to it (padded positions are masked)."""
    if tok.eos_token_id is None:
        raise ConfigError(f"the tokenizer of {where!r} has no end-of-sequence token; students and teachers need one")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id


def pad_batch(seqs: list[list[int]], pad_id: int, *, left: bool):
    """Stack token lists into ids and attention mask tensors, padded on the left (causal generation) or right."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        cols = slice(width - len(s), width) if left else slice(0, len(s))
        ids[row, cols] = torch.tensor(s, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def count_parameters(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


_DEMO_WORDS = ("Q A the answer is So yes no maybe entailment neutral contradiction premise hypothesis has apples "
               "pears more less than total Anne Tom Mia gives gets eats how many left . , : ? ( ) + - * / = "
               "0 1 2 3 4 5 6 7 8 9 10 11 12 20")


def save_random_checkpoint(path, family: str = "causal", *, texts=(), chat_template: str | None = None,
                           hidden: int = 64, layers: int = 2, seed: int = 0, max_positions: int = 1024) -> str:
    """Save a tiny randomly initialised checkpoint (word-level tokenizer, safetensors) for tests, benchmarks and
    offline demos of ``serve-model``; it writes nonsense, which the parsers record as parse errors.

    >>> save_random_checkpoint("tiny-llama", "causal")
    'tiny-llama'
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        T5Config,
        T5ForConditionalGeneration,
    )

    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>", "<s>"])
    raw.train_from_iterator([_DEMO_WORDS, *texts], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                  bos_token="<s>")
    if chat_template:
        tok.chat_template = chat_template
    ids = {"pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "vocab_size": len(tok)}
    torch.manual_seed(seed)
    # A wide initialisation spreads the logits, so greedy argmax has no near-ties between batch and single runs.
    if family == "causal":
        model = LlamaForCausalLM(LlamaConfig(
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=max_positions, bos_token_id=tok.bos_token_id,
            tie_word_embeddings=True, initializer_range=0.2, **ids))
    elif family == "seq2seq":
        model = T5ForConditionalGeneration(T5Config(
            d_model=hidden, d_kv=hidden // 4, num_heads=4, d_ff=2 * hidden, num_layers=layers,
            num_decoder_layers=layers, decoder_start_token_id=tok.pad_token_id, initializer_factor=5.0, **ids))
    else:
        raise ConfigError(f"family must be causal or seq2seq, not {family!r}")
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return str(path)
