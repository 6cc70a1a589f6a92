"""The multi-process path: ``torchrun --nproc_per_node 2`` on CPU (gloo) trains, shards the data, and gives a model
that loads and scores — the same command a user runs on several GPUs, so the distributed path cannot rot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")

# Records, per rank, the examples of every batch the collator makes (their label-task source token ids). Loaded
# through PYTHONPATH as sitecustomize, so the command under test stays exactly `torchrun ... -m workbench ...`.
SPY = '''
import json, os
if os.environ.get("WORKBENCH_TEST_SPY_DIR"):
    from workbench.distill import encoding as methods
    _collate = methods.Collator.__call__
    def _spy(self, features):
        path = os.path.join(os.environ["WORKBENCH_TEST_SPY_DIR"], f"rank{os.environ.get('RANK', '0')}.jsonl")
        with open(path, "a") as f:
            f.write(json.dumps([feat["sources"][0] for feat in features]) + "\\n")
        return _collate(self, features)
    methods.Collator.__call__ = _spy
'''


def _workbench(ws: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", "--workspace", str(ws), *args, "--json"],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(str(TORCHRUN)) is None, reason="torchrun is not installed next to python")
def test_torchrun_two_processes_shard_train_and_score(tmp_path):
    ws, spy = tmp_path / "ws", tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPY)
    gen = _workbench(ws, "generate", "--task", "wordproblems", "--teacher", "builtin", "--limit", "200")
    assert gen.returncode == 0, gen.stderr[-2000:]

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(spy), str(ROOT)]), "WORKBENCH_TEST_SPY_DIR": str(spy)}
    steps, batch = 6, 8
    # --run-name, not --run: torchrun's own parser takes --run for an abbreviation of its --run-path.
    proc = subprocess.run(
        [str(TORCHRUN), "--nproc_per_node", "2", "-m", "workbench", "--workspace", str(ws), "train",
         "--task", "wordproblems", "--method", "dss", "--student", "tiny", "--teacher", "builtin",
         "--steps", str(steps), "--batch-size", str(batch), "--run-name", "ddp", "--test-limit", "20",
         "--predict-rationales", "false", "--json"],
        capture_output=True, text=True, timeout=150, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["steps"] == steps

    # Sharded: each rank collated its own batches, and no example was seen by both ranks.
    seen = {}
    for rank in (0, 1):
        batches = [json.loads(line) for line in (spy / f"rank{rank}.jsonl").read_text().splitlines()]
        assert len(batches) >= steps and all(len(b) == batch for b in batches[:steps])
        seen[rank] = {tuple(ids) for b in batches[:steps] for ids in b}
    assert seen[0] and seen[1] and not seen[0] & seen[1]

    # Only rank 0 wrote the run's files: one training start in the metrics, one final model.
    run_dir = ws / "runs" / "ddp"
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "train_begin" for e in events) == 1

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(run_dir / "model")
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    assert model.config.vocab_size == len(tok)

    scored = _workbench(ws, "eval", "--run", "ddp", "--split", "valid", "--limit", "10")
    assert scored.returncode == 0, scored.stderr[-2000:]
    result = json.loads(scored.stdout.strip().splitlines()[-1])
    assert result["n"] == 10 and 0.0 <= result["accuracy"] <= 1.0
