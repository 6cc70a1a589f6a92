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

from typing import ClassVar

from workbench.core.errors import ConfigError
from workbench.core.registry import Registry

LABEL_PREFIX = "[label]"
RATIONALE_PREFIX = "[rationale]"
COT_MARKER = "So the answer is"
CAUSAL_SEP = " =>"  # ends a decoder-only prompt, so the model knows where the answer starts


class Method:
    """Base: one task (input → label). Subclasses change segments, weights, loss or parsing."""

    name: ClassVar[str] = ""
    task_names: ClassVar[tuple[str, ...]] = ("label",)
    #: Why this method needs a teacher (None: it learns from gold labels alone); the config refuses it without one.
    needs_teacher: ClassVar[str | None] = None
    needs_rationale: ClassVar[bool] = False
    needs_label_dist: ClassVar[bool] = False
    #: This method's parameters and the TrainConfig fields they are read from.
    params: ClassVar[dict[str, str]] = {}
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

    def loss(self, logits, batch: dict, causal: bool):
        """A :class:`~workbench.distill.losses.LossOutput`: the weighted per-task mean token cross-entropy."""
        from workbench.distill.losses import LossOutput, weighted_task_loss

        total, means = weighted_task_loss(logits, batch["labels"], batch["task_ids"], self.weights(), causal)
        return LossOutput(total, {f"{n}_loss": m.detach() for n, m in zip(self.task_names, means)})


# Built-in methods register below; others through the entry-point group (or register_method in a notebook).
METHODS: Registry[type[Method]] = Registry("method", group="workbench.methods")


def register_method(cls: type[Method]) -> type[Method]:
    METHODS.register(cls.name, cls)
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
    needs_teacher = "learns from rationales"
    needs_rationale = True
    params = {"alpha": "alpha"}

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
    needs_teacher = "learns from rationales"
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
    needs_teacher = "learns the teacher's class distribution"
    needs_label_dist = True
    params = {"temperature": "kd_temperature", "mix": "kd_mix"}

    def loss(self, logits, batch, causal):
        import torch

        from workbench.distill.losses import LossOutput, kd_loss

        out = super().loss(logits, batch, causal)
        pos = batch["first_target_pos"]
        rows = torch.arange(logits.shape[0], device=logits.device)
        class_logits = logits[rows, pos][:, batch["class_token_ids"]]
        kl = kd_loss(class_logits, batch["teacher_probs"], float(self.params.get("temperature", 2.0)))
        mix = float(self.params.get("mix", 0.5))
        return LossOutput(mix * kl + (1 - mix) * out.loss, {**out.parts, "kl": kl.detach()})


def get_method(name: str, **params) -> Method:
    return METHODS[name](**params)


def method_for_config(cfg) -> Method:
    """The method of a :class:`~workbench.distill.config.TrainConfig` (or its dict), with the parameters it
    declares, read from the config's fields."""
    values = cfg if isinstance(cfg, dict) else {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}
    cls = METHODS[values["method"]]
    return cls(**{p: values[f] for p, f in cls.params.items() if values.get(f) is not None})


