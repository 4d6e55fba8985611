from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from hccomics.errors import RunDirError
from hccomics.io import RunDir, atomic_path


def test_round_trips(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    df = pd.DataFrame({"lfc": [1.5, -0.2]}, index=["IL6", "IL7"])
    arr = np.arange(6.0).reshape(2, 3)
    adata = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    run.save("01_x", "table", df)
    run.save("01_x", "array", arr)
    run.save("01_x", "adata", adata)
    run.save("01_x", "params", {"alpha": 0.05, "genes": np.array(["IL6"])})
    pd.testing.assert_frame_equal(run.load("01_x", "table"), df)
    np.testing.assert_array_equal(run.load("01_x", "array"), arr)
    assert run.load("01_x", "adata").shape == (3, 2)
    assert run.load("01_x", "params") == {"alpha": 0.05, "genes": ["IL6"]}


def test_torch_state_dict(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(3, 2)
    run = RunDir(tmp_path)
    path = run.save("08_graph", "weights", model.state_dict())
    assert path.suffix == ".pt"
    loaded = run.load("08_graph", "weights")
    assert torch.equal(loaded["weight"], model.state_dict()["weight"])


def test_figure_uses_shared_plotlyjs(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    path = run.save("00_x", "fig", go.Figure(go.Bar(x=[1], y=[2])))
    html = path.read_text()
    assert 'src="../../plotly.min.js"' in html
    assert "cdn." not in html.lower()  # nothing fetched from the network
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


def test_missing_and_bad(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with pytest.raises(RunDirError, match="run the notebook that writes it"):
        run.load("01_x", "nothing")
    with pytest.raises(RunDirError, match="cannot save an object of type set"):
        run.save("01_x", "s", {1, 2})


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
