"""Helpers that notebooks call: set-up, and showing a figure that is also saved for the report."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from hccomics.io.rundir import RunDir

__all__ = ["setup_notebook", "show_figure", "show_table"]


def setup_notebook(run_dir: str | Path, step: str, *, seed: int = 0) -> RunDir:
    """Seed everything, route logging to the notebook and return the run folder.

    Examples
    --------
    >>> import tempfile
    >>> run = setup_notebook(tempfile.mkdtemp(), "00_cohort_overview")
    >>> run.step_dir("00_cohort_overview").name
    '00_cohort_overview'
    """
    from hccomics.settings import seed_all

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    seed_all(seed)
    run = RunDir(run_dir)
    run.step_dir(step)
    return run


def show_figure(fig: Any, run: RunDir, step: str, name: str, *, height: int = 480) -> None:
    """Save ``fig`` into the run folder and display it.

    JupyterLab renders the interactive figure; the HTML export of an executed notebook
    shows the saved file (which uses the run's one shared ``plotly.min.js``) in a frame,
    so reports open offline without a copy of plotly.js per figure.
    """
    from IPython.display import display

    path = run.save(step, name, fig)
    rel = Path(path).relative_to(run.step_dir(step)).as_posix()
    frame = (f'<iframe src="{html.escape(rel)}" style="width:100%;height:{height + 30}px;border:none;overflow:hidden" scrolling="no" '
             f'title="{html.escape(name)}"></iframe>')
    display({"application/vnd.plotly.v1+json": json.loads(fig.to_json()), "text/html": frame}, raw=True)


def show_table(df: Any, run: RunDir, step: str, name: str, *, max_rows: int = 20) -> None:
    """Save a table into the run folder and display its first rows."""
    from IPython.display import display

    run.save(step, name, df)
    display(df.head(max_rows))
