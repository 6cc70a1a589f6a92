"""From training rows to tensors: the :class:`Encoder` (tokens, task prefixes, number slots), the :class:`Collator`
(dynamic padding, every segment of a batch stacked) and :func:`forward_logits` (``dss``: each task at its own
width; one encoder pass for seq2seq students).

>>> enc = Encoder(tokenizer, causal=False)                       # doctest: +SKIP
>>> feature = enc.encode(get_method("dss"), {"input": "Tom has 3 apples.", "label": "3", "rationale": "He has 3."})  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workbench.core.errors import ConfigError
from workbench.distill.losses import IGNORE
from workbench.distill.methods import CAUSAL_SEP, Method
from workbench.distill.numbers import NumberSlots, slots_for


@dataclass
class Encoder:
    """Tokenizes segments for a model family: seq2seq (source + eos → target + eos) or causal (prompt + SEP,
    then completion + eos, with the loss on the completion only)."""

    tokenizer: object
    causal: bool
    max_input_len: int = 256
    max_target_len: int = 128
    numbers: str = "text"  # "slots": numbers become N0, N1, … (workbench.distill.numbers); resolved, never "auto"

    def slots(self, text: str) -> NumberSlots:
        """The number slots of one input (the identity unless ``numbers`` is ``slots``)."""
        return slots_for(self.numbers, text)

    def source_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if self.causal:
            sep = self.tokenizer(CAUSAL_SEP, add_special_tokens=False).input_ids
            return ids[: self.max_input_len - len(sep)] + sep
        return ids[: self.max_input_len - 1] + [self.tokenizer.eos_token_id]

    def target_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(" " + text if self.causal else text, add_special_tokens=False).input_ids
        return ids[: self.max_target_len - 1] + [self.tokenizer.eos_token_id]

    def class_token_ids(self, labels: tuple[str, ...]) -> list[int]:
        """First target token of each class; kd compares teacher and student over these."""
        ids = [self.target_ids(label)[0] for label in labels]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"kd needs classes whose first tokens differ; {labels} share one with this "
                              "tokenizer. Use method 'standard' or a tokenizer with whole-word classes")
        return ids

    def encode(self, method: Method, row: dict, labels: tuple[str, ...] | None = None) -> dict:
        """One training feature: all segments of a row, plus the teacher's class probabilities for kd."""
        slots = self.slots(row["input"])
        row = {**row, **{k: slots.encode(row.get(k)) for k in ("input", "label", "rationale")}}
        segs = method.segments(row)
        sources = [self.source_ids(s) for _, s, _ in segs]
        targets = [self.target_ids(t) for _, _, t in segs]
        probs: list[float] = []
        if method.needs_label_dist:
            if not labels:
                raise ConfigError("method 'kd' works on classification tasks (a label space); use 'standard'")
            dist = row["label_dist"]
            raw = [max(0.0, float(dist.get(label, 0.0))) for label in labels]
            total = sum(raw)
            if total <= 0:
                raise ConfigError(f"row {row.get('example_id')}: the teacher's label_dist gives no mass to {labels}")
            probs = [p / total for p in raw]
        return {"task_ids": [t for t, _, _ in segs], "sources": sources, "targets": targets,
                "teacher_probs": probs, "length": sum(len(s) + len(t) for s, t in zip(sources, targets))}


def encoder_for(student, cfg) -> Encoder:
    """The encoder a run trains and predicts with: its student's tokenizer and the config's limits and numbers."""
    numbers = cfg.numbers if cfg.numbers != "auto" else "text"  # "auto" unresolved: a run from before slots
    return Encoder(student.tokenizer, student.is_causal, cfg.max_input_len, cfg.max_target_len, numbers)


