"""Scoring students: load a trained run, predict labels (and rationales), and score them by the task metric.

>>> run = load_run(store, "wordproblems-dss-tiny-20250101-120000")          # doctest: +SKIP
>>> run.predict(["Tom has 12 apples and eats 5. How many are left?"], rationale=True)   # doctest: +SKIP
[{'label': '12 - 5', 'rationale': 'He had 12 apples ...', 'parse_error': None}]
>>> evaluate(store, run.name, split="test")["accuracy"]                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .errors import ConfigError, RunError
from .methods import Encoder, Method, encoder_for, method_for_config
from .metrics import METRICS, confusion_matrix
from .store import Example, Store
from .students import Student, generate, load_student


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


def run_path(store: Store, name: str) -> Path:
    return store.workspace / "runs" / name


def read_meta(store: Store, name: str) -> dict:
    path = run_path(store, name) / "config.json"
    if not path.is_file():
        raise RunError(f"run {name!r} has no {path}; list runs with `workbench runs`")
    return json.loads(path.read_text(encoding="utf-8"))


def load_run(store: Store, name: str) -> LoadedRun:
    """Load a run's final model (``<run>/model``), tokenizer and config; raises if it has not finished."""
    meta = read_meta(store, name)
    folder = run_path(store, name)
    if not (folder / "model" / "config.json").is_file():
        raise RunError(f"run {name!r} has no final model yet (status: {meta.get('status', 'unknown')}); "
                       f"resume it with `workbench train --resume {name}`")
    cfg = TrainConfig.from_dict(meta["config"])
    # Our own saved folder: no remote code is ever needed, whatever the run was trained from.
    student = load_student(folder / "model", trust_remote_code=False)
    return LoadedRun(name, folder, meta, cfg, predictor_for(student, cfg, meta.get("generation", {})))


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
    match = METRICS[answer_kind]
    rows = [{"example_id": e.id, "input": e.input, "gold": e.label, **p,
             "correct": bool(p["parse_error"] is None and match(p["label"], e.label))}
            for e, p in zip(examples, preds)]
    return rows, seconds


def score(rows: list[dict], answer_kind: str, labels: list[str] | None = None) -> dict:
    """Accuracy over rows with a gold label; for class tasks also per-class figures and a confusion matrix."""
    gold_rows = [r for r in rows if r.get("gold") is not None]
    n = len(gold_rows)
    out = {"accuracy": (sum(r["correct"] for r in gold_rows) / n) if n else None, "n": n,
           "parse_errors": sum(1 for r in rows if r.get("parse_error"))}
    if answer_kind == "classes" and labels and n:
        cm = confusion_matrix([r["label"] for r in gold_rows], [r["gold"] for r in gold_rows], list(labels))
        out["per_class"], out["confusion"] = cm.pop("per_class"), cm
    return out


def read_predictions(folder: Path) -> list[dict]:
    path = folder / "predictions.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(store: Store, run: str, split: str = "test", limit: int | None = None) -> dict:
    """The run's accuracy on a split by the task metric.

    The test split is scored from the run's ``predictions.jsonl`` (written when training finished); other splits,
    or a run without predictions, are predicted now with the run's final model.
    """
    meta = read_meta(store, run)
    task = meta["task"]
    rows = read_predictions(run_path(store, run)) if split == "test" else []
    if rows and limit is not None:
        rows = rows[:limit]
    if not rows:
        examples = store.examples(task["name"], split, limit)
        if not examples:
            raise ConfigError(f"task {task['name']!r} has no {split!r} examples")
        loaded = load_run(store, run)
        rows, _ = predict_examples(loaded.predictor, examples, task["answer_kind"])
    return {"run": run, "split": split, "task": task["name"], "metric": task.get("metric"),
            **score(rows, task["answer_kind"], task.get("labels"))}
