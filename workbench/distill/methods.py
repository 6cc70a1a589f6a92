"""Training methods: how a training row becomes (task, input, target) segments, and a pure loss over them.

Every method turns a row into one or more *segments* ``(task_id, input_text, target_text)``; the encoder adds the
task's marker (``dss``: ``[label]`` / ``[rationale]``). The collator pads all segments of a batch together (dynamic
padding: to the longest in the batch, never to a fixed maximum), so ``dss`` computes its label and rationale
tasks in ONE optimizer step; for a decoder-only student both tasks share the question's tokens in one packed
sequence. Its loss takes the per-token cross-entropy, averages it per task, and weights the task means — exactly
what two separate passes with the default mean-token loss give, at the cost of one.

A method says what it can do and needs by its declared capabilities (``needs_teacher``, ``needs_rationale``,
``needs_label_dist``, ``needs_logits``, ``gives_rationales``), which every front end reads; no front end knows a
method by its name.

>>> m = get_method("dss", alpha=0.3)
>>> [(t, m.markers[t], s) for t, s, _ in m.segments({"input": "Tom has 3 apples.", "label": "3", "rationale": "He has 3."})]
[(0, '[label]', 'Tom has 3 apples.'), (1, '[rationale]', 'Tom has 3 apples.')]
>>> m.weights(), m.gives_rationales, get_method("standard").gives_rationales
([0.3, 0.7], True, False)
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
    #: Each task's marker, placed by the encoder: before the input for a seq2seq student (the paper's
    #: ``[label] question``), after it for a decoder-only one, so that the tasks share the question's tokens.
    #: None: the task's prompt is the input alone.
    markers: ClassVar[tuple[str | None, ...]] = (None,)
    #: The task that writes a rationale at test time (None: none, or cot's rationale inside its label task).
    rationale_task: ClassVar[int | None] = None
    #: The loss reads whole logits (kd: the class scores at the first target token). Otherwise the trainer
    #: computes the output layer only at target tokens and calls :meth:`target_loss`.
    needs_logits: ClassVar[bool] = False

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
        """(task id, input text, target text) per task; the encoder adds ``markers[task id]`` to the input."""
        return [(0, row["input"], row["label"])]

    def weights(self) -> list[float]:
        return [1.0]

    def marker(self, task: int) -> str | None:
        return self.markers[task] if task < len(self.markers) else None

    @property
    def gives_rationales(self) -> bool:
        """A student trained this way can explain its answers at test time."""
        return self.rationale_task is not None or self.rationale_in_label

    def parse(self, generated: str) -> tuple[str | None, str | None, str | None]:
        """(label, rationale, parse_error) from the label task's generation."""
        return generated.strip(), None, None

    def loss(self, logits, batch: dict, causal: bool):
        """A :class:`~workbench.distill.losses.LossOutput` from whole logits: the weighted per-task mean token
        cross-entropy (the trainer calls this only for a method that ``needs_logits``)."""
        from workbench.distill.losses import LossOutput, target_logits_of, weighted_target_loss

        logits, targets, tasks = target_logits_of(logits, batch, causal)
        total, means = weighted_target_loss(logits, targets, tasks, self.weights())
        return LossOutput(total, {f"{n}_loss": m.detach() for n, m in zip(self.task_names, means)})

    def target_loss(self, logits, targets, tasks):
        """The loss from the logits at target tokens only, (K, V), with their targets and tasks, (K,)."""
        from workbench.distill.losses import LossOutput, weighted_target_loss

        total, means = weighted_target_loss(logits, targets, tasks, self.weights())
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
    markers = (LABEL_PREFIX, RATIONALE_PREFIX)
    rationale_task = 1

    def segments(self, row):
        return [(0, row["input"], row["label"]), (1, row["input"], row["rationale"])]

    def weights(self):
        alpha = float(self.params.get("alpha", 0.5))
        return [alpha, 1.0 - alpha]


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
    needs_logits = True
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


def class_path(cls: type) -> str:
    """Where a method's class lives (``package.module:Class``), recorded by every run so that the run can be read
    back by a process that never registered it (a method defined in a notebook or another package)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def ensure_method(name: str, path: str | None) -> type[Method]:
    """The method ``name``: registered already, or imported from the ``path`` a run recorded and registered now;
    a clear :class:`RunError` when that code cannot be imported here."""
    import importlib

    from workbench.core.errors import RunError

    if name in METHODS:
        return METHODS[name]
    if not path:
        return METHODS[name]  # unknown, and nothing recorded: the registry's error lists the known ones
    module_name, _, qualname = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise RunError(f"this run was trained with method {name!r} from {path}, which cannot be imported here "
                       f"({err}); make that code importable (install its package, or run where the notebook "
                       "defined it) to load the run") from None
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise RunError(f"{path} is not a Method class; this run cannot be loaded")
    METHODS.register(name, obj)
    return obj


def method_for_config(cfg) -> Method:
    """The method of a :class:`~workbench.distill.config.TrainConfig` (or its dict), with the parameters it
    declares, read from the config's fields."""
    values = cfg if isinstance(cfg, dict) else {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}
    cls = METHODS[values["method"]]
    return cls(**{p: values[f] for p, f in cls.params.items() if values.get(f) is not None})


