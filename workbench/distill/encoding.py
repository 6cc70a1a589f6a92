"""From training rows to tensors: the :class:`Encoder` (tokens, task prefixes, number slots), the :class:`Collator`
(dynamic padding, every segment of a batch stacked) and :func:`forward_logits` (``dss``: each task at its own
width; one encoder pass for seq2seq students).

>>> from workbench.distill.methods import get_method
>>> from workbench.distill.students import load_student
>>> student = load_student(store.workspace / "runs" / "quantnli-dss" / "model")   # a tiny seq2seq student
>>> enc = Encoder(student.tokenizer, causal=False)
>>> feature = enc.encode(get_method("dss"), {"input": "Tom has 3 apples.", "label": "3", "rationale": "He has 3."})
>>> sorted(feature)
['length', 'shared', 'sources', 'targets', 'task_ids', 'teacher_probs']
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workbench.core.errors import ConfigError
from workbench.distill.losses import IGNORE
from workbench.distill.methods import CAUSAL_SEP, Method
from workbench.distill.number_slots import NumberSlots, slots_for

LAYOUTS = ("marker-first", "marker-last")


@dataclass
class Encoder:
    """Tokenizes segments for a model family: seq2seq (marker + source + eos → target + eos) or causal (prompt + SEP,
    then completion + eos, with the loss on the completion only).

    ``layout`` places a task's marker: ``marker-first`` (``[label] question``: the paper's, and every seq2seq
    student's) or ``marker-last`` (``question [label] =>``: a decoder-only student's, so that the label and
    rationale tasks share the question's tokens and a ``dss`` row trains as one packed sequence). The question
    and the marker are tokenized apart, so a packed row and two separate passes see the same tokens.
    """

    tokenizer: object
    causal: bool
    max_input_len: int = 256
    max_target_len: int = 128
    numbers: str = "text"  # "slots": numbers become N0, N1, … (distill.number_slots); resolved, never "auto"
    layout: str = "marker-first"

    def slots(self, text: str) -> NumberSlots:
        """The number slots of one input (the identity unless ``numbers`` is ``slots``)."""
        return slots_for(self.numbers, text)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def prompt_ids(self, text: str, marker: str | None = None) -> list[int]:
        """The prompt of one task for one input (``text`` as the student sees it: number slots applied)."""
        if self.causal and self.layout == "marker-last":
            tail = self._ids(f" {marker}{CAUSAL_SEP}" if marker else CAUSAL_SEP)
            return self._ids(text)[: self.max_input_len - len(tail)] + tail
        body = f"{marker} {text}" if marker else text
        if self.causal:
            sep = self._ids(CAUSAL_SEP)
            return self._ids(body)[: self.max_input_len - len(sep)] + sep
        return self._ids(body)[: self.max_input_len - 1] + [self.tokenizer.eos_token_id]

    def source_ids(self, text: str) -> list[int]:
        """The prompt for a text that carries no task marker."""
        return self.prompt_ids(text)

    def target_ids(self, text: str) -> list[int]:
        ids = self._ids(" " + text if self.causal else text)
        return ids[: self.max_target_len - 1] + [self.tokenizer.eos_token_id]

    def class_token_ids(self, labels: tuple[str, ...]) -> list[int]:
        """First target token of each class; kd compares teacher and student over these."""
        ids = [self.target_ids(label)[0] for label in labels]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"kd needs classes whose first tokens differ; {labels} share one with this "
                              "tokenizer. Use method 'standard' or a tokenizer with whole-word classes")
        return ids

    def encode(self, method: Method, row: dict, labels: tuple[str, ...] | None = None) -> dict:
        """One training feature: all segments of a row (``shared``: how many leading prompt tokens every segment
        has in common, which a causal student computes once), plus the teacher's class probabilities for kd."""
        slots = self.slots(row["input"])
        row = {**row, **{k: slots.encode(row.get(k)) for k in ("input", "label", "rationale")}}
        segs = method.segments(row)
        sources = [self.prompt_ids(s, method.marker(t)) for t, s, _ in segs]
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
                "teacher_probs": probs,
                "shared": shared_prefix(sources) if self.causal and self.layout == "marker-last" else 0,
                "length": sum(len(s) + len(t) for s, t in zip(sources, targets))}


