"""Shared fixtures. Every test runs offline (no hub, no analytics) in its own workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _key, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost", "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true",
}.items():
    os.environ.setdefault(_key, _value)

PAPER_DATA = Path(__file__).resolve().parents[2] / "shared" / "paper-data"
# What launching the app sets for its process (specs read as a browser user's, its connections, its upload cap).
APP_PROCESS_ENV = ("WORKBENCH_SPEC_ORIGIN", "WORKBENCH_CONNECTIONS", "WORKBENCH_MAX_UPLOAD_MB")
for _key in APP_PROCESS_ENV:
    os.environ.pop(_key, None)


@pytest.fixture(autouse=True)
def _owner_process():
    """A test that launches the app makes this process the app's; the next test starts as the keys' owner again."""
    yield
    for key in APP_PROCESS_ENV:
        os.environ.pop(key, None)


@pytest.fixture
def store(tmp_path):
    from workbench.core.store import Store

    s = Store.open(tmp_path / "ws")
    yield s
    s.close()


@pytest.fixture
def paper_data() -> Path:
    if not (PAPER_DATA / "svamp").is_dir():
        pytest.fail(f"the paper's released data is missing at {PAPER_DATA} (../shared/paper-data)")
    return PAPER_DATA
