"""The HCC-TACE-Seg clinical spreadsheet: time to progression and overall survival per patient."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.io.public._common import DAYS_PER_MONTH, listing

logger = logging.getLogger("hccomics.io.public.tcia_hcc_tace_seg")

TimeUnit = Literal["weeks", "days", "months"]
TIME_UNITS: dict[str, float] = {"days": 1 / DAYS_PER_MONTH, "weeks": 7 / DAYS_PER_MONTH, "months": 1.0}
"""Factor from the spreadsheet's time unit to months (a month is 365.25 / 12 days)."""

CLINICAL_COLUMNS: dict[str, str] = {
    "id": "TCIA_ID",
    "ttp_time": "TTP",
    "ttp_event": "Censored_0_progressed_1",
    "os_time": "OS",
    "os_event": "Death_1_StillAliveorLostToFU_0",
}
"""Columns of ``HCC-TACE-Seg_clinical_data-V2.xlsx`` used, by role; override any with ``clinical_columns=``.

``TTP`` is the time to progression and ``Censored_0_progressed_1`` its event (1 = progressed);
``OS`` is overall survival and ``Death_1_StillAliveorLostToFU_0`` its event (1 = died).
"""

SURVIVAL_OUT = {"ttp": ("ttp_time_months", "ttp_event"), "os": ("os_time_months", "os_event")}


def read_tace_clinical(path: Path, *, columns: Mapping[str, str] | None = None, time_unit: TimeUnit = "weeks",
                       drop_incomplete: bool = False) -> pd.DataFrame:
    """Read the clinical sheet (.xlsx or .csv) into ``patient_id`` + survival columns in months.

    Times must be positive numbers and events 0 or 1 for every patient; rows that break this
    are an error naming them, or, with ``drop_incomplete=True``, left out with a warning.
    """
    check_option("time_unit", time_unit, tuple(TIME_UNITS))
    cols = {**CLINICAL_COLUMNS, **(columns or {})}
    unknown = sorted(set(cols) - set(CLINICAL_COLUMNS))
    if unknown:
        raise DataValidationError(f"clinical_columns has unknown roles {unknown}; the roles are {sorted(CLINICAL_COLUMNS)}")
    try:
        raw = pd.read_excel(path) if path.suffix.lower() in (".xlsx", ".xls") else pd.read_csv(path)
    except (ValueError, OSError, ImportError) as exc:
        raise DataValidationError(f"{path} could not be read as a spreadsheet ({type(exc).__name__}: {exc}); "
                                  "pass the collection's clinical .xlsx or a .csv export of it") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [f"{role} -> '{name}'" for role, name in cols.items() if name not in raw.columns]
    if missing:
        raise DataValidationError(
            f"{path}: clinical columns not found: {', '.join(missing)} (columns present: {listing(raw.columns, limit=12)}). "
            "Pass clinical_columns={role: column name} for the sheet you have"
        )
    ids = raw[cols["id"]].astype("string").str.strip()
    table = pd.DataFrame({"patient_id": ids})
    problems: dict[str, list[str]] = {}
    bad_rows = np.zeros(len(raw), dtype=bool)
    for endpoint, (time_col, event_col) in SURVIVAL_OUT.items():
        time = pd.to_numeric(raw[cols[f"{endpoint}_time"]], errors="coerce")
        event = pd.to_numeric(raw[cols[f"{endpoint}_event"]], errors="coerce")
        bad_time = ~(time > 0)  # NaN, zero or negative
        bad_event = ~event.isin([0, 1])
        for mask, what in ((bad_time, f"{cols[f'{endpoint}_time']} missing or not positive"),
                           (bad_event, f"{cols[f'{endpoint}_event']} not 0 or 1")):
            if mask.any():
                problems[what] = ids[mask].fillna("(empty ID)").tolist()
        bad_rows |= (bad_time | bad_event).to_numpy()
        table[time_col] = (time * TIME_UNITS[time_unit]).round(6)
        table[event_col] = event.astype("Int64")
    no_id = ids.isna() | (ids == "")
    dup = ids.duplicated(keep=False) & ~no_id
    if no_id.any() or dup.any():
        raise DataValidationError(
            f"{path}: every row needs one unique {cols['id']}; "
            + (f"{int(no_id.sum())} row(s) have none; " if no_id.any() else "")
            + (f"duplicated: {listing(sorted(set(ids[dup])))}" if dup.any() else "")
        )
    if bad_rows.any():
        if not drop_incomplete:
            raise DataValidationError(
                f"{path}: {int(bad_rows.sum())} patient(s) lack a usable survival endpoint; fix the sheet or pass "
                "drop_incomplete=True to leave them out",
                [f"{what}: {listing(who)}" for what, who in problems.items()],
            )
        logger.warning("left out %d patient(s) without a usable survival endpoint: %s", int(bad_rows.sum()),
                       listing(table.loc[bad_rows, "patient_id"]))
        table = table.loc[~bad_rows]
    logger.info("clinical table: %d patients; times converted from %s to months", len(table), time_unit)
    return table.reset_index(drop=True)
