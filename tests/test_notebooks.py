"""The notebooks run top to bottom in fast mode, embed nothing from the network, and are committed without outputs.

    .venv/bin/python -m pytest tests/test_notebooks.py                 # all four executed (a few minutes)
    .venv/bin/python -m pytest tests/test_notebooks.py -m "not slow"   # only the committed-without-outputs check

Each notebook runs in a copy of ``notebooks/`` under a temporary folder, with ``TMPDIR`` pointing there too, so
neither the notebooks nor their workspaces write anything into the repository.
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


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_fast_mode(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns("workspace", ".ipynb_checkpoints"))
    # The kernel inherits this environment: fast sizes, offline, temporary files under tmp_path.
    for key, value in {"WORKBENCH_FAST": "1", "TMPDIR": str(tmp_path), "WORKBENCH_PAPER_DATA": str(PAPER_DATA),
                       "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(work / path.name, as_version=4)
    # "python3" is ipykernel's own kernel; jupyter_client starts it with this interpreter (the venv's python).
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails

    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
            for data in out.get("data", {}).values():
                assert not REMOTE_SCRIPT.search(str(data)), f"cell {i} loads a script from the network"
    if path.stem == "02_data_efficiency":  # the reading is the library's computed verdict, not prose
        shown = " ".join(str(d) for c in nb.cells for o in c.get("outputs", []) for d in o.get("data", {}).values())
        assert re.search(r"(beats standard|beats dss|no difference shown) at (25|100)% of the rows", shown), shown[:500]
