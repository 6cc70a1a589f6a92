"""The Student concept: presets trained from scratch (no download), pretrained models from the catalog
(:mod:`workbench.models.catalog`: ``smollm2-135m``, its 15-layer subset, and hub models marked with what they need)
and any checkpoint, seq2seq or causal, in one registry (:data:`STUDENTS`) with the recipe each trains with.

A preset builds a model from a config sized for its purpose, with a word-level tokenizer trained on the task's
own text (numbers stay whole tokens: copying ``12`` is one step, not two). A pretrained student loads its catalog
model with its own tokenizer. Anything else is a checkpoint folder or a hub id, loaded by
:func:`workbench.models.loading.load_checkpoint` (family from its config).

>>> student = make_student("tiny", texts=["Tom has 12 apples.", "( 12 - 5 ) + 3"])
>>> student.family, count_parameters(student.model) < 2_000_000
('seq2seq', True)
>>> recipe_for("tiny").steps, recipe_for("/my/checkpoint").learning_rate, recipe_for("smollm2-135m").batch_size
(1000, 0.0001, 8)
>>> is_from_scratch("tiny"), is_from_scratch("smollm2-135m"), STUDENTS["smollm2-135m"].family
(True, False, 'causal')
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import ConfigError, RunError, UnknownNameError
from workbench.core.registry import Registry
from workbench.distill.lora import is_adapter_folder, load_adapter_checkpoint
from workbench.distill.methods import LABEL_PREFIX, RATIONALE_PREFIX
from workbench.distill.student_recipes import FROM_SCRATCH, FROM_SCRATCH_BASE, PAPER_T5, PRETRAINED, Recipe
from workbench.models import catalog
from workbench.models.loading import count_parameters, load_checkpoint, pad_batch  # noqa: F401  (re-exported)

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", LABEL_PREFIX, RATIONALE_PREFIX)
# Words (letters or digits runs, with their leading-space marker) and single punctuation marks: "(12" → "(", "12".
_WORD_PATTERN = r"▁?[^\W_]+|▁?[^\w\s▁]|▁"


@dataclass
class Student:
    """A model, its tokenizer and its family (``seq2seq`` or ``causal``)."""

    model: object  # a transformers PreTrainedModel
    tokenizer: object  # a PreTrainedTokenizerBase
    family: str
    source: str

    @property
    def is_causal(self) -> bool:
        return self.family == "causal"


# -- device and precision ---------------------------------------------------------------------------------------
def device_info(bf16: str = "auto", student: str | None = None) -> dict:
    """Where training will run: CUDA when present, else CPU; and whether in bf16 mixed precision (weights stay
    float32: autocast). ``auto`` takes bf16 where the hardware does it natively: a card that supports it, and, on a
    CPU with AVX512-BF16 or AMX, for a pretrained student (``student`` None: as for one); ``true``/``false`` force it.

    Measured on 2 AVX512-BF16 cores (bench/results/precision.md): a SmolLM2 step 1.33x (standard) to 1.40x (dss)
    faster and its scoring 1.8-2x; the from-scratch presets gain less (``tiny`` 1.0-1.24x a step) and the demo's
    ``tiny`` run was no faster end to end (152.6 vs 147.7 s) and scored 0.947 against 0.987, so they stay float32."""
    import torch

    if torch.cuda.is_available():
        use = torch.cuda.is_bf16_supported() if bf16 == "auto" else bf16 == "true"
        return {"device": f"cuda ({torch.cuda.get_device_name(0)})", "bf16": bool(use), "cuda": True}
    if bf16 == "auto":
        use = cpu_bf16() and not (student is not None and is_from_scratch(student))
    else:
        use = bf16 == "true"
    return {"device": f"cpu ({torch.get_num_threads()} threads)", "bf16": use, "cuda": False}


def cpu_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere torch emulates it, slower."""
    import torch

    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


