"""A trained student answering: the :class:`Predictor` (its method's prompts, number slots, greedy generation),
runs loaded back from their folders, and a small cache of loaded runs for front ends that ask one at a time.

>>> run = load_run(store, "quantnli-dss")                   # a tiny dss student after two steps
>>> (answer,) = run.predict(["Tom has 12 apples and eats 5. He has 7 apples left."], rationale=True)
>>> sorted(answer)
['label', 'parse_error', 'rationale']
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import RunError
from workbench.core.store import Store
from workbench.core.store_records import Example
from workbench.data.metrics import EquationError, evaluate_equation, is_correct
from workbench.distill.config import TrainConfig
from workbench.distill.encoding import Encoder, encoder_for
from workbench.distill.methods import Method, ensure_method, method_for_config
from workbench.distill.number_slots import SLOT_WORD
from workbench.distill.runfolder import RunFolder
from workbench.distill.students import Student, device_info, generate, load_student


@dataclass
class Predictor:
    """A student with its method's prompts: label task greedy and short; the rationale task only when asked."""

    student: Student
    method: Method
    encoder: Encoder
    label_tokens: int = 24
    rationale_tokens: int = 128
    answer_kind: str | None = None  # the task's: an answer that cannot be one is a parse error, shown as such
    labels: tuple[str, ...] | None = None
    bf16: bool = False  # generate under bf16 autocast, as the run trained

    def predict(self, texts: list[str], *, rationale: bool = False, batch_size: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> list[dict]:
        """Per text: ``label``, ``rationale`` (dss via its rationale task, cot from its one generation).

        The label is generated greedily, one line, at most ``label_tokens`` tokens (the run measured its longest
        training label); a rationale only when asked. ``progress(done, total)`` counts generations (texts, twice
        with rationales); ``should_stop`` cancels (:class:`~workbench.core.errors.Cancelled`) within a token."""
        slots = [self.encoder.slots(t) for t in texts]
        texts = [s.encode(t) for s, t in zip(slots, texts)]
        prompts = [self.encoder.prompt_ids(t, self.method.marker(0)) for t in texts]
        with_rationale = rationale and self.method.rationale_task is not None
        total = len(texts) * (2 if with_rationale else 1)
        report = (lambda offset: (lambda done, _n: progress(offset + done, total))) if progress else (lambda _o: None)
        tokens = self.label_tokens + (self.rationale_tokens if self.method.rationale_in_label else 0)
        outs = generate(self.student, prompts, max_new_tokens=tokens, batch_size=batch_size,
                        one_line=not self.method.rationale_in_label, progress=report(0), should_stop=should_stop,
                        bf16=self.bf16)
        rows = []
        for text, slot in zip(outs, slots):
            label, why, parse_error = self.method.parse(text)
            label = slot.decode(label)
            rows.append({"label": label, "rationale": slot.decode(why),
                         "parse_error": parse_error or answer_problem(label, self.answer_kind, self.labels)})
        if with_rationale:
            marker = self.method.marker(self.method.rationale_task)
            r_prompts = [self.encoder.prompt_ids(t, marker) for t in texts]
            outs = generate(self.student, r_prompts, max_new_tokens=self.rationale_tokens, batch_size=batch_size,
                            progress=report(len(texts)), should_stop=should_stop, bf16=self.bf16)
            for row, text, slot in zip(rows, outs, slots):
                row["rationale"] = slot.decode(text)
        return rows


@dataclass
class LoadedRun:
    """A finished run read back from its folder: config, student and a predictor."""

    name: str
    run_dir: Path
    meta: dict
    config: TrainConfig
    predictor: Predictor

    def predict(self, texts: list[str], *, rationale: bool = False) -> list[dict]:
        return self.predictor.predict(list(texts), rationale=rationale)

    @property
    def student(self) -> Student:
        return self.predictor.student


def load_run(store: Store, name: str) -> LoadedRun:
    """Load a run's final model (``<run>/model``), tokenizer and config; raises if it has not finished."""
    folder = RunFolder.of(store, name)
    meta = folder.read_meta()
    ensure_method(meta["config"].get("method", ""), meta.get("method_class"))  # a notebook's method, imported
    if not folder.has_model:
        raise RunError(f"run {name!r} has no final model yet (status: {meta.get('status', 'unknown')}); "
                       f"resume it with `workbench train --resume {name}`")
    cfg = TrainConfig.from_dict(meta["config"])
    # Our own saved folder: no remote code is ever needed, whatever the run was trained from.
    student = load_student(folder.model_dir, trust_remote_code=False)
    return LoadedRun(name, folder.root, meta, cfg, predictor_for(student, cfg, meta.get("generation", {}),
                                                                 meta.get("task")))


class RunCache:
    """The last few loaded runs (loading takes seconds; asking one takes milliseconds), for the app's "ask both"
    box and anything else that predicts one input at a time. Thread-safe."""

    def __init__(self, size: int = 2):
        self.size = size
        self._runs: OrderedDict[tuple[str, str], LoadedRun] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store: Store, name: str) -> LoadedRun:
        key = (str(store.workspace), name)
        with self._lock:
            if key not in self._runs:
                self._runs[key] = load_run(store, name)
                while len(self._runs) > self.size:
                    self._runs.popitem(last=False)
            self._runs.move_to_end(key)
            return self._runs[key]


