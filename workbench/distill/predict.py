"""A trained student answering: the :class:`Predictor` (its method's prompts, number slots, greedy generation),
runs loaded back from their folders, and a small cache of loaded runs for front ends that ask one at a time.

>>> run = load_run(store, "wordproblems-dss-tiny-20250101-120000")          # doctest: +SKIP
>>> run.predict(["Tom has 12 apples and eats 5. How many are left?"], rationale=True)   # doctest: +SKIP
[{'label': '12 - 5', 'rationale': 'He had 12 apples ...', 'parse_error': None}]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import RunError
from workbench.core.records import Example
from workbench.core.store import Store
from workbench.data.metrics import is_correct
from workbench.distill.config import TrainConfig
from workbench.distill.encoding import Encoder, encoder_for
from workbench.distill.methods import Method, method_for_config
from workbench.distill.runfolder import RunFolder
from workbench.distill.students import Student, generate, load_student


@dataclass
class Predictor:
    """A student with its method's prompts: label task greedy and short; the rationale task only when asked."""

    student: Student
    method: Method
    encoder: Encoder
    label_tokens: int = 24
    rationale_tokens: int = 128

    def predict(self, texts: list[str], *, rationale: bool = False, batch_size: int = 64) -> list[dict]:
        """Per text: ``label``, ``rationale`` (dss via its ``[rationale]`` prefix, cot from its one generation)."""
        slots = [self.encoder.slots(t) for t in texts]
        texts = [s.encode(t) for s, t in zip(slots, texts)]
        prompts = [self.encoder.source_ids(self.method.label_source(t)) for t in texts]
        tokens = self.label_tokens + (self.rationale_tokens if self.method.rationale_in_label else 0)
        outs = generate(self.student, prompts, max_new_tokens=tokens, batch_size=batch_size)
        rows = []
        for text, slot in zip(outs, slots):
            label, why, parse_error = self.method.parse(text)
            rows.append({"label": slot.decode(label), "rationale": slot.decode(why), "parse_error": parse_error})
        if rationale and self.method.rationale_source("") is not None:
            r_prompts = [self.encoder.source_ids(self.method.rationale_source(t)) for t in texts]
            outs = generate(self.student, r_prompts, max_new_tokens=self.rationale_tokens, batch_size=batch_size)
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
    if not folder.has_model:
        raise RunError(f"run {name!r} has no final model yet (status: {meta.get('status', 'unknown')}); "
                       f"resume it with `workbench train --resume {name}`")
    cfg = TrainConfig.from_dict(meta["config"])
    # Our own saved folder: no remote code is ever needed, whatever the run was trained from.
    student = load_student(folder.model_dir, trust_remote_code=False)
    return LoadedRun(name, folder.root, meta, cfg, predictor_for(student, cfg, meta.get("generation", {})))


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


def predictor_for(student: Student, cfg: TrainConfig, generation: dict) -> Predictor:
    encoder = encoder_for(student, cfg)
    return Predictor(student, method_for_config(cfg), encoder, int(generation.get("label_tokens", 24)),
                     int(generation.get("rationale_tokens", cfg.max_target_len)))


def predict_examples(predictor: Predictor, examples: list[Example], answer_kind: str, *,
                     rationale: bool = False) -> tuple[list[dict], float]:
    """Prediction rows joined with their examples (``correct`` by the task metric), and seconds taken."""
    started = time.perf_counter()
    preds = predictor.predict([e.input for e in examples], rationale=rationale)
    seconds = time.perf_counter() - started
    rows = [{"example_id": e.id, "input": e.input, "gold": e.label, **p,
             "correct": is_correct(p["label"], e.label, answer_kind, p["parse_error"])}
            for e, p in zip(examples, preds)]
    return rows, seconds
