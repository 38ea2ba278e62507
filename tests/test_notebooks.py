"""Every notebook in notebooks/ runs top to bottom on the sample city, in this interpreter.

Why: planners rerun these notebooks on their own data; one that broke when ``layers``
changed would only be found by them. The kernel is this test's own Python (a kernelspec
written to a temporary folder), never whatever ``python3`` kernel a machine happens to
have registered, so a fresh ``pip install -e .[test]`` needs no ``ipykernel install``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from layers.sample import build_sample

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "gis-test-python"
TIMEOUT = 180  # seconds per cell


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec that starts ``sys.executable``: the virtualenv running the tests."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec = kernels / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gis_service tests",
        "language": "python",
    }), encoding="utf-8")
    return kernels


def run(nb: nbformat.NotebookNode, kernel_dir: Path, tmp_path: Path) -> nbformat.NotebookNode:
    """Execute a notebook from notebooks/ on the sample, with a throw-away GIS_DATABASE."""
    km = AsyncKernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    )
    env = {
        **os.environ,
        "GIS_NOTEBOOK_SAMPLE": "1",
        "GIS_DATABASE": str(tmp_path / "notebook.sqlite"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    client = NotebookClient(
        nb, km=km, timeout=TIMEOUT, resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    return client.execute(cleanup_kc=True, env=env)


def output_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_there_are_notebooks() -> None:
    assert any(p.name == "ward_priorities.ipynb" for p in NOTEBOOKS)


def test_kernel_is_this_interpreter(kernel_dir: Path, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")]
    )
    out = run(nb, kernel_dir, tmp_path)
    assert output_text(out.cells[0]).strip() == sys.executable


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_the_sample(path: Path, kernel_dir: Path, tmp_path: Path) -> None:
    nb = run(nbformat.read(path, as_version=4), kernel_dir, tmp_path)  # raises on any error
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert not (tmp_path / "notebook.sqlite").exists()  # the sample went to a temporary store
    summaries = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    if path.name == "ward_priorities.ipynb":
        assert len(summaries) == 1
    names = [props["name"] for _, props in build_sample()["wards"]]
    assert len(names) == 8
    for cell in summaries:
        text = output_text(cell)
        missing = [name for name in names if name not in text]
        assert not missing, f"summary output lacks {missing}"
