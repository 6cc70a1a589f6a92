"""Training methods: how a training row becomes (source → target) segments, and a pure loss over them.

Every method turns a row into one or more *segments* ``(task_id, source_text, target_text)``. The collator pads
all segments of a batch together (dynamic padding: to the longest in the batch, never to a fixed maximum), so
``dss`` computes its label and rationale tasks in ONE forward pass over the stacked sub-batches. Its loss takes
the per-token cross-entropy, averages it per task, and weights the task means — exactly what two separate
passes with the default mean-token loss give, at the cost of one.

>>> m = get_method("dss", alpha=0.3)
>>> [(t, s) for t, s, _ in m.segments({"input": "Tom has 3 apples.", "label": "3", "rationale": "He has 3."})]
[(0, '[label] Tom has 3 apples.'), (1, '[rationale] Tom has 3 apples.')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .errors import ConfigError, UnknownNameError
from .numbers import NumberSlots, slots_for
from .students import LABEL_PREFIX, RATIONALE_PREFIX

IGNORE = -100
COT_MARKER = "So the answer is"
CAUSAL_SEP = " =>"  # ends a decoder-only prompt, so the model knows where the answer starts


@dataclass
class LossOutput:
    loss: torch.Tensor
    parts: dict[str, torch.Tensor]  # detached, per task, for logging (label_loss, rationale_loss, kl…)


# -- pure loss functions ----------------------------------------------------------------------------------------
def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token CE (N, T) and the mask of target tokens. Causal logits at t predict the token at t+1."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                         reduction="none").view(labels.shape)
    return ce, labels != IGNORE


def task_mean_losses(ce: torch.Tensor, mask: torch.Tensor, task_ids: torch.Tensor, n_tasks: int) -> list[torch.Tensor]:
    """Mean target-token CE of each task's rows (0 for a task with no rows in this batch)."""
    out = []
    for t in range(n_tasks):
        m = mask & (task_ids == t).unsqueeze(1)
        out.append(ce[m].sum() / m.sum().clamp(min=1))
    return out


def weighted_task_loss(logits, labels, task_ids, weights: list[float], causal: bool) -> tuple[torch.Tensor, list]:
    """Σ_t w_t · mean_token_CE(task t): for dss, α·L_label + (1−α)·L_rationale."""
    ce, mask = token_cross_entropy(logits, labels, causal)
    means = task_mean_losses(ce, mask, task_ids, len(weights))
    return sum(w * m for w, m in zip(weights, means)), means


def kd_loss(class_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T ‖ student_T)·T² over the label space (Hinton et al.); teacher probs are softened by T too."""
    t_log = torch.log(teacher_probs.clamp(min=1e-8)) / temperature
    t_soft = F.softmax(t_log, dim=-1)
    s_log = F.log_softmax(class_logits.float() / temperature, dim=-1)
    return F.kl_div(s_log, t_soft, reduction="batchmean") * temperature**2


# -- methods ----------------------------------------------------------------------------------------------------
class Method:
    """Base: one task (input → label). Subclasses change segments, weights, loss or parsing."""

    name: ClassVar[str] = ""
    task_names: ClassVar[tuple[str, ...]] = ("label",)
    needs_rationale: ClassVar[bool] = False
    needs_label_dist: ClassVar[bool] = False
    #: The label task's generation holds the rationale too (cot): generate long enough for both.
    rationale_in_label: ClassVar[bool] = False

    def __init__(self, **params):
        self.params = params

    def check_rows(self, rows: list[dict]) -> None:
        """A clear error before training when rows lack what this method learns from."""
        if self.needs_rationale:
            missing = sum(1 for r in rows if not r.get("rationale"))
            if missing:
                raise ConfigError(f"method {self.name!r} needs a rationale on every row; {missing} of {len(rows)} "
                                  "have none. Generate rationales with a teacher, or use method 'standard'")
        if self.needs_label_dist:
            missing = sum(1 for r in rows if not r.get("label_dist"))
            if missing:
                raise ConfigError(f"method 'kd' needs the teacher's class distribution (label_dist); {missing} of "
                                  f"{len(rows)} rows have none. Use a teacher that gives one (builtin) or 'standard'")

    def segments(self, row: dict) -> list[tuple[int, str, str]]:
        return [(0, row["input"], row["label"])]

    def weights(self) -> list[float]:
        return [1.0]

    def label_source(self, text: str) -> str:
        """Source text that asks for the label at test time."""
        return text

    def rationale_source(self, text: str) -> str | None:
        """Source text that asks for a rationale (None: this method has no rationale task)."""
        return None

    def parse(self, generated: str) -> tuple[str | None, str | None, str | None]:
        """(label, rationale, parse_error) from the label task's generation."""
        return generated.strip(), None, None

    def loss(self, logits: torch.Tensor, batch: dict, causal: bool) -> LossOutput:
        total, means = weighted_task_loss(logits, batch["labels"], batch["task_ids"], self.weights(), causal)
        return LossOutput(total, {f"{n}_loss": m.detach() for n, m in zip(self.task_names, means)})


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


