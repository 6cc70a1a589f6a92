"""Typed, validated configuration for training runs.

:class:`TrainConfig` is the single source of truth for a run's settings: the CLI generates its ``train`` flags
from the fields (:func:`add_config_arguments`), the UI and notebooks pass the same fields, and the resolved config
is written to ``<run>/config.json`` so that a run can be repeated or resumed.

Fields left as None (steps, batch size, learning rate, eval interval) come from the student's recipe
(:mod:`workbench.distill.student_recipes`) when the run starts; the run records the resolved values.

>>> cfg = TrainConfig(task="wordproblems", method="dss", student="tiny", teacher="builtin", steps=300)
>>> TrainConfig.from_dict(cfg.to_dict()) == cfg
True
>>> cfg.resolved().learning_rate, cfg.resolved().steps
(0.001, 300)
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from workbench.core.bounds import SEED, Bounds
from workbench.core.errors import ConfigError
from workbench.core.names import check_name
from workbench.distill.methods import METHODS
from workbench.distill.number_slots import NUMBER_MODES
from workbench.distill.student_recipes import RECIPE_FIELDS
from workbench.distill.students import is_from_scratch, recipe_for
from workbench.rationales.trainingset import LABEL_SOURCES

BF16_CHOICES = ("auto", "true", "false")
# Ranges of the numeric settings (stated in --help, checked for every config however it was made). The maxima are
# far beyond what this workbench can use, and low enough that a typo fails at once instead of hanging or
# exhausting memory hours later.
SHARE = Bounds(0, 1, integer=False)  # a weight between two losses
MAX_STEPS = 1_000_000
RUN_NAME_LONGEST = 200  # a sweep's cell is named <sweep>--<student>-<method>-<size>-s<seed>
MAX_LORA_RANK = 256  # checked before any model loads; the catalog's models are 576 (SmolLM2-135M) to 1024 wide


def _f(default: Any, help: str, *, cli: bool = True, choices: tuple | None = None, aliases: tuple = (),
       bounds: Bounds | None = None, **kw) -> Any:
    """A dataclass field that carries its CLI help, choices, flag aliases and, for a number, its range
    (:class:`~workbench.core.bounds.Bounds`: checked in ``__post_init__``, parsed by the flag, stated in --help)."""
    meta = {"help": help, "cli": cli, "choices": choices, "aliases": aliases, "bounds": bounds}
    if callable(default) and not isinstance(default, (int, float, str, bool)):
        return field(default_factory=default, metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Frozen: derive variants with :func:`dataclasses.replace`.

    >>> TrainConfig(task="quantnli", method="kd", student="tiny", teacher="builtin").kd_temperature
    2.0
    """

    task: str = _f(MISSING, "task name (workbench tasks)")
    method: str = _f("dss", "how the student learns", choices=lambda: tuple(METHODS.names()))
    student: str = _f("tiny", "student preset (tiny, small, base, tiny-causal) or checkpoint folder / hub id")
    teacher: str | None = _f(None, "teacher spec whose rationales/labels to learn from (None: gold labels only)")
    label_source: str = _f("gold", "labels: gold answers, or the teacher's (a person's edits included)",
                           choices=LABEL_SOURCES)
    drop_parse_errors: bool = _f(True, "drop rows whose teacher answer did not parse")
    drop_teacher_wrong: bool = _f(False, "drop rows where the teacher's label disagrees with gold")
    only_accepted: bool = _f(False, "train only on rows a person accepted")
    fraction: float = _f(1.0, "fraction of the training rows to use (seeded subsample)",
                          bounds=Bounds(0, 1, integer=False, low_open=True))
    alpha: float = _f(0.5, "dss: weight of the label loss; the rationale loss gets 1 - alpha", bounds=SHARE)
    kd_temperature: float = _f(2.0, "kd: softmax temperature for teacher and student class scores",
                               bounds=Bounds(0, 100, integer=False, low_open=True))
    kd_mix: float = _f(0.5, "kd: weight of the KL term; the hard-label CE gets 1 - kd_mix", bounds=SHARE)
    # None: the student's recipe (distill.student_recipes), resolved when the run starts and recorded in it.
    steps: int | None = _f(None, "optimizer steps (default: the student's recipe)", bounds=Bounds(1, MAX_STEPS))
    batch_size: int | None = _f(None, "examples per step and device (default: the student's recipe)",
                                bounds=Bounds(1, 1024))
    learning_rate: float | None = _f(None, "peak learning rate, AdamW (default: the student's recipe)",
                                     aliases=("--lr",), bounds=Bounds(0, 1, integer=False, low_open=True))
    warmup: float = _f(0.05, "warm-up: a fraction of steps if < 1, else a number of steps",
                       bounds=Bounds(0, MAX_STEPS, integer=False))
    weight_decay: float = _f(0.01, "AdamW weight decay; learning rate x weight decay must stay below 1",
                             bounds=Bounds(0, 10, integer=False))
    seed: int = _f(0, "seed for subsampling, initialisation and data order", bounds=SEED)
    eval_every: int | None = _f(None, "evaluate task accuracy on the valid split every N steps (0: never during "
                                "training; default: the student's recipe)", bounds=Bounds(0, MAX_STEPS))
    eval_limit: int = _f(200, "examples of the valid split used for evaluation during training",
                         bounds=Bounds(1, 1_000_000))
    save_every: int = _f(200, "save a checkpoint (with optimizer state) every N steps", bounds=Bounds(1, MAX_STEPS))
    early_stopping_patience: int | None = _f(None, "stop after N evaluations without improvement",
                                             bounds=Bounds(1, 10_000))
    max_input_len: int = _f(256, "truncate inputs to this many tokens", bounds=Bounds(8, 8192))
    max_target_len: int = _f(128, "truncate targets (labels, rationales) to this many tokens", bounds=Bounds(4, 4096))
    # Off by default, measured (bench/throughput.py, tiny, built-in word problems): length-grouped batches cut
    # padding from 25% to 8% (1.19x examples/s) but left the held-out loss 25% higher after 60 steps and 43% higher
    # after 200, because the sampler sweeps from long to short problems and each batch holds one kind of problem.
    group_by_length: bool = _f(False, "length-grouped batches: less padding, but measured to learn worse per step")
    # Measured (bench/number_slots.py): a from-scratch student on the built-in word problems scores 0.38 with numbers as
    # text and 0.93 with slots after the same 1,200 steps.
    numbers: str = _f("auto", "numbers in the student's text: slots (N0, N1, … mapped back after generation), text, "
                      "or auto (slots for equation tasks with a preset student)", choices=NUMBER_MODES)
    # LoRA through peft (workbench.distill.lora); measured on 2 CPU cores it saves memory, not time.
    lora_rank: int = _f(0, "LoRA rank for a pretrained student (0: full fine-tuning)",
                        bounds=Bounds(0, MAX_LORA_RANK))
    lora_alpha: float | None = _f(None, "LoRA scaling alpha (default: 2 x rank)",
                                  bounds=Bounds(0, 4096, integer=False, low_open=True))
    lora_targets: str = _f("auto", "modules LoRA adapts, comma-separated (auto: q/k/v/o/gate/up/down for "
                           "Llama-family models, q/v for T5)")
    bf16: str = _f("auto", "bf16 mixed precision: auto (where the hardware has it: GPUs that support it; CPUs "
                   "with AVX512-BF16 or AMX, for pretrained students), true, false", choices=BF16_CHOICES)
    report_to: str = _f("none", "experiment trackers: none, tensorboard, wandb, mlflow (comma-separated)")
    # --run-name: under torchrun, whose own parser takes --run for an abbreviation of its --run-path
    run: str | None = _f(None, "run name (default: task-method-student-time); an existing name is refused",
                         aliases=("--run-name",))
    trust_remote_code: bool = _f(False, "allow a hub checkpoint's own Python code (off unless you trust it)")
    predict_rationales: bool = _f(True, "dss/cot: also generate rationales for the test predictions")
    test_limit: int | None = _f(None, "score only the first N test examples (default: all)",
                             bounds=Bounds(1, 1_000_000))

    def __post_init__(self):
        self._check_types()
        self._check_choices()
        self._check_ranges()
        why = METHODS[self.method].needs_teacher
        if why and self.teacher is None:
            raise ConfigError(f"method {self.method!r} {why}; pass --teacher (e.g. builtin)")
        if self.label_source == "teacher" and self.teacher is None:
            raise ConfigError("--label-source teacher needs a --teacher")
        if self.run is not None:
            check_name("run", self.run, longest=RUN_NAME_LONGEST)

    def _check_types(self) -> None:
        # A config also comes from JSON files and notebooks: a wrong type is a clear ConfigError, not a TypeError
        # deep inside training. bool is not a number here, and numbers must be finite.
        for f in fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            if value is None and kind.endswith("| None"):
                continue
            if f.metadata.get("bounds"):  # a number: its type and its range in one message
                f.metadata["bounds"].check(f.name, value)
                continue
            base = kind.removesuffix(" | None")
            ok = {"str": isinstance(value, str), "bool": isinstance(value, bool),
                  "int": isinstance(value, int) and not isinstance(value, bool),
                  "float": isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value)}.get(base, True)
            if not ok:
                what = {"str": "text", "bool": "true or false", "int": "a whole number",
                        "float": "a finite number"}[base]
                raise ConfigError(f"{f.name} must be {what}, not {value!r}")

    def _check_choices(self) -> None:
        if not self.task:
            raise ConfigError("a task is required (--task)")
        for name in ("method", "label_source", "numbers", "bf16"):
            choices = _choices(_field(name))
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {getattr(self, name)!r}")

    def _check_ranges(self) -> None:  # each number's own range is checked with its type (_check_types)
        lr, decay = self.learning_rate or 0.0, self.weight_decay
        checks = [
            (self.early_stopping_patience is None or self.eval_every != 0,
             "early stopping needs evaluations: set eval_every"),
            # AdamW multiplies every weight by (1 - lr x weight decay) each step: at 1 or more the weights are
            # wiped out or flip sign and grow, so the run can only diverge.
            (lr * decay < 1,
             f"learning_rate x weight_decay must be below 1 (AdamW shrinks every weight by that share each step), "
             f"not {lr:g} x {decay:g} = {lr * decay:g}; lower the weight decay (0.01 to 0.1 is usual)"),
            (not (self.lora_rank and is_from_scratch(self.student)),
             f"LoRA adapts a pretrained model; {self.student!r} starts from random weights: use lora_rank 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup * self.steps)) if self.warmup < 1 else int(self.warmup)

    @property
    def is_resolved(self) -> bool:
        return all(getattr(self, name) is not None for name in RECIPE_FIELDS)

    def resolved(self) -> TrainConfig:
        """The config with every recipe field set: the student's recipe fills what was left as None."""
        if self.is_resolved:
            return self
        recipe = recipe_for(self.student)
        return replace(self, **{name: getattr(recipe, name) for name in RECIPE_FIELDS if getattr(self, name) is None})

    # -- serialisation -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a dict; unknown keys are an error (a typo must not be silently ignored)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a training config is a mapping of settings, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "task" not in data:
            raise ConfigError("a task is required (task: NAME)")
        return cls(**data)

    def with_(self, **changes) -> TrainConfig:
        """A copy with some fields changed (validated again); the original is never mutated."""
        return replace(self, **changes)


def field_bounds(name: str) -> Bounds | None:
    """The range of a numeric setting (None for text and flags), e.g. for a sweep's per-cell values."""
    return _field(name).metadata.get("bounds")


def _field(name: str):
    return next(f for f in fields(TrainConfig) if f.name == name)


def _choices(f) -> tuple | None:
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """Add one CLI option per :class:`TrainConfig` field (types, choices and help taken from the field).

    Defaults are left as ``None`` so that :func:`config_from_args` can tell which flags were given.
    """
    for f in fields(TrainConfig):
        if f.name in exclude or not f.metadata.get("cli", True):
            continue
        default = None if f.default is MISSING else f.default
        bounds = f.metadata.get("bounds")
        help_text = f"{f.metadata['help']} (default: {default}" + (f"; range {bounds.describe()})" if bounds else ")")
        if f.type in ("bool", bool):
            parser.add_argument(_flag(f.name), *f.metadata["aliases"], type=_parse_bool, default=None,
                                metavar="{true,false}", help=help_text)
            continue
        # A number's flag parses through its bounds: out of range is one line naming the flag and its range.
        kind = bounds or {"int": int, "float": float}.get(str(f.type).removesuffix(" | None"), str)
        parser.add_argument(_flag(f.name), *f.metadata["aliases"], type=kind, default=None,
                            choices=_choices(f), help=help_text)


def config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The config for parsed CLI arguments: given flags override the dataclass defaults."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
              if getattr(args, f.name, None) is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not values.get("task"):
        raise ConfigError("a task is required: pass --task NAME (see `workbench tasks`)")
    return TrainConfig.from_dict(values)


def config_to_cli(cfg: TrainConfig) -> str:
    """The equivalent ``workbench train`` command line (the UI shows it, copyable)."""
    parts = ["workbench", "train"]
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.default is not MISSING and value == f.default:
            continue
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts += [_flag(f.name), text if text.replace("-", "").replace(".", "").isalnum() else json.dumps(text)]
    return " ".join(parts)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
