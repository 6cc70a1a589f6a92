"""LoRA through ``peft``: low-rank adapters on a pretrained student's attention and MLP projections.

``TrainConfig.lora_rank`` > 0 wraps the student before training (:func:`with_lora`); training checkpoints hold
only the adapters (peft's format) and resume through :func:`load_adapter_checkpoint`; the final model is merged
(:func:`merge`) so a run's ``model/`` stays a plain ``save_pretrained`` folder that anything can load.

On a CPU LoRA saves memory, not time: the backward pass still runs through every frozen layer and the vocabulary
projection (bench/pretrained.py measures it).

>>> sorted(DEFAULT_TARGETS["llama"]), DEFAULT_TARGETS["t5"]
(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'], ('q', 'v'))
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.core.errors import ConfigError, RunError
from workbench.models.loading import ensure_special_tokens, load_checkpoint

_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Llama-family decoders: every projection (LoRA's own finding: adapting the MLP too matters); T5: the LoRA
# paper's query and value projections.
DEFAULT_TARGETS = {"llama": _LLAMA_LIKE, "qwen2": _LLAMA_LIKE, "mistral": _LLAMA_LIKE, "qwen3": _LLAMA_LIKE,
                   "t5": ("q", "v"), "mt5": ("q", "v"), "umt5": ("q", "v")}
ADAPTER_CONFIG = "adapter_config.json"


def lora_targets(model, spec: str = "auto") -> list[str] | str:
    """The module names to adapt: ``spec`` as comma-separated names, or for ``auto`` the defaults of the model's
    type (peft's ``all-linear`` for a type not listed)."""
    if spec and spec != "auto":
        names = [t.strip() for t in spec.split(",") if t.strip()]
        present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        missing = [n for n in names if n not in present]
        if missing:
            raise ConfigError(f"lora_targets {', '.join(missing)} are not modules of this "
                              f"{model.config.model_type} model; try auto")
        return names
    return list(DEFAULT_TARGETS.get(model.config.model_type, ())) or "all-linear"


def with_lora(model, *, causal: bool, rank: int, alpha: float | None = None, targets: str = "auto"):
    """``model`` with trainable LoRA adapters (everything else frozen); alpha defaults to 2 × rank."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha if alpha else 2 * rank, lora_dropout=0.0,
                        target_modules=lora_targets(model, targets),
                        task_type="CAUSAL_LM" if causal else "SEQ_2_SEQ_LM")
    return get_peft_model(model, config)


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def merge(model):
    """The plain model with the adapters folded into its weights (W + B·A·alpha/r); the same outputs."""
    return model.merge_and_unload() if is_peft(model) else model


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def is_adapter_folder(path) -> bool:
    """A peft training checkpoint: adapters and their config, no full model."""
    p = Path(path)
    return (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def load_adapter_checkpoint(path, *, trust_remote_code: bool = False):
    """(model, tokenizer, family) of a LoRA training checkpoint: its base model (a catalog name, folder or hub id,
    as peft recorded it) with the checkpoint's adapters on, trainable, for resuming."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    base = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise RunError(f"{path}: the LoRA checkpoint does not name its base model; start a new run")
    model, tok, family = load_checkpoint(base, role="student", error=RunError, trust_remote_code=trust_remote_code)
    if (Path(path) / "tokenizer_config.json").is_file():  # the Trainer saves the tokenizer with each checkpoint
        tok = AutoTokenizer.from_pretrained(str(path))
        ensure_special_tokens(tok, model, str(path))
    return PeftModel.from_pretrained(model, str(path), is_trainable=True), tok, family
