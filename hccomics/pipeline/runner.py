"""Run the notebook suite with papermill: parameters, resume, run.json, report."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hccomics._options import check_option
from hccomics.errors import HccomicsError, NotebookExecutionError
from hccomics.io.files import atomic_write_text, sha256sum
from hccomics.io.validate import validate_manifest
from hccomics.pipeline.profiles import notebook_parameters
from hccomics.pipeline.provenance import git_state, package_versions, step_hash
from hccomics.settings import PROFILES

__all__ = ["NotebookStep", "discover_notebooks", "parse_parameters", "run_suite", "default_notebooks_dir"]

logger = logging.getLogger(__name__)
NOTEBOOKS_ENV = "HCCOMICS_NOTEBOOKS"


@dataclass(frozen=True)
class NotebookStep:
    """One notebook of the suite: ``NN_verb_object.ipynb``."""

    number: str
    name: str
    path: Path


def default_notebooks_dir() -> Path:
    """``$HCCOMICS_NOTEBOOKS``, else ``notebooks/`` beside the package."""
    env = os.environ.get(NOTEBOOKS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"


def discover_notebooks(notebooks_dir: str | Path | None = None, only: list[str] | None = None) -> list[NotebookStep]:
    """List ``NN_*.ipynb`` in order, optionally only the numbers in ``only``."""
    d = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    steps = []
    for p in sorted(d.glob("[0-9][0-9]_*.ipynb")):
        steps.append(NotebookStep(p.name[:2], p.stem, p))
    if not steps:
        raise HccomicsError(f"no notebooks named NN_*.ipynb in {d}; set --notebooks or ${NOTEBOOKS_ENV}")
    if only:
        wanted = {o.zfill(2) for o in only}
        unknown = wanted - {s.number for s in steps}
        if unknown:
            raise HccomicsError(f"--only names notebooks {sorted(unknown)} that do not exist; available: {[s.number for s in steps]}")
        steps = [s for s in steps if s.number in wanted]
    return steps


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["epochs=3", "device=cpu"]`` into ``{"epochs": 3, "device": "cpu"}`` (JSON values where they parse)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise HccomicsError(f"parameter {pair!r} must look like key=value")
        k, v = pair.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


def _failure(nb_path: Path) -> tuple[int | None, str]:
    """Number (among the source notebook's code cells) and source of the cell that raised."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or "injected-parameters" in cell.metadata.get("tags", []):
            continue
        code_index += 1
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return code_index, cell.source
    return None, ""


def run_suite(
    manifest: str | Path,
    run_dir: str | Path,
    *,
    profile: str = "demo",
    only: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    notebooks_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Execute the notebooks in order and write ``run.json`` and ``report.html``.

    A notebook is skipped when the hash of its file, parameters, input checksums,
    package version and git state equals the one recorded by its last successful run.
    A failing notebook stops the run with :class:`NotebookExecutionError`; the
    notebooks before it keep their results.

    Returns
    -------
    Path
        ``RUN_DIR/report.html``.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    from hccomics.pipeline.report import write_report
    from hccomics.settings import resolve_device

    check_option("profile", profile, PROFILES)
    manifest = Path(manifest).resolve()
    report = validate_manifest(manifest)
    report.raise_if_errors()  # before anything is written
    steps = discover_notebooks(notebooks_dir, only)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    run_json = run_dir / "run.json"
    previous = json.loads(run_json.read_text()) if run_json.exists() else {}
    record: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "manifest": str(manifest),
        "profile": profile,
        "seed": seed,
        "device": resolve_device(device),
        "versions": package_versions(),
        "git": git_state(),
        "inputs": {"manifest.yaml": report.checksums | {"__manifest__": sha256sum(manifest)}},
        "notebooks": dict(previous.get("notebooks", {})),
    }
    base_params = {"manifest": str(manifest), "run_dir": str(run_dir), "profile": profile, "seed": seed, "device": device}
    bar = tqdm(steps, desc="notebooks", unit="nb", disable=not progress)
    for step in bar:
        bar.set_postfix_str(step.name)
        params = notebook_parameters(step.path, profile, base_params, parameters or {})
        upstream = [v.get("hash", "") for k, v in sorted(record["notebooks"].items()) if k[:2] < step.number]
        h = step_hash(step.path, params, record["inputs"], record["versions"], record["git"], upstream)
        out_nb = run_dir / step.name / f"{step.name}.ipynb"
        prev = record["notebooks"].get(step.name, {})
        if not force and prev.get("status") == "ok" and prev.get("hash") == h and out_nb.exists():
            logger.info("%s unchanged since its last run; skipped", step.name)
            record["notebooks"][step.name] = {**prev, "skipped": True}
            continue
        out_nb.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(step.path), str(out_nb), parameters=params, progress_bar=False,
                                cwd=str(out_nb.parent), kernel_name="python3")
        except pm.PapermillExecutionError as exc:
            cell, source = _failure(out_nb)
            record["notebooks"][step.name] = {"status": "failed", "seconds": round(time.perf_counter() - t0, 2),
                                              "cell": cell, "error": f"{exc.ename}: {exc.evalue}"}
            _finish(record, run_json, run_dir)
            raise NotebookExecutionError(step.name, cell, exc.ename, exc.evalue, str(out_nb), source) from None
        seconds = round(time.perf_counter() - t0, 2)
        _export_html(out_nb)
        record["notebooks"][step.name] = {"status": "ok", "seconds": seconds, "hash": h, "skipped": False,
                                          "parameters": params}
        _finish(record, run_json, run_dir)
    bar.close()
    _finish(record, run_json, run_dir)
    return write_report(run_dir)


def _export_html(nb_path: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    # no CDN scripts: the page must open offline, and executed notebooks need neither
    exporter = HTMLExporter(template_name="lab", require_js_url="", mathjax_url="")
    body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4))
    body = body.replace('<script src=""></script>', "")
    out = nb_path.with_suffix(".html")
    atomic_write_text(out, body)
    return out


def _finish(record: dict[str, Any], run_json: Path, run_dir: Path) -> None:
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record["total_seconds"] = round(sum(v.get("seconds", 0) for v in record["notebooks"].values() if not v.get("skipped")), 2)
    atomic_write_text(run_json, json.dumps(record, indent=2, default=str))
