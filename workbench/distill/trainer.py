"""A narrow HF ``Trainer`` subclass and the callbacks that make a run observable and stoppable.

:class:`DistillTrainer` overrides only :meth:`~DistillTrainer.compute_loss` (the loss itself is the method's pure
function in :mod:`workbench.distill.methods`) and :meth:`~DistillTrainer.log` (to add the per-task loss parts). Everything
else — device placement, bf16, gradient accumulation, DDP under ``torchrun``, checkpoints with optimizer and
scheduler state, resume — is the Trainer's (and accelerate's) own.

How a run builds it (:func:`workbench.distill.runs.train_student` does this; not an example to run alone)::

    trainer = DistillTrainer(model=m, args=args, train_dataset=ds, data_collator=collator,
                             method=get_method("dss"), causal=False)
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from workbench.core.errors import Cancelled
from workbench.core.events import (
    Checkpoint,
    EarlyStop,
    Evaluation,
    Event,
    Note,
    Phase,
    Resumed,
    TrainBegin,
    TrainStep,
)
from workbench.data.metrics import accuracy
from workbench.distill.encoding import Collator, encoder_for, forward_logits, target_logits
from workbench.distill.lora import is_peft, merge, with_lora
from workbench.distill.methods import Method, method_for_config
from workbench.distill.runfolder import RunFolder
from workbench.distill.students import device_info

ProgressFn = Callable[[Event], None]


def is_main_process() -> bool:
    """True on the process that writes files (rank 0 under torchrun; always true otherwise)."""
    return int(os.environ.get("RANK", "0")) == 0


class DistillTrainer(Trainer):
    """``Trainer`` whose loss is a :class:`~workbench.distill.methods.Method`'s pure function over one forward pass."""

    # Our loss is a per-batch mean: let the Trainer divide it by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, method: Method, causal: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method
        self.causal = causal
        self._part_sums: dict[str, float] = {}
        self._part_count = 0

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        # accelerate puts bf16 autocast around the model's forward only; the loss calls the body and the output
        # layer directly (target_logits), which without this ran in float32 whatever bf16 said, on GPUs too.
        return self.accelerator.autocast()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.method.needs_logits:
            logits = forward_logits(model, inputs)
            out = self.method.loss(logits, inputs, self.causal)
        else:  # the output layer only where a target is predicted (causal students; see target_logits)
            logits, targets, tasks = target_logits(model, inputs, self.causal)
            out = self.method.target_loss(logits, targets, tasks)
        if model.training:
            for key, value in out.parts.items():  # kept on device until a log step: no sync per step
                self._part_sums[key] = self._part_sums.get(key, 0.0) + value
            self._part_count += 1
        return (out.loss, {"logits": logits}) if return_outputs else out.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._part_count:
            for key, total in self._part_sums.items():
                logs[key] = round(float(total) / self._part_count, 6)
            self._part_sums, self._part_count = {}, 0
        super().log(logs, start_time)


def training_arguments(cfg, output_dir: Path, *, world_size: int = 1) -> TrainingArguments:
    """Trainer arguments for a :class:`~workbench.distill.config.TrainConfig` (dynamic padding)."""
    cfg = cfg.resolved()
    dev = device_info(cfg.bf16, cfg.student)
    return TrainingArguments(
        output_dir=str(output_dir), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear", seed=cfg.seed, data_seed=cfg.seed, bf16=dev["bf16"],
        use_cpu=not dev["cuda"], dataloader_pin_memory=dev["cuda"], logging_steps=_log_every(cfg.steps),
        save_strategy="steps", save_steps=cfg.save_every, save_total_limit=2, eval_strategy="no",
        report_to=[] if cfg.report_to == "none" else cfg.report_to.split(","), disable_tqdm=True,
        remove_unused_columns=False, train_sampling_strategy="group_by_length" if cfg.group_by_length else "random", length_column_name="length",
        dataloader_num_workers=0, ddp_find_unused_parameters=False if world_size > 1 else None,
    )


