"""The notebooks run top to bottom in fast mode, embed nothing from the network, and are committed without outputs.

    .venv/bin/python -m pytest tests/test_notebooks.py                 # all four executed (a few minutes)
    .venv/bin/python -m pytest tests/test_notebooks.py -m "not slow"   # only the committed-without-outputs check

The notebooks run in a copy of ``notebooks/`` under a temporary folder, with ``TMPDIR`` pointing there too, so
neither the notebooks nor their workspaces write anything into the repository; they share one kernel (its imports),
each starting from an empty namespace.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER_DATA = ROOT.parent / "shared" / "paper-data"  # as conftest's paper_data; 03 reads it
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300
# A figure renderer that loads plotly.js or MathJax from a CDN would show nothing offline.
REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']?(https?:)?//", re.I)


def test_the_four_walkthroughs_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_data_efficiency.ipynb",
                                           "03_paper_data.ipynb", "04_bring_your_teacher.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(nb.cells):
        assert cell.source.strip(), f"cell {i} is empty"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"cell {i} has outputs: clear them before committing (Edit > Clear Outputs of All Cells)")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One kernel for the four notebooks: starting one and importing torch, transformers and the workbench costs
    seconds each time. Each notebook still starts from an empty namespace (``%reset -f``), so one that forgets an
    import fails; only imported modules are shared."""
    from nbclient import NotebookClient

    root = tmp_path_factory.mktemp("notebooks")
    work = root / "notebooks"
    shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns("workspace", ".ipynb_checkpoints"))
    starter = NotebookClient(nbformat.v4.new_notebook(), timeout=CELL_TIMEOUT, kernel_name="python3",
                             resources={"metadata": {"path": str(work)}})
    # The kernel inherits this environment: fast sizes, offline, temporary files under the test's folder.
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"WORKBENCH_FAST": "1", "TMPDIR": str(root), "WORKBENCH_PAPER_DATA": str(PAPER_DATA),
                           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}.items():
            env.setenv(key, value)
        # "python3" is ipykernel's own kernel; jupyter_client starts it with this interpreter (the venv's python).
        starter.km = starter.create_kernel_manager()
        starter.start_new_kernel(cwd=str(work))
    starter.start_new_kernel_client()
    try:
        yield starter.km, work
    finally:
        starter._cleanup_kernel()


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_fast_mode(path, kernel):
    from nbclient import NotebookClient

    km, work = kernel
    nb = nbformat.read(work / path.name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # nothing left from the notebook before
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    try:
        client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    finally:
        if client.kc is not None:
            client.kc.stop_channels()

    for i, cell in enumerate(nb.cells[1:]):  # numbered as in the notebook
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
            for data in out.get("data", {}).values():
                assert not REMOTE_SCRIPT.search(str(data)), f"cell {i} loads a script from the network"
