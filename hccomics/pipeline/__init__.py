"""Notebook runner (papermill), run records and the offline HTML report."""

from hccomics.pipeline.notebook import setup_notebook, show_figure, show_table
from hccomics.pipeline.report import write_report
from hccomics.pipeline.runner import NotebookStep, discover_notebooks, parse_parameters, run_suite

__all__ = [
    "run_suite", "discover_notebooks", "parse_parameters", "NotebookStep", "write_report",
    "setup_notebook", "show_figure", "show_table",
]