def shared_prefix(sources: list[list[int]]) -> int:
    """Leading tokens every prompt has in common, leaving each at least one token of its own (so that a task's
    first target is predicted from its own prompt, never from another task's last token).

    >>> shared_prefix([[5, 6, 7, 1], [5, 6, 7, 2, 3]]), shared_prefix([[5, 6]]), shared_prefix([[5], [5]])
    (3, 0, 0)
    """
    if len(sources) < 2:
        return 0
    n = 0
    for column in zip(*sources):
        if any(c != column[0] for c in column):
            break
        n += 1
    return max(0, min(n, min(len(s) for s in sources) - 1))


def default_layout(causal: bool) -> str:
    """Where a new run puts its task markers (a run records it; runs from before recorded nothing: marker-first)."""
    return "marker-last" if causal else "marker-first"


def encoder_for(student, cfg, layout: str | None = None) -> Encoder:
    """The encoder a run trains and predicts with: its student's tokenizer, the config's limits and numbers, and
    the run's marker layout (default: a new run's)."""
    numbers = cfg.numbers if cfg.numbers != "auto" else "text"  # "auto" unresolved: a run from before slots
    return Encoder(student.tokenizer, student.is_causal, cfg.max_input_len, cfg.max_target_len, numbers,
                   layout or default_layout(student.is_causal))


@dataclass
class Collator:
    """Pads a batch to its own longest sequence and stacks every segment, task 0 rows first.

    For dss that is the label sub-batch stacked on the rationale sub-batch: one optimizer step for both. A causal
    student whose segments share their prompt's first tokens (``dss`` in the ``marker-last`` layout) gets ONE row
    per example instead — the shared question, then each task's marker and target — with ``segment_ids`` (0 for
    the shared part, k for task k's tokens, -1 for padding) and ``position_ids`` from which the forward pass builds
    the mask that keeps the tasks apart: each attends to the question and to itself, never to the other.
    """

    pad_id: int
    causal: bool
    decoder_start_id: int | None = None
    class_token_ids: list[int] | None = None
    pad_to_multiple_of: int | None = None
    pack: bool = True

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if self.causal and self.pack and self.class_token_ids is None and any(f.get("shared") for f in features):
            return self._packed(features)
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

    def _packed(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = []
        for f in features:
            shared = f["shared"]
            ids, seg, pos, labels, tasks = list(f["sources"][0][:shared]), [0] * shared, list(range(shared)), \
                [IGNORE] * shared, [-1] * shared
            for k, (task, source, target) in enumerate(zip(f["task_ids"], f["sources"], f["targets"]), start=1):
                own = source[shared:] + target
                ids += own
                seg += [k] * len(own)
                pos += range(shared, shared + len(own))
                labels += [IGNORE] * (len(source) - shared) + target
                tasks += [-1] * (len(source) - shared) + [task] * len(target)
            rows.append((ids, seg, pos, labels, tasks))
        width = self._width(max(len(r[0]) for r in rows))
        out = {"input_ids": torch.full((len(rows), width), self.pad_id, dtype=torch.long),
               "segment_ids": torch.full((len(rows), width), -1, dtype=torch.long),
               "position_ids": torch.zeros((len(rows), width), dtype=torch.long),
               "labels": torch.full((len(rows), width), IGNORE, dtype=torch.long),
               "token_tasks": torch.full((len(rows), width), -1, dtype=torch.long)}
        for i, row in enumerate(rows):
            for key, values in zip(("input_ids", "segment_ids", "position_ids", "labels", "token_tasks"), row):
                out[key][i, : len(values)] = torch.tensor(values)
        return out


MODEL_KEYS = ("input_ids", "attention_mask", "decoder_input_ids")
# Decoder-only families whose logits are exactly ``lm_head(last hidden state)`` (no logit scaling or soft-capping),
# so the output layer can run at target positions only; they also take a 4D mask and position ids for packed rows.
HEAD_SPLIT_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def packed_mask(segment_ids: torch.Tensor, dtype: torch.dtype, boolean: bool) -> torch.Tensor:
    """The (N, 1, T, T) attention mask of packed rows: causal, and a task's tokens see the shared question and
    their own task only. Padding attends to itself (no row is all masked). Boolean (True: attend) for SDPA, else
    additive (0 or the dtype's minimum) for eager attention."""
    n, t = segment_ids.shape
    idx = torch.arange(t, device=segment_ids.device)
    causal = idx.unsqueeze(0) <= idx.unsqueeze(1)  # [query, key]
    q, k = segment_ids.unsqueeze(2), segment_ids.unsqueeze(1)
    allowed = causal & (k >= 0) & (q >= 0) & ((k == 0) | (k == q))
    allowed = allowed | torch.eye(t, dtype=torch.bool, device=segment_ids.device)
    allowed = allowed.unsqueeze(1)
    if boolean:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)


