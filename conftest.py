"""What every test and every docstring example shares: an offline environment and a workspace built once.

``pytest`` collects ``tests/`` and, with ``--doctest-modules``, every docstring of ``workbench/``; this file sits
above both. A docstring example runs in a fresh temporary folder (its current directory, so
``Store.open("workspace")`` never writes into the repository) and sees these names besides its module's own:

* ``store``: a copy of the session's workspace, ``./workspace``, holding the built-in tasks ``wordproblems``
  (24 train, 8 valid, 8 test) and ``quantnli`` (the same sizes), the paper's ``svamp`` with PaLM's answers, the
  builtin teacher's answers for ``quantnli`` (train and test), and ``quantnli-dss``, a tiny ``dss`` run of two
  steps (a run exists, it has learned nothing);
* ``task``, ``example``, ``prompt``: ``wordproblems``, its first training example and that example's prompt
  (no teacher has answered ``wordproblems`` yet);
* ``PAPER_DATA``: the paper's released data (``../shared/paper-data``).

Tests read the same workspace through ``trained_store`` (a private copy per test; ``trained_run`` names its
run), never the session's own folder, which every copy starts from.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

for _key, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost", "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true",
}.items():
    os.environ.setdefault(_key, _value)
# Calibrations (the time estimates' measurements) shared by the session's tests, never written to the user's cache.
os.environ.setdefault("WORKBENCH_CALIBRATION", os.path.join(tempfile.mkdtemp(prefix="wb-calib-"), "calibration.json"))

ROOT = Path(__file__).resolve().parent
PAPER_DATA = ROOT.parent / "shared" / "paper-data"
SIZES = dict(n_train=24, n_valid=8, n_test=8)
RUN = "quantnli-dss"  # the session's trained run (docstrings name it)


def copy_workspace(src: Path, dst: Path) -> Path:
    """A private copy of a prepared workspace (run folders, uploads and the SQLite file; never a held lock)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock", "*.lock"))
    return dst


@pytest.fixture(scope="session")
def session_workspace(tmp_path_factory) -> Path:
    """Built once per session and then only copied (its store is closed): see this module's docstring."""
    from workbench.core.store import Store
    from workbench.data.tasks import load_task
    from workbench.distill.config import TrainConfig
    from workbench.distill.runs import train_student
    from workbench.imports.paper import import_paper
    from workbench.rationales.generation import generate_rationales
    from workbench.rationales.teachers import get_teacher

    root = tmp_path_factory.mktemp("session") / "workspace"
    store = Store.open(root)
    try:
        load_task("wordproblems", store, **SIZES)
        quantnli = load_task("quantnli", store, **SIZES)
        teacher = get_teacher("builtin", store=store)
        for split in ("train", "test"):
            generate_rationales(store, quantnli, teacher, split=split)
        if (PAPER_DATA / "svamp").is_dir():
            import_paper(store, PAPER_DATA / "svamp", "svamp")
        train_student(store, TrainConfig(task="quantnli", method="dss", student="tiny", teacher="builtin", steps=2,
                                         batch_size=8, eval_every=0, save_every=1000, run=RUN))
    finally:
        store.close()
    return root


@pytest.fixture
def trained_store(tmp_path, session_workspace):
    """A private copy of the session's workspace (with the trained run ``trained_run``): yours to change."""
    from workbench.core.store import Store

    store = Store.open(copy_workspace(session_workspace, tmp_path / "trained-ws"))
    yield store
    store.close()


@pytest.fixture
def trained_run() -> str:
    """The name of the session workspace's trained run (a tiny ``dss`` student on ``quantnli``, two steps)."""
    return RUN


# -- docstring examples -----------------------------------------------------------------------------------------
# A docstring that names one of these gets the session's workspace copied in; the others only get a fresh folder.
_NEEDS_WORKSPACE = re.compile(r"\b(store|task|example|prompt|PAPER_DATA)\b")


@pytest.fixture(autouse=True)
def _doctest_workspace(request, tmp_path_factory):
    from _pytest.doctest import DoctestItem

    if not isinstance(request.node, DoctestItem):
        yield
        return
    namespace = request.getfixturevalue("doctest_namespace")
    for name in ("store", "task", "example", "prompt", "PAPER_DATA"):
        namespace.pop(name, None)
    folder = tmp_path_factory.mktemp("doctest")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.chdir(folder)
    source = "\n".join(e.source for e in request.node.dtest.examples)
    if not _NEEDS_WORKSPACE.search(source):
        yield
        return
    from workbench.core.store import Store
    from workbench.data.tasks import load_task

    store = Store.open(copy_workspace(request.getfixturevalue("session_workspace"), folder / "workspace"))
    task = load_task("wordproblems", store)
    example = task.examples("train", 1)[0]
    namespace.update(store=store, task=task, example=example, prompt=task.template().render(example.input),
                     PAPER_DATA=PAPER_DATA)
    yield
    store.close()


# -- the process environment a test leaves behind ----------------------------------------------------------------
# An entry point run in this process (the CLI's main with --online, a job run in place, the app) sets the hub's
# variables for its process, as it must; in a test session that process is everyone's. Each test starts with the
# values the one before it started with, and the tests that changed them are named at the end of the run.
HUB_AND_OPT_IN = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "WORKBENCH_ONLINE",
                  "WORKBENCH_MODELS")
_CHANGED_ENV: list[str] = []


@pytest.fixture(autouse=True)
def _hub_environment(request):
    before = {key: os.environ.get(key) for key in HUB_AND_OPT_IN}
    yield
    after = {key: os.environ.get(key) for key in HUB_AND_OPT_IN}
    if after != before:
        _CHANGED_ENV.append(f"{request.node.nodeid}: " + ", ".join(
            f"{k} {before[k]!r} -> {after[k]!r}" for k in HUB_AND_OPT_IN if before[k] != after[k]))
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pytest_terminal_summary(terminalreporter):
    if _CHANGED_ENV:
        terminalreporter.write_line("tests that changed the hub's environment (restored after each):")
        for line in _CHANGED_ENV:
            terminalreporter.write_line(f"  {line}")


# `make test` runs the suite in two passes: everything else on two workers (one torch thread each: most tests wait
# on a subprocess, a server or a job, so two at a time fill the two cores), then these files alone, because each
# promises a time that another worker on the same cores would eat into (a cancel within 10 s, a SIGTERM within 5 s,
# an ETA on screen while a batch runs) or starts processes of its own on both cores (torchrun). A plain `pytest`
# runs everything in one pass.
SERIAL_FILES = {"test_browser.py", "test_browser_sweeps.py", "test_phases_queue.py", "test_generation_progress.py",
                "test_serving_limits.py", "test_distributed.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