# -- tokenizers -------------------------------------------------------------------------------------------------
def build_word_tokenizer(texts: Iterable[str], vocab_size: int = 16000):
    """A word-level tokenizer trained on ``texts``; decodes back to the original spacing.

    >>> tok = build_word_tokenizer(["Tom has 12 apples."])
    >>> tok.convert_ids_to_tokens(tok("Tom has 12", add_special_tokens=False).input_ids)
    ['▁Tom', '▁has', '▁12']
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

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


# -- the registry -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """A from-scratch student: its family, a builder from the tokenizer to an initialised model, and its recipe."""

    name: str
    family: str
    build: Callable
    description: str
    recipe: Recipe = FROM_SCRATCH
    from_scratch = True

    def availability(self) -> tuple[bool, str]:
        return True, "built from scratch here (no download)"

    def make(self, texts: Iterable[str], *, seed: int | None = None, trust_remote_code: bool = False) -> Student:
        import torch

        tok = build_word_tokenizer(texts)
        if seed is not None:
            torch.manual_seed(seed)  # the initial weights are part of what a seed reproduces
        return Student(self.build(tok), tok, self.family, self.name)


@dataclass(frozen=True)
class PretrainedStudent:
    """A student that starts from a catalog model (:mod:`workbench.models.catalog`), with its own tokenizer."""

    name: str
    family: str
    description: str
    recipe: Recipe = PRETRAINED
    from_scratch = False

    def availability(self) -> tuple[bool, str]:
        return catalog.availability(self.name)

    def make(self, texts: Iterable[str] = (), *, seed: int | None = None, trust_remote_code: bool = False
             ) -> Student:
        return load_student(self.name)


STUDENTS: Registry[Preset | PretrainedStudent] = Registry("student", group="workbench.students")
PRESETS = STUDENTS  # the name the from-scratch presets have always had


def register_preset(name: str, family: str, description: str, recipe: Recipe = FROM_SCRATCH):
    def deco(build: Callable):
        STUDENTS.register(name, Preset(name, family, build, description, recipe))
        return build

    return deco


def _t5(tok, **sizes):
    from transformers import T5Config, T5ForConditionalGeneration

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


@register_preset("base", "seq2seq", "T5-v1.1-base-sized (d_model 768, 12+12 layers): for GPUs", FROM_SCRATCH_BASE)
def _base(tok):
    return _t5(tok, d_model=768, d_kv=64, num_heads=12, d_ff=2048, num_layers=12, num_decoder_layers=12,
               dropout_rate=0.1, feed_forward_proj="gated-gelu", tie_word_embeddings=False)


@register_preset("tiny-causal", "causal", "Llama-style decoder, hidden 128, 4 layers (~1M params)")
def _tiny_causal(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


# The catalog's models are students too; T5-family ones get the paper's settings (not measured here).
for _name, _model in catalog.MODELS.items():
    STUDENTS.register(_name, PretrainedStudent(_name, _model.family, _model.description,
                                               PAPER_T5 if _model.family == "seq2seq" else PRETRAINED))


def is_from_scratch(spec: str) -> bool:
    """A preset with random weights and a tokenizer of its own (not a pretrained model or checkpoint)."""
    return spec in STUDENTS and STUDENTS[spec].from_scratch


def recipe_for(spec: str) -> Recipe:
    """The training defaults for a student: its registry entry's recipe, or the pretrained one for a checkpoint."""
    return STUDENTS[spec].recipe if spec in STUDENTS else PRETRAINED


def check_student(spec: str) -> None:
    """Raise now, with the reason, when ``spec`` names a student that cannot be used here (a hub model offline),
    so that a run fails before it claims a folder, not minutes later."""
    if spec in STUDENTS:
        ok, why = STUDENTS[spec].availability()
        if not ok:
            raise ConfigError(f"student {spec!r} is not available: {why}")
    elif os.path.isdir(spec):
        if not (is_adapter_folder(spec) or os.path.isfile(os.path.join(spec, "config.json"))):
            raise ConfigError(f"student folder {spec!r} holds no model (no config.json); give a checkpoint folder, "
                              "a preset or a pretrained model (`workbench models`)")
    elif "/" not in spec:
        raise UnknownNameError("student", spec, STUDENTS.names())
    elif spec.startswith(("/", ".", "~")) or spec.count("/") > 1:
        raise ConfigError(f"student {spec!r} is not a folder here (nor a hub id); give a checkpoint folder, a preset "
                          "or a pretrained model (`workbench models`)")
    elif catalog.is_offline() and not catalog.in_hub_cache(spec):
        raise ConfigError(f"student {spec!r} is not available: offline here (HF_HUB_OFFLINE=1) and not in the local "
                          "hub cache (run with --online, or WORKBENCH_ONLINE=1, to download it)")


def make_student(spec: str, texts: Iterable[str] = (), *, trust_remote_code: bool = False,
                 seed: int | None = None) -> Student:
    """A preset (tokenizer trained on ``texts``), a pretrained catalog model, or a checkpoint (local folder, or hub
    id when online)."""
    check_student(spec)
    if spec in STUDENTS:
        return STUDENTS[spec].make(texts, seed=seed, trust_remote_code=trust_remote_code)
    return load_student(spec, trust_remote_code=trust_remote_code)