def _model_inputs(model, batch: dict[str, torch.Tensor]) -> dict:
    """Keyword arguments for a causal model's forward (packed rows: their 4D mask and positions)."""
    if "segment_ids" not in batch:
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    config = getattr(_unwrapped(model), "config", None)
    eager = getattr(config, "_attn_implementation", "sdpa") == "eager"
    dtype = next(model.parameters()).dtype
    return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"],
            "attention_mask": packed_mask(batch["segment_ids"], dtype, boolean=not eager)}


def _unwrapped(model):
    """The transformers model inside a PEFT wrapper (DDP is left alone: its forward must be called)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def head_split(model):
    """(decoder body, output layer) of a decoder-only model whose logits are ``lm_head(hidden)``; None for any
    other model, and for a DDP wrapper (one forward through it is what syncs gradients)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return None
    base = _unwrapped(model)
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in HEAD_SPLIT_TYPES or getattr(config, "is_encoder_decoder", False):
        return None
    body, head = getattr(base, "model", None), getattr(base, "lm_head", None)
    return (body, head) if body is not None and head is not None else None


def target_logits(model, batch: dict[str, torch.Tensor], causal: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The logits at target positions only (K, V), their targets (K,) and tasks (K,).

    For a decoder-only student the output layer (576 × 49,152 for SmolLM2: a fifth of a forward pass per token,
    and a float32 row of 49,152 per position) runs only where a target is predicted — not over the prompt, and not
    at padding. Other students compute whole logits and keep the same positions: the same loss either way.
    """
    from workbench.distill.losses import target_logits_of, target_positions, token_tasks_of

    split = head_split(model) if causal else None
    if split is None:
        return target_logits_of(forward_logits(model, batch), batch, causal)
    body, head = split
    mask, targets, tasks = target_positions(batch["labels"], True, token_tasks_of(batch))
    groups = [] if "segment_ids" in batch else _task_groups(batch)
    if len(groups) < 2:
        hidden = body(**_model_inputs(model, batch), use_cache=False).last_hidden_state
        return head(hidden[mask]), targets[mask], tasks[mask]
    parts = []  # unpacked rows of several tasks: each task's rows at their own width
    for start, stop in groups:
        width = int(batch["attention_mask"][start:stop].sum(dim=1).max().clamp(min=1))
        out = body(input_ids=batch["input_ids"][start:stop, :width],
                   attention_mask=batch["attention_mask"][start:stop, :width], use_cache=False).last_hidden_state
        parts.append(out[mask[start:stop, :width]])
    # Groups are contiguous row ranges in order, cut on the right where no target is: the hidden states come out
    # in the same (row-major) order as targets[mask].
    return head(torch.cat(parts)), targets[mask], tasks[mask]


def forward_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Whole logits for a collated batch. Labels are not passed, so the model does not compute a loss we discard.

    With several tasks in the batch (dss), each task runs at its own width: a short label target is not padded to
    the rationale's length (on a CPU, where time follows FLOPs, that padding cost ~40% of a step). For an
    encoder-decoder the encoder runs ONCE over the stacked sub-batches and the decoder per task; a decoder-only
    model runs once per task over that task's rows, cut to their longest sequence, or once over packed rows. Rows
    are padded on the right, so cutting pad columns changes no real position's output. The logits are assembled
    into one padded tensor, so the loss functions see the same layout as a single pass.
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
    # Packed rows, or one call through a DDP wrapper (it expects one forward per backward), at the full width.
    if "segment_ids" in batch or len(groups) < 2 or isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model(**_model_inputs(model, batch), use_cache=False).logits
    ids, mask = batch["input_ids"], batch["attention_mask"]
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
