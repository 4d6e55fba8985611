"""``report.html``: one offline page that links each executed notebook and embeds its figures and tables."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from hccomics.io.files import atomic_write_text

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f4f4f4}.ok{color:#1a7f37}.failed{color:#cf222e}.meta td{text-align:left}
iframe{width:100%;height:510px;border:none;overflow:hidden}details{margin:.5em 0}code{background:#f4f4f4;padding:0 .2em}
"""
_MAX_ROWS = 15


def _table_html(path: Path, link: str) -> str:
    df = pd.read_csv(path, index_col=0)
    shown = f"{len(df)} rows; first {_MAX_ROWS} shown. " if len(df) > _MAX_ROWS else ""
    note = f"<p><small>{shown}<a href='{html.escape(link)}'>CSV</a></small></p>"
    return df.head(_MAX_ROWS).to_html(float_format=lambda v: f"{v:.4g}", na_rep="NA", border=0) + note


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` from ``run.json`` and the step folders; return its path."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        from hccomics.errors import RunDirError

        raise RunDirError(f"{run_dir} holds no run.json; pass a folder written by 'hccomics run' or 'hccomics demo'")
    record = json.loads((run_dir / "run.json").read_text())
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>hccomics report</title><style>{_STYLE}</style></head><body>",
             "<h1>hccomics run report</h1>"]
    git = record.get("git", {})
    meta = {
        "manifest": record.get("manifest"), "profile": record.get("profile"), "seed": record.get("seed"),
        "device": record.get("device"), "hccomics": record.get("versions", {}).get("hccomics"),
        "git commit": f"{git.get('commit')}{' (uncommitted changes)' if git.get('dirty') else ''}",
        "started": record.get("started"), "finished": record.get("finished"),
    }
    parts.append("<table class='meta'>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in meta.items()) + "</table>")
    rows = []
    for name, info in record.get("notebooks", {}).items():
        status = info.get("status", "?")
        link = f"{name}/{name}.html"
        rows.append(f"<tr><td style='text-align:left'><a href='#{esc(name)}'>{esc(name)}</a></td>"
                    f"<td class='{esc(status)}'>{esc(status)}{' (reused)' if info.get('skipped') else ''}</td>"
                    f"<td>{info.get('seconds', '')}</td><td><a href='{esc(link)}'>notebook</a></td></tr>")
    parts.append("<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>seconds</th><th></th></tr>"
                 + "".join(rows) + f"</table><p>Total compute: {record.get('total_seconds')} s.</p>")
    for name, info in record.get("notebooks", {}).items():
        step = run_dir / name
        parts.append(f"<h2 id='{esc(name)}'>{esc(name)}</h2>")
        if info.get("status") == "failed":
            parts.append(f"<p class='failed'>Failed in cell {info.get('cell')}: <code>{esc(str(info.get('error')))}</code></p>")
        for fig in sorted((step / "figures").glob("*.html")):
            rel = fig.relative_to(run_dir).as_posix()
            parts.append(f"<h3>{esc(fig.stem)}</h3><iframe src='{esc(rel)}' title='{esc(fig.stem)}' loading='lazy' scrolling='no'></iframe>")
        for tab in sorted((step / "tables").glob("*.csv")):
            rel = tab.relative_to(run_dir).as_posix()
            parts.append(f"<details><summary>table: {esc(tab.stem)}</summary>{_table_html(tab, rel)}</details>")
    versions = record.get("versions", {})
    parts.append("<h2>Versions</h2><table class='meta'>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in versions.items()) + "</table>")
    parts.append("</body></html>")
    out = run_dir / "report.html"
    atomic_write_text(out, "\n".join(parts))
    return out
