"""The notebook runner: whole suite on the smoke profile, resume, failure handling, run.json, report."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from hccomics.cli import main
from hccomics.errors import NotebookExecutionError
from hccomics.pipeline import run_suite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "smoke"
    assert main(["demo", "--profile", "smoke", "--out", str(out)]) == 0
    return out


def test_whole_suite_on_smoke_profile(smoke_run: Path) -> None:
    record = json.loads((smoke_run / "run.json").read_text())
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert list(record["notebooks"]) == notebooks
    assert all(v["status"] == "ok" and v["seconds"] > 0 for v in record["notebooks"].values())
    for key in ("versions", "git", "inputs", "seed", "device", "profile"):
        assert key in record
    assert record["profile"] == "smoke" and record["versions"]["hccomics"]
    for name in notebooks:
        assert (smoke_run / name / f"{name}.html").exists()
    assert (smoke_run / "00_cohort_overview" / "tables" / "cohort_summary.csv").exists()


def test_report_opens_offline(smoke_run: Path) -> None:
    report = (smoke_run / "report.html").read_text()
    assert "00_cohort_overview/figures/modality_availability.html" in report
    pages = [smoke_run / "report.html", *smoke_run.glob("*/*.html"), *smoke_run.glob("*/figures/*.html")]
    for page in pages:
        text = page.read_text()
        external = re.findall(r"<script[^>]+src=[\"'](https?:)?//", text)
        assert not external, f"{page} loads scripts from the network"
    fig = (smoke_run / "00_cohort_overview" / "figures" / "modality_availability.html").read_text()
    assert 'src="../../plotly.min.js"' in fig and (smoke_run / "plotly.min.js").exists()


def test_resume_skips_unchanged(smoke_run: Path, capsys) -> None:
    stamp = (smoke_run / "00_cohort_overview" / "00_cohort_overview.ipynb").stat().st_mtime_ns
    assert main(["demo", "--profile", "smoke", "--out", str(smoke_run)]) == 0
    record = json.loads((smoke_run / "run.json").read_text())
    assert all(v["skipped"] for v in record["notebooks"].values())
    assert (smoke_run / "00_cohort_overview" / "00_cohort_overview.ipynb").stat().st_mtime_ns == stamp
    # a changed parameter re-runs
    assert main(["demo", "--profile", "smoke", "--out", str(smoke_run), "--only", "00", "-p", "extra=1"]) == 0
    record = json.loads((smoke_run / "run.json").read_text())
    assert not record["notebooks"]["00_cohort_overview"]["skipped"]
    assert record["notebooks"]["00_cohort_overview"]["parameters"]["extra"] == 1


def test_profile_changes_parameters_only(smoke_run: Path) -> None:
    record = json.loads((smoke_run / "run.json").read_text())
    nb09 = record["notebooks"].get("09_survival_prognosis")
    if nb09 is not None:
        assert nb09["parameters"]["n_repeats"] == 1 and nb09["parameters"]["profile"] == "smoke"
    assert "n_repeats" not in record["notebooks"]["00_cohort_overview"]["parameters"]  # not a parameter of 00


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("manifest = None\nrun_dir = '.'\nseed = 0\nprofile = 'demo'\ndevice = 'auto'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_failure_stops_and_resumes(smoke_manifest: Path, tmp_path: Path) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "00_first.ipynb", "open(run_dir + '/first.txt', 'a').write('x')")
    _notebook(nbdir / "01_broken.ipynb", "raise ValueError('planted failure')")
    _notebook(nbdir / "02_after.ipynb", "open(run_dir + '/after.txt', 'w').write('x')")
    out = tmp_path / "run"
    with pytest.raises(NotebookExecutionError, match=r"01_broken failed in code cell 2: ValueError: planted failure\n    \| raise ValueError") as info:
        run_suite(smoke_manifest, out, profile="smoke", notebooks_dir=nbdir, progress=False)
    assert Path(info.value.output).exists()
    assert (out / "first.txt").read_text() == "x" and not (out / "after.txt").exists()
    record = json.loads((out / "run.json").read_text())
    assert record["notebooks"]["00_first"]["status"] == "ok"
    assert record["notebooks"]["01_broken"]["status"] == "failed"
    # fix the notebook and re-run: the finished one is not redone
    _notebook(nbdir / "01_broken.ipynb", "x = 1")
    run_suite(smoke_manifest, out, profile="smoke", notebooks_dir=nbdir, progress=False)
    assert (out / "first.txt").read_text() == "x"
    assert (out / "after.txt").exists()


def test_cli_reports_failure(smoke_manifest: Path, tmp_path: Path, capsys) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "00_broken.ipynb", "1 / 0")
    code = main(["run", str(smoke_manifest), "--out", str(tmp_path / "r"), "--notebooks", str(nbdir), "--profile", "smoke"])
    assert code == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_invalid_manifest_writes_nothing(broken_cohort, tmp_path: Path) -> None:
    manifest = broken_cohort("clinical.csv", lambda df: df.assign(rfs_event=3))
    out = tmp_path / "never"
    assert main(["run", str(manifest), "--out", str(out), "--profile", "smoke"]) == 1
    assert not out.exists()


def test_only_and_bad_only(smoke_manifest: Path, tmp_path: Path) -> None:
    from hccomics.errors import HccomicsError

    with pytest.raises(HccomicsError, match="do not exist"):
        run_suite(smoke_manifest, tmp_path / "r", profile="smoke", only=["42"], progress=False)


def test_notebook_runs_without_parameters(tmp_path: Path) -> None:
    """Opened in JupyterLab with no injected parameters, 00 falls back to the demo cohort."""
    import papermill as pm

    src = ROOT / "notebooks" / "00_cohort_overview.ipynb"
    work = tmp_path / "nb"
    work.mkdir()
    shutil.copy(src, work / src.name)
    pm.execute_notebook(str(work / src.name), str(work / "out.ipynb"), parameters={"profile": "smoke", "run_dir": str(tmp_path / "r")},
                        progress_bar=False, cwd=str(work), kernel_name="python3")
    assert (tmp_path / "r" / "00_cohort_overview" / "tables" / "validation_report.csv").exists()


def test_upstream_rerun_reruns_downstream(smoke_manifest: Path, tmp_path: Path) -> None:
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "00_first.ipynb", "open(run_dir + '/first.txt', 'a').write('x')")
    _notebook(nbdir / "01_second.ipynb", "open(run_dir + '/second.txt', 'a').write('x')")
    out = tmp_path / "run"
    run_suite(smoke_manifest, out, profile="smoke", notebooks_dir=nbdir, progress=False)
    run_suite(smoke_manifest, out, profile="smoke", notebooks_dir=nbdir, progress=False, only=["00"], parameters={"k": 1})
    assert (out / "first.txt").read_text() == "xx"
    # 01 reads what 00 wrote: its inputs changed, so it is not skipped
    run_suite(smoke_manifest, out, profile="smoke", notebooks_dir=nbdir, progress=False, only=["01"])
    assert (out / "second.txt").read_text() == "xx"
    run_suite(smoke_manifest, out, profile="smoke", notebooks_dir=nbdir, progress=False, only=["01"])
    assert (out / "second.txt").read_text() == "xx"  # now unchanged: skipped


def test_report_needs_a_run_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "holds no run.json" in capsys.readouterr().err