@dataclass
class Collator:
    """Pads a batch to its own longest sequence and stacks every segment, task 0 rows first.

    For dss that is the label sub-batch stacked on the rationale sub-batch: one forward pass for both.
    """

    pad_id: int
    causal: bool
    decoder_start_id: int | None = None
    class_token_ids: list[int] | None = None
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        segs = [(t, s, g) for f in features for t, s, g in zip(f["task_ids"], f["sources"], f["targets"])]
        segs.sort(key=lambda x: x[0])  # stable: keeps example order inside each task
        batch = self._causal(segs) if self.causal else self._seq2seq(segs)
        batch["task_ids"] = torch.tensor([t for t, _, _ in segs], dtype=torch.long)
        if self.class_token_ids is not None:
            batch["teacher_probs"] = torch.tensor([f["teacher_probs"] for f in features], dtype=torch.float)
            batch["class_token_ids"] = torch.tensor(self.class_token_ids, dtype=torch.long)
            pos = [len(s) - 1 if self.causal else 0 for _, s, _ in segs]
            batch["first_target_pos"] = torch.tensor(pos, dtype=torch.long)
        return batch

    def _width(self, n: int) -> int:
        m = self.pad_to_multiple_of
        return n if not m else (n + m - 1) // m * m

    def _seq2seq(self, segs) -> dict[str, torch.Tensor]:
        src_w = self._width(max(len(s) for _, s, _ in segs))
        tgt_w = self._width(max(len(g) for _, _, g in segs))
        start = self.pad_id if self.decoder_start_id is None else self.decoder_start_id
        input_ids = torch.full((len(segs), src_w), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        labels = torch.full((len(segs), tgt_w), IGNORE, dtype=torch.long)
        dec = torch.full((len(segs), tgt_w), self.pad_id, dtype=torch.long)
        for i, (_, s, g) in enumerate(segs):
            input_ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
            labels[i, : len(g)] = torch.tensor(g)
            dec[i, : len(g)] = torch.tensor([start, *g[:-1]])  # teacher forcing: shifted right
        return {"input_ids": input_ids, "attention_mask": mask, "decoder_input_ids": dec, "labels": labels}

    def _causal(self, segs) -> dict[str, torch.Tensor]:
        width = self._width(max(len(s) + len(g) for _, s, g in segs))
        input_ids = torch.full((len(segs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        labels = torch.full((len(segs), width), IGNORE, dtype=torch.long)
        for i, (_, s, g) in enumerate(segs):
            n = len(s) + len(g)
            input_ids[i, :n] = torch.tensor(s + g)
            mask[i, :n] = 1
            labels[i, len(s):n] = torch.tensor(g)  # loss on the completion only
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


MODEL_KEYS = ("input_ids", "attention_mask", "decoder_input_ids")


def forward_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits for a collated batch. Labels are not passed, so the model does not compute a loss we discard.

    With several tasks in the batch (dss), each task runs at its own width: a short label target is not padded to
    the rationale's length (on a CPU, where time follows FLOPs, that padding cost ~40% of a dss step). For an
    encoder-decoder the encoder runs ONCE over the stacked sub-batches and the decoder per task; a decoder-only
    model runs once per task over that task's rows, cut to their longest sequence. Rows are padded on the right,
    so cutting pad columns changes no real position's output. The logits are assembled into one padded tensor, so
    the loss functions see the same layout as a single pass.
    """
    groups = _task_groups(batch)
    if "decoder_input_ids" not in batch:
        return _causal_logits(model, batch, groups)
    # Wrapped for several processes (DDP under torchrun has no get_encoder): one forward call through the wrapper,
    # so that it syncs gradients as it expects; the decoder then runs at the widest task's width (same loss).
    if len(groups) < 2 or not hasattr(model, "get_encoder"):
        return model(**{k: batch[k] for k in MODEL_KEYS if k in batch}, use_cache=False).logits
    encoder_out = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    hidden = encoder_out.last_hidden_state
    labels = batch["labels"]
    parts = []
    for start, stop in groups:
        width = int((labels[start:stop] != IGNORE).sum(dim=1).max().clamp(min=1))
        out = model(encoder_outputs=(hidden[start:stop],), attention_mask=batch["attention_mask"][start:stop],
                    decoder_input_ids=batch["decoder_input_ids"][start:stop, :width], use_cache=False)
        parts.append(F.pad(out.logits, (0, 0, 0, labels.shape[1] - width)))  # zeros where labels are ignored
    return torch.cat(parts, dim=0)


def _causal_logits(model, batch: dict[str, torch.Tensor], groups: list[tuple[int, int]]) -> torch.Tensor:
    ids, mask = batch["input_ids"], batch["attention_mask"]
    # One call through a DDP wrapper (it expects one forward per backward), at the batch's full width.
    if len(groups) < 2 or isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    parts = []
    for start, stop in groups:
        width = int(mask[start:stop].sum(dim=1).max().clamp(min=1))
        out = model(input_ids=ids[start:stop, :width], attention_mask=mask[start:stop, :width], use_cache=False)
        parts.append(F.pad(out.logits, (0, 0, 0, ids.shape[1] - width)))  # zeros at pad positions (ignored)
    return torch.cat(parts, dim=0)


def _task_groups(batch: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
    """Contiguous row ranges of each task (the collator sorts rows by task)."""
    task_ids = batch.get("task_ids")
    if task_ids is None or task_ids.numel() == 0:
        return []
    bounds = [0] + [i for i in range(1, len(task_ids)) if task_ids[i] != task_ids[i - 1]] + [len(task_ids)]
    return list(zip(bounds[:-1], bounds[1:]))