def load_student(path: str | Path, *, trust_remote_code: bool = False) -> Student:
    """Load a seq2seq or causal checkpoint with its tokenizer (the family comes from its config), a catalog model,
    or a LoRA training checkpoint (its base model with the adapters on, trainable)."""
    where = str(path)
    if is_adapter_folder(where):
        model, tok, family = load_adapter_checkpoint(where, trust_remote_code=trust_remote_code)
    else:
        model, tok, family = load_checkpoint(where, role="student", error=RunError,
                                             trust_remote_code=trust_remote_code)
    return Student(model, tok, family, where)


def list_presets() -> list[dict]:
    """Every student with its family, description, recipe and whether it can be used here (and why not)."""
    out = []
    for _, p in STUDENTS.items():
        ok, why = p.availability()
        out.append({"name": p.name, "family": p.family, "description": p.description, "recipe": p.recipe.to_dict(),
                    "from_scratch": p.from_scratch, "available": ok, "reason": why})
    return out


# -- generation -------------------------------------------------------------------------------------------------
def stop_token_ids(tokenizer) -> list[int]:
    """Tokens that end a one-line answer besides the end token: a newline, when the tokenizer has one as a single
    token (a label is one line; a model that goes on to a second line is done answering)."""
    ids = []
    for text in ("\n", "\n\n"):
        found = tokenizer(text, add_special_tokens=False).input_ids
        if len(found) == 1 and found[0] != getattr(tokenizer, "unk_token_id", None):
            ids.append(found[0])
    return ids


# Prompt tokens per generation batch on a CPU: a batch's first forward pass (its whole prompts) cannot be cut short,
# so it bounds how soon a cancel takes effect; ~2,000 tokens of SmolLM2-135M take 1-3 s on 2 cores, and larger
# batches were no faster there (the pass is compute-bound). A GPU takes batches of 64 prompts.
CPU_BATCH_TOKENS = 2048


def _batch_size(model, prompts: list[list[int]], asked: int | None) -> int:
    if asked:
        return asked
    if next(model.parameters()).is_cuda:
        return 64
    longest = max((len(p) for p in prompts), default=1)
    return max(1, min(64, CPU_BATCH_TOKENS // max(1, longest)))


def generate(student: Student, prompts: list[list[int]], *, max_new_tokens: int, batch_size: int | None = None,
             one_line: bool = False, progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None, bf16: bool = False) -> list[str]:
    """Greedy continuations of already-tokenized prompts, decoded without special tokens.

    Prompts are sorted by length so each batch pads little; results come back in the caller's order. Each sequence
    stops at the end token (``one_line``: at a newline too), and a batch as soon as all of its sequences have.
    ``batch_size`` None: 64 prompts on a GPU, about :data:`CPU_BATCH_TOKENS` prompt tokens on a CPU.
    ``progress(done, total)`` is called after each batch; ``should_stop()`` is checked at every generated token,
    and :class:`~workbench.core.errors.Cancelled` raised once it turns true. ``bf16``: under bf16 autocast, as the
    run trained (:func:`device_info`); the weights stay as they are.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from workbench.core.errors import Cancelled

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), bool(should_stop()), dtype=torch.bool, device=input_ids.device)

    model, tok = student.model, student.tokenizer
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    eos = [tok.eos_token_id] + (stop_token_ids(tok) if one_line else [])
    batch_size = _batch_size(model, prompts, batch_size)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    try:
        for start in range(0, len(order), batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled("generation cancelled")
            idx = order[start:start + batch_size]
            ids, mask = pad_batch([prompts[i] for i in idx], tok.pad_token_id, left=student.is_causal)
            ids, mask = ids.to(device), mask.to(device)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                # use_cache: training switches it off in the config (packed or not, a cache is of no use there).
                # temperature/top_p/top_k None: a pretrained checkpoint's own generation_config may ask for sampling.
                gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     do_sample=False, num_beams=1, pad_token_id=tok.pad_token_id, eos_token_id=eos,
                                     use_cache=True, temperature=None, top_p=None, top_k=None,
                                     stopping_criteria=StoppingCriteriaList([_Stop()]) if should_stop else None)
            if should_stop is not None and should_stop():
                raise Cancelled("generation cancelled")
            if student.is_causal:
                gen = gen[:, ids.shape[1]:]  # a decoder-only model echoes its prompt
            for i, seq in zip(idx, gen.tolist()):
                out[i] = tok.decode(seq, skip_special_tokens=True).strip()
            if progress is not None:
                progress(min(len(order), start + batch_size), len(order))
    finally:
        model.train(was_training)
    return out
