"""Execute the notebooks top to bottom, as a user would."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def execute(name: str, timeout: int = 900):
    path = os.path.join(ROOT, "notebooks", name)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    return notebook


def outputs_text(notebook) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


@pytest.mark.slow
def test_quickstart_notebook_runs():
    notebook = execute("quickstart.ipynb")
    text = outputs_text(notebook)
    assert "specialists; JAT test accuracy" in text
    assert "compact model parameters:" in text
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 3
