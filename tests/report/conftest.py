"""Shared by the run-folder tests: tiny notebooks for the real runner (papermill, a kernel)."""
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook


def write_notebook(path, params: str, body: str):
    """A notebook with a ``parameters`` cell ``params`` and one code cell ``body``."""
    cell = new_code_cell(params, metadata={"tags": ["parameters"]})
    nbformat.write(new_notebook(cells=[cell, new_code_cell(body)], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), path)


@pytest.fixture
def notebook():
    return write_notebook