@register_method
class Standard(Method):
    """Plain fine-tuning: input → label (with teacher labels, plain distillation)."""

    name = "standard"


@register_method
class DistillStepByStep(Method):
    """Two tasks on each example, told apart by a prefix; α·L_label + (1−α)·L_rationale."""

    name = "dss"
    task_names = ("label", "rationale")
    needs_rationale = True

    def segments(self, row):
        return [(0, self.label_source(row["input"]), row["label"]),
                (1, self.rationale_source(row["input"]), row["rationale"])]

    def weights(self):
        alpha = float(self.params.get("alpha", 0.5))
        return [alpha, 1.0 - alpha]

    def label_source(self, text):
        return f"{LABEL_PREFIX} {text}"

    def rationale_source(self, text):
        return f"{RATIONALE_PREFIX} {text}"


@register_method
class ChainOfThought(Method):
    """One target: the rationale then "So the answer is LABEL"; the label is parsed from the generation."""

    name = "cot"
    needs_rationale = True
    rationale_in_label = True

    def segments(self, row):
        return [(0, row["input"], f"{row['rationale'].strip()} {COT_MARKER} {row['label']}")]

    def parse(self, generated):
        head, marker, tail = generated.rpartition(COT_MARKER)
        if not marker:
            return None, generated.strip() or None, f"no {COT_MARKER!r} in the generation"
        label = tail.strip().rstrip(".").strip()
        return (label or None), head.strip() or None, (None if label else "empty label after the marker")


@register_method
class KnowledgeDistillation(Method):
    """Soft labels: KL to the teacher's class distribution at the label's first token, mixed with hard CE."""

    name = "kd"
    needs_label_dist = True

    def loss(self, logits, batch, causal):
        out = super().loss(logits, batch, causal)
        pos = batch["first_target_pos"]
        rows = torch.arange(logits.shape[0], device=logits.device)
        class_logits = logits[rows, pos][:, batch["class_token_ids"]]
        kl = kd_loss(class_logits, batch["teacher_probs"], float(self.params.get("temperature", 2.0)))
        mix = float(self.params.get("mix", 0.5))
        return LossOutput(mix * kl + (1 - mix) * out.loss, {**out.parts, "kl": kl.detach()})


def get_method(name: str, **params) -> Method:
    if name not in METHODS:
        raise UnknownNameError("method", name, list(METHODS))
    return METHODS[name](**params)


def method_for_config(cfg) -> Method:
    """The method of a :class:`~workbench.config.TrainConfig`, with its parameters."""
    return get_method(cfg.method, alpha=cfg.alpha, temperature=cfg.kd_temperature, mix=cfg.kd_mix)


# -- encoding and collation -------------------------------------------------------------------------------------
@dataclass
class Encoder:
    """Tokenizes segments for a model family: seq2seq (source + eos → target + eos) or causal (prompt + SEP,
    then completion + eos, with the loss on the completion only)."""

    tokenizer: object
    causal: bool
    max_input_len: int = 256
    max_target_len: int = 128
    numbers: str = "text"  # "slots": numbers become N0, N1, … (workbench.numbers); resolved, never "auto"

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

    For an encoder-decoder with several tasks in the batch (dss), the encoder runs ONCE over the stacked
    sub-batches, and the decoder runs per task at that task's own target width: a short label target is not padded
    to the rationale's length (on a CPU, where time follows FLOPs, that padding cost ~40% of a dss step). The
    logits are assembled into one padded tensor, so the loss functions see the same layout as a single pass.
    """
    groups = _task_groups(batch) if "decoder_input_ids" in batch else []
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


def _task_groups(batch: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
    """Contiguous row ranges of each task (the collator sorts rows by task)."""
    task_ids = batch.get("task_ids")
    if task_ids is None or task_ids.numel() == 0:
        return []
    bounds = [0] + [i for i in range(1, len(task_ids)) if task_ids[i] != task_ids[i - 1]] + [len(task_ids)]
    return list(zip(bounds[:-1], bounds[1:]))