def predictor_for(student: Student, cfg: TrainConfig, generation: dict, task: dict | None = None) -> Predictor:
    """The run's predictor; ``task`` (a run's ``meta["task"]``) lets it call an answer of the wrong shape what it is."""
    # A run records where its task markers go; one from before that recorded nothing put them first.
    encoder = encoder_for(student, cfg, generation.get("layout", "marker-first"))
    task = task or {}
    labels = tuple(task["labels"]) if task.get("labels") else None
    return Predictor(student, method_for_config(cfg), encoder, int(generation.get("label_tokens", 24)),
                     int(generation.get("rationale_tokens", cfg.max_target_len)), task.get("answer_kind"), labels,
                     device_info(cfg.bf16, cfg.student)["bf16"])


def answer_problem(label: str | None, answer_kind: str | None, labels: tuple[str, ...] | None) -> str | None:
    """Why a student's answer cannot be an answer of this task (None: it can). A number slot left over means the
    student wrote a quantity its input does not have; an equation must evaluate; a class must be one of the labels.

    >>> answer_problem("4 - N7", "equation", None)
    'the student wrote the number slot N7, which this input does not have'
    >>> answer_problem("( 4 - 1", "equation", None)
    "label '( 4 - 1' is not arithmetic: not an arithmetic expression: '( 4 - 1'"
    """
    if not label or not label.strip():
        return "empty answer"
    leftover = SLOT_WORD.search(label)
    if leftover:
        return f"the student wrote the number slot {leftover.group()}, which this input does not have"
    if answer_kind == "equation":
        try:
            evaluate_equation(label)
        except EquationError as err:
            return f"label {label[:60]!r} is not arithmetic: {err}"
    if answer_kind == "classes" and labels and label.strip() not in labels:
        return f"label {label[:60]!r} is not one of {', '.join(labels)}"
    return None


def predict_examples(predictor: Predictor, examples: list[Example], answer_kind: str, *,
                     rationale: bool = False, progress: Callable[[int, int], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> tuple[list[dict], float]:
    """Prediction rows joined with their examples (``correct`` by the task metric), and seconds taken."""
    started = time.perf_counter()
    preds = predictor.predict([e.input for e in examples], rationale=rationale, progress=progress,
                              should_stop=should_stop)
    seconds = time.perf_counter() - started
    rows = [{"example_id": e.id, "input": e.input, "gold": e.label, **p,
             "correct": is_correct(p["label"], e.label, answer_kind, p["parse_error"])}
            for e, p in zip(examples, preds)]
    return rows, seconds
