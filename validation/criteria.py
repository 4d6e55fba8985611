"""One place for turning per-seed measurements into a pass/fail table."""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd

_OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}


def summarise(rows: list[dict], criteria: dict[str, tuple[str, str, float]], *, index: str = "seed") -> pd.DataFrame:
    """Per criterion ``(aggregate, operator, threshold)``: mean, sd, min, max over rows and whether it holds.

    Columns of the rows without a criterion are listed as 'reported'.
    """
    df = pd.DataFrame(rows).set_index(index) if index in pd.DataFrame(rows).columns else pd.DataFrame(rows)
    out = []
    for col in df.columns:
        values = df[col].astype(float)
        if col in criteria:
            agg, op, thr = criteria[col]
            value = float(getattr(values, agg)())
            crit, ok = f"{agg} {op} {thr}", bool(_OPS[op](value, thr))
        else:
            crit, ok = "reported", True
        out.append({"check": col, "mean": values.mean(), "sd": values.std(ddof=1) if len(values) > 1 else np.nan,
                    "min": values.min(), "max": values.max(), "criterion": crit, "ok": ok})
    return pd.DataFrame(out).set_index("check")
