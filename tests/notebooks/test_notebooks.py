"""Every notebook runs top to bottom in smoke mode (KERASGAN_SMOKE=1), offline, in seconds.

Each notebook executes in a fresh kernel whose working directory is a temporary folder, so runs
and exports it writes never land in the repository.
"""

import glob
import json
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def run_notebook(path, workdir, timeout=600):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook


@pytest.fixture
def smoke_env(monkeypatch):
    # The kernel inherits this process's environment.
    monkeypatch.setenv("KERASGAN_SMOKE", "1")
    monkeypatch.setenv("KERASGAN_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_committed_clean(path):
    name = os.path.basename(path)
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", name), "notebooks are named NN_topic.ipynb"
    cells = json.load(open(path))["cells"]
    assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), "strip outputs"
    assert cells[0]["cell_type"] == "markdown" and "learn" in "".join(cells[0]["source"]).lower()
    assert any("KERASGAN_SMOKE" in "".join(c["source"]) for c in cells), "needs a smoke switch"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_imports_kerasgan_before_tensorflow(path):
    """kerasgan imports TensorFlow with its C++ start-up lines (oneDNN, CUDA probing) kept off
    stderr; a kernel that imports TensorFlow or Keras first shows them to the learner, on the
    rendered page too."""
    code = "\n".join(
        "".join(cell["source"]) for cell in json.load(open(path))["cells"]
        if cell["cell_type"] == "code"
    )
    def first_import(modules):
        match = re.search(rf"^\s*(import|from) ({modules})\b", code, re.MULTILINE)
        return match.start() if match else len(code)

    assert first_import("kerasgan") < first_import("tensorflow|keras"), "import kerasgan first"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_in_smoke_mode(path, tmp_path, smoke_env):
    run_notebook(path, tmp_path)
