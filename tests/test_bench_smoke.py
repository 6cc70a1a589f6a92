"""Benchmarks run in seconds with ``--smoke``: they keep working, and their output has the promised fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_teachers_bench_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "teachers.py"), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "teachers.json").read_text())
    hf, endpoint = result["hf"], result["endpoint"]
    assert hf["batch_1"]["tokens"] > 0 and hf["speedup"] > 1  # batching helps even at smoke sizes
    assert endpoint["client_max_in_flight"] == 32 and endpoint["server_max_in_flight"] == 32
    assert endpoint["failed_rows"] == 0 and endpoint["requests_sent"] == endpoint["rows"]
    assert endpoint["rerun_requests"] == 0 and endpoint["duplicate_prompts_server_side"] == 0  # the cache
    assert "| hf speed-up" in (tmp_path / "teachers.md").read_text() and "requests/s" in proc.stdout