def _log_every(steps: int) -> int:
    # ~50 points per curve, at least every 25 steps so a short run still shows progress.
    return max(1, min(25, steps // 50))


class MetricsLog:
    """Appends typed events to the run's ``metrics.jsonl`` (main process only) and hands them to a progress
    function."""

    def __init__(self, folder: RunFolder, progress: ProgressFn | None = None):
        self.folder = folder
        self.progress = progress
        self.main = is_main_process()

    def write(self, event: Event) -> None:
        if self.main:
            self.folder.append_event(event)
            if self.progress is not None:
                self.progress(event)


@dataclass
class Pace:
    """Seconds spent training (evaluations excluded), and the recent seconds per step, for an ETA that does not
    jump when an evaluation pauses training or the first steps warm up."""

    started: float = 0.0
    paused: float = 0.0  # seconds spent in evaluations
    eval_seconds: float = 0.0
    evaluations: int = 0
    window: deque = None  # (training seconds, step) at the last few logs

    def __post_init__(self):
        self.window = deque(maxlen=6)

    def training_seconds(self) -> float:
        return time.monotonic() - self.started - self.paused

    def record(self, step: int) -> float | None:
        """Seconds per step over the last few logged steps (None until two logs)."""
        self.window.append((self.training_seconds(), step))
        (t0, s0), (t1, s1) = self.window[0], self.window[-1]
        return (t1 - t0) / (s1 - s0) if s1 > s0 else None

    def eta(self, step: int, steps: int, rate: float | None, eval_every: int) -> float | None:
        if rate is None:
            return None
        left = max(0, steps - step)
        evals_left = (steps // eval_every - step // eval_every + (steps % eval_every != 0)) if eval_every else 0
        per_eval = self.eval_seconds / self.evaluations if self.evaluations else 0.0
        return left * rate + evals_left * per_eval


class ProgressCallback(TrainerCallback):
    """Turns the Trainer's logs into :class:`TrainStep` events: step, loss and its parts, lr, time, ETA."""

    def __init__(self, log: MetricsLog, pace: Pace, eval_every: int = 0):
        self.log, self.pace, self.eval_every = log, pace, eval_every
        self.first_step = 0

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.pace.started, self.first_step = time.monotonic(), state.global_step
        self.pace.window.append((0.0, state.global_step))
        self.log.write(TrainBegin(step=state.global_step, steps=state.max_steps,
                                  optimizer_step=_optimizer_step(optimizer)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs:
            return
        done = state.global_step - self.first_step
        elapsed = self.pace.training_seconds()
        rate = self.pace.record(state.global_step)
        eta = self.pace.eta(state.global_step, state.max_steps, rate, self.eval_every)
        self.log.write(TrainStep(step=state.global_step, steps=state.max_steps, loss=logs["loss"],
                                 lr=logs.get("learning_rate"),
                                 parts={k: v for k, v in logs.items() if k.endswith("_loss") or k == "kl"},
                                 elapsed=round(elapsed, 2), eta=None if eta is None else round(eta, 1),
                                 s_per_step=round(elapsed / done, 4) if done else None))

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.log.write(Checkpoint(step=state.global_step, path=str(path.name)))


def _optimizer_step(optimizer) -> int | None:
    """Adam's own step counter: after a resume it equals the checkpoint's step (the state was restored)."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the optimizer
    for state in getattr(inner, "state", {}).values():
        if "step" in state:
            return int(state["step"])
    return 0 if inner is not None else None


class StopCallback(TrainerCallback):
    """Cancel: when ``should_stop()`` turns true, save a checkpoint at this step and stop cleanly."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and self.should_stop():
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


class EvalCallback(TrainerCallback):
    """Task accuracy (generation + the task's metric) every ``every`` steps and at the last step; optional early
    stopping. A cancelled run is not evaluated on its way out, and a cancel during an evaluation stops it within a
    generated token: the run saves a checkpoint at that step and stops, as a cancel between steps does."""

    def __init__(self, evaluate: Callable[[], tuple[float | None, int]], every: int, log: MetricsLog, pace: Pace,
                 patience: int | None = None, cancelled: Callable[[], bool] = lambda: False,
                 on_cancel: Callable[[int], None] = lambda step: None):
        self.evaluate, self.every, self.log, self.pace, self.patience = evaluate, every, log, pace, patience
        self.cancelled, self.on_cancel = cancelled, on_cancel
        self._interrupted = False
        self.best = -math.inf
        self.bad_evals = 0
        self.history: list[tuple[int, float]] = []

    def cancelled_now(self) -> bool:
        return self._interrupted

    def on_step_end(self, args, state, control, **kwargs):
        last = state.global_step >= state.max_steps
        if not self.every or self.cancelled() or (state.global_step % self.every and not last):
            return control
        if control.should_training_stop and not last:  # stopped early for another reason (early stop)
            return control
        started = time.monotonic()
        try:
            acc, n = self.evaluate()
        except Cancelled:
            acc, n, self._interrupted = None, 0, True
        seconds = time.monotonic() - started
        self.pace.paused += seconds
        self.pace.eval_seconds += seconds
        self.pace.evaluations += 1
        if acc is None and self.cancelled_now():
            self.on_cancel(state.global_step)
            control.should_save = True
            control.should_training_stop = True
            return control
        self.history.append((state.global_step, acc))
        self.log.write(Evaluation(step=state.global_step, accuracy=acc, seconds=round(seconds, 2), n=n))
        if acc is not None and acc > self.best:
            self.best, self.bad_evals = acc, 0
        else:
            self.bad_evals += 1
            if self.patience is not None and self.bad_evals >= self.patience and not last:
                self.log.write(EarlyStop(step=state.global_step, best_accuracy=self.best))
                control.should_save = True
                control.should_training_stop = True
        return control


@dataclass
class FitResult:
    trainer: DistillTrainer
    predictor: object  # predict.Predictor over the trained model
    steps: int
    train_seconds: float  # wall time of trainer.train(), evaluations included
    s_per_step: float | None  # training only
    stopped: bool
    eval_history: list
    eval_seconds: float = 0.0


def fit(session, *, progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
        resume_from: str | None = None) -> FitResult:
    """Encode the session's rows, train with :class:`DistillTrainer` and the callbacks; writes nothing but the
    Trainer's own checkpoints and the run's events."""
    import datasets
    from transformers import PrinterCallback

    from workbench.distill.predict import predict_examples, predictor_for

    cfg, folder, task, student = session.cfg, session.folder, session.task, session.student
    method = method_for_config(cfg)
    prepare_for_training(student, cfg)
    encoder = encoder_for(student, cfg, session.meta["generation"].get("layout", "marker-first"))
    features = [encoder.encode(method, r, task.labels) for r in session.rows]
    dataset = datasets.Dataset.from_dict({k: [f[k] for f in features] for k in features[0]})
    collator = Collator(student.tokenizer.pad_token_id, student.is_causal,
                        decoder_start_id=getattr(student.model.config, "decoder_start_token_id", None),
                        class_token_ids=encoder.class_token_ids(task.labels) if method.needs_label_dist else None,
                        pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    log = MetricsLog(folder, progress)
    if resume_from:
        log.write(Resumed(from_checkpoint=Path(resume_from).name))
    predictor = predictor_for(student, cfg, session.meta["generation"], session.meta.get("task"))
    pace = Pace()
    callbacks: list[TrainerCallback] = [ProgressCallback(log, pace, cfg.eval_every)]
    stop_cb = StopCallback(should_stop) if should_stop is not None else None
    if stop_cb:
        callbacks.append(stop_cb)
    eval_cb = _eval_callback(cfg, task, predictor, log, pace, predict_examples, stop_cb)
    if eval_cb:
        callbacks.append(eval_cb)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    trainer = DistillTrainer(model=student.model, args=training_arguments(cfg, folder.checkpoints, world_size=world),
                             train_dataset=dataset, data_collator=collator, processing_class=student.tokenizer,
                             callbacks=callbacks, method=method, causal=student.is_causal)
    trainer.remove_callback(PrinterCallback)  # progress goes to metrics.jsonl and the progress function
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.monotonic() - started
    first = int(Path(resume_from).name.split("-")[-1]) if resume_from else 0
    done = trainer.state.global_step - first
    return FitResult(trainer, predictor, trainer.state.global_step, seconds,
                     round((seconds - pace.paused) / done, 4) if done > 0 else None,
                     bool(stop_cb and stop_cb.stopped_at is not None), eval_cb.history if eval_cb else [],
                     pace.eval_seconds)


def prepare_for_training(student, cfg) -> None:
    """LoRA adapters when the config asks (unless a resumed checkpoint already has them), and no KV cache: in
    training it is of no use, and with packed sequences transformers builds the block-diagonal mask only without
    one (generation turns it back on)."""
    if getattr(cfg, "lora_rank", 0) and not is_peft(student.model):
        student.model = with_lora(student.model, causal=student.is_causal, rank=cfg.lora_rank,
                                  alpha=cfg.lora_alpha, targets=cfg.lora_targets)
    student.model.config.use_cache = False


def save_final_model(trainer: Trainer, student, path: Path) -> None:
    """The run's ``model/``: a plain ``save_pretrained`` folder. LoRA adapters are merged into the weights first
    (the student then predicts with the merged model: the same outputs, no adapter overhead)."""
    if is_peft(student.model):
        student.model = merge(student.model)
        trainer.model = student.model
    student.model.config.use_cache = True  # what loading it for generation wants
    trainer.save_model(str(path))


def _eval_callback(cfg, task, predictor, log: MetricsLog, pace: Pace, predict_examples,
                   stop_cb: StopCallback | None) -> EvalCallback | None:
    if not cfg.eval_every:
        return None
    examples = task.examples("valid", cfg.eval_limit) if task.store is not None else []
    if not examples:
        log.write(Note(message=f"task {task.name!r} has no valid split: no evaluation in training"))
        return None

    def phase(done: int, total: int) -> None:  # progress only: phases are not part of metrics.jsonl
        if log.main and log.progress is not None:
            log.progress(Phase(name="evaluating", done=done, total=total))

    def evaluate() -> tuple[float | None, int]:
        phase(0, len(examples))
        rows, _ = predict_examples(predictor, examples, task.answer_kind, progress=phase,
                                   should_stop=stop_cb.should_stop if stop_cb else None)
        return accuracy([r["label"] for r in rows], [r["gold"] for r in rows], task.answer_kind,
                        [r["parse_error"] for r in rows]), len(rows)

    def on_cancel(step: int) -> None:
        if stop_cb is not None:
            stop_cb.stopped_at = step

    return EvalCallback(evaluate, cfg.eval_every, log, pace, cfg.early_stopping_patience,
                        lambda: bool(stop_cb and stop_cb.stopped_at is not None), on_cancel)
