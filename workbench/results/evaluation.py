"""Scoring a trained run on a split by its task's metric (``workbench eval``).

>>> out = evaluate(store, "quantnli-dss", split="test")        # a tiny dss student after two steps
>>> out["task"], out["split"], out["n"], 0 <= out["accuracy"] <= 1
('quantnli', 'test', 8, True)
"""

from __future__ import annotations

from workbench.core.errors import ConfigError
from workbench.core.store import Store
from workbench.data.metrics import score_predictions
from workbench.distill.predict import load_run, predict_examples
from workbench.distill.runfolder import RunFolder


def evaluate(store: Store, run: str, split: str = "test", limit: int | None = None) -> dict:
    """The run's accuracy on a split by the task metric.

    The test split is scored from the run's ``predictions.jsonl`` (written when training finished); other splits,
    or a run without predictions, are predicted now with the run's final model.
    """
    folder = RunFolder.of(store, run)
    task = folder.read_meta()["task"]
    rows = folder.read_predictions() if split == "test" else []
    if rows and limit is not None:
        rows = rows[:limit]
    if not rows:
        examples = store.examples(task["name"], split, limit)
        if not examples:
            raise ConfigError(f"task {task['name']!r} has no {split!r} examples")
        loaded = load_run(store, run)
        rows, _ = predict_examples(loaded.predictor, examples, task["answer_kind"])
    return {"run": run, "split": split, "task": task["name"], "metric": task.get("metric"),
            **score_predictions(rows, task["answer_kind"], task.get("labels"))}
