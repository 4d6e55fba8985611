"""One row per patient from the GDC clinical download (``clinical.tsv`` and ``follow_up.tsv``).

The GDC writes one row per case *and* per diagnosis / treatment in ``clinical.tsv`` and one
row per follow-up visit in ``follow_up.tsv``, with ``'--`` for a missing value. Two header
styles exist: the legacy portal's bare names (``case_submitter_id``, ``age_at_index``,
``days_to_last_follow_up``) and the 2024 portal's entity-prefixed names
(``cases.submitter_id``, ``demographic.age_at_index``, ``diagnoses.days_to_last_follow_up``,
``follow_ups.days_to_follow_up``); both are read.

Endpoints (times in months = days / 30.4375):

* **OS**: event = vital status ``Dead`` (or a recorded ``days_to_death``); time =
  ``days_to_death`` for the dead, else the last contact, the largest of
  ``days_to_last_follow_up`` and every ``days_to_follow_up``.
* **RFS** (recurrence-free survival, the usual definition): event = recurrence *or* death from
  any cause, whichever comes first. The recurrence time is the earliest ``days_to_recurrence`` or
  ``days_to_progression`` in either file; a follow-up row that says
  ``progression_or_recurrence = Yes`` without a time contributes its ``days_to_follow_up`` (the visit
  that recorded it, an upper bound). A patient who died without recurrence has an RFS event at
  death; a patient alive without recurrence is censored at the last contact.
* **recurrence_2y** (the demo cohort's rule): 1 if an RFS event within 24 months, 0 if the RFS time
  exceeds 24 months, empty if censored earlier.

An event on day 0 is set to half a day (validation refuses zero times); a patient whose OS or
RFS cannot be determined (dead without ``days_to_death``, no follow-up time, censored on day 0,
recurrence reported without any time) is left out and counted in the log.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError
from hccomics.io.public._common import DAYS_PER_MONTH, listing

__all__ = ["RECURRENCE_HORIZON_MONTHS", "gdc_patient_table", "read_gdc_tsv"]

logger = logging.getLogger(__name__)

RECURRENCE_HORIZON_MONTHS = 24.0
_MISSING = ["'--", "--", "Not Reported", "not reported", "Unknown", "unknown", "Not Applicable", "not applicable",
            "Not Allowed To Collect", "not allowed to collect"]
_CASE_COLUMNS = ("case_submitter_id", "cases.submitter_id")
_EVENT_ON_DAY_ZERO = 0.5  # days


def read_gdc_tsv(path: Path) -> pd.DataFrame:
    """Read a GDC clinical TSV as strings, with ``'--`` and 'Not Reported' as missing values."""
    # QUOTE_NONE: GDC TSVs are not quoted, and free-text fields may hold a stray double quote
    return pd.read_csv(path, sep="\t", dtype=str, na_values=_MISSING, quoting=csv.QUOTE_NONE)


def _column(df: pd.DataFrame, field: str) -> str | None:
    """Return the column holding ``field``: bare (legacy portal) or entity-prefixed (``demographic.field``)."""
    if field in df.columns:
        return field
    prefixed = [c for c in df.columns if c.endswith("." + field)]
    return prefixed[0] if prefixed else None


def _case_column(df: pd.DataFrame, path: Path) -> str:
    for name in _CASE_COLUMNS:
        if name in df.columns:
            return name
    raise DataValidationError(
        f"{path}: no case barcode column (expected one of {', '.join(_CASE_COLUMNS)}; found {listing(df.columns, limit=8)}); "
        "download the clinical data of the cohort from the GDC portal (Cohort Builder > Clinical > TSV)"
    )


def _numbers(df: pd.DataFrame, field: str) -> pd.Series:
    col = _column(df, field)
    if col is None:
        return pd.Series(np.nan, index=df.index)
    values = pd.to_numeric(df[col], errors="coerce")
    return values.where(values >= 0)  # negative day counts are entry errors, not times


def _texts(df: pd.DataFrame, *fields: str) -> pd.Series:
    for field in fields:
        col = _column(df, field)
        if col is not None:
            return df[col].str.strip().str.lower()
    return pd.Series(pd.NA, index=df.index, dtype="object")


def _first(values: pd.Series, patients: pd.Series) -> pd.Series:
    return values.groupby(patients.to_numpy()).first()


def _primary_first(df: pd.DataFrame) -> pd.DataFrame:
    """Order rows so that a case's primary diagnosis comes before later ones (second cancers)."""
    flag = _texts(df, "classification_of_tumor")
    primary = flag.eq("primary")
    if not primary.any():
        primary = _texts(df, "diagnosis_is_primary_disease").eq("true")
    order = np.argsort(~primary.fillna(False).to_numpy(dtype=bool), kind="stable")
    return df.iloc[order]


def _stage(text: pd.Series) -> pd.Series:
    # 'Stage IIIA' -> 'IIIA'
    return text.str.replace(r"^stage\s*", "", regex=True, flags=re.IGNORECASE).str.upper()


def _grade(text: pd.Series) -> pd.Series:
    # 'G1'..'G4' -> 1..4; 'GX' (cannot be assessed) stays empty
    number = text.str.extract(r"^g([1-4])$", flags=re.IGNORECASE, expand=False)
    return pd.to_numeric(number).astype("Int64")


def _months(days: pd.Series) -> pd.Series:
    return (days / DAYS_PER_MONTH).round(3)


def gdc_patient_table(clinical_path: Path, follow_up_path: Path | None) -> tuple[pd.DataFrame, list[str]]:
    """Build the patient table of a GDC clinical download.

    Parameters
    ----------
    clinical_path
        ``clinical.tsv`` (one or more rows per case).
    follow_up_path
        ``follow_up.tsv`` (one row per follow-up), or None when the download has none.

    Returns
    -------
    table
        Indexed by ``patient_id`` (the case barcode): ``age``, ``sex``, ``stage``, ``grade``,
        ``os_time_months``, ``os_event``, ``rfs_time_months``, ``rfs_event``, ``recurrence_2y``.
    dropped
        Patients left out because an endpoint could not be determined.
    """
    clin = read_gdc_tsv(clinical_path)
    clin_case = _case_column(clin, clinical_path)
    clin = clin[clin[clin_case].notna()]
    clin = _primary_first(clin)
    pid = clin[clin_case].str.strip()
    patients = pd.Index(sorted(pid.unique()), name="patient_id")

    # age_at_index in years; else age_at_diagnosis or -days_to_birth, both in days
    birth_col = _column(clin, "days_to_birth")
    birth = -pd.to_numeric(clin[birth_col], errors="coerce") if birth_col else pd.Series(np.nan, index=clin.index)
    age = _first(_numbers(clin, "age_at_index"), pid)
    for days in (_numbers(clin, "age_at_diagnosis"), birth.where(birth >= 0)):
        age = age.fillna(np.floor(_first(days, pid) / 365.25))
    age = age.reindex(patients)
    sex = _first(_texts(clin, "gender", "sex_at_birth").map({"male": "M", "female": "F"}), pid).reindex(patients)
    stage = _first(_stage(_texts(clin, "ajcc_pathologic_stage")), pid).reindex(patients)
    grade = _grade(_first(_texts(clin, "tumor_grade"), pid).reindex(patients))

    # every time-bearing row, from both files: (patient, last contact, recurrence, recurrence flag)
    frames = [(pid, clin)]
    if follow_up_path is not None:
        fu = read_gdc_tsv(follow_up_path)
        fu_case = _case_column(fu, follow_up_path)
        fu = fu[fu[fu_case].notna()]
        frames.append((fu[fu_case].str.strip(), fu))
    contact, recurrence, flagged = [], [], []
    for ids, df in frames:
        visit = pd.concat([_numbers(df, "days_to_last_follow_up"), _numbers(df, "days_to_follow_up")], axis=1).max(axis=1)
        rec = pd.concat([_numbers(df, "days_to_recurrence"), _numbers(df, "days_to_progression")], axis=1).min(axis=1)
        yes = _texts(df, "progression_or_recurrence").eq("yes").fillna(False).astype(bool)
        # a recurrence reported at a follow-up visit without its own date is dated by that visit
        # (an upper bound); a diagnosis row has no visit date, so its flag alone dates nothing
        rec = rec.where(rec.notna() | ~yes, _numbers(df, "days_to_follow_up"))
        contact.append(pd.Series(visit.to_numpy(), index=ids.to_numpy()))
        recurrence.append(pd.Series(rec.to_numpy(), index=ids.to_numpy()))
        flagged.append(pd.Series(yes.to_numpy(), index=ids.to_numpy()))
    last_contact = pd.concat(contact).groupby(level=0).max().reindex(patients)
    rec_days = pd.concat(recurrence).groupby(level=0).min().reindex(patients)
    any_flag = pd.concat(flagged).groupby(level=0).any().reindex(patients, fill_value=False)

    death_days = _numbers(clin, "days_to_death").groupby(pid.to_numpy()).max().reindex(patients)
    dead = (_texts(clin, "vital_status").eq("dead").fillna(False).astype(bool).groupby(pid.to_numpy()).any()
            .reindex(patients, fill_value=False)) | death_days.notna()
    last_contact = pd.concat([last_contact, death_days], axis=1).max(axis=1)

    os_days = death_days.where(dead, last_contact)
    os_event = dead.astype(int)
    rfs_days = pd.concat([rec_days, death_days.where(dead)], axis=1).min(axis=1)
    rfs_event = rfs_days.notna().astype(int)
    rfs_days = rfs_days.fillna(last_contact)

    unusable = pd.Series(False, index=patients)
    reasons: dict[str, list[str]] = {}
    for name, days, event in (("OS", os_days, os_event), ("RFS", rfs_days, rfs_event)):
        bad = days.isna() | ((days == 0) & (event == 0))
        if name == "RFS":
            bad |= any_flag & rec_days.isna()
        for p in patients[bad & ~unusable]:
            reasons.setdefault(p, []).append(name)
        unusable |= bad
    dropped = sorted(reasons)
    if dropped:
        logger.warning(
            "left out %d patient(s) whose OS or RFS cannot be determined from the GDC clinical files "
            "(dead without days_to_death, no follow-up time, censored on day 0, or recurrence without a time): %s",
            len(dropped), listing(f"{p} ({'/'.join(reasons[p])})" for p in dropped),
        )
    os_days = os_days.mask((os_days == 0) & (os_event == 1), _EVENT_ON_DAY_ZERO)
    rfs_days = rfs_days.mask((rfs_days == 0) & (rfs_event == 1), _EVENT_ON_DAY_ZERO)

    table = pd.DataFrame(
        {
            "age": age.round().astype("Int64"),
            "sex": sex,
            "stage": stage,
            "grade": grade,
            "os_time_months": _months(os_days),
            "os_event": os_event,
            "rfs_time_months": _months(rfs_days),
            "rfs_event": rfs_event,
        },
        index=patients,
    )
    table = table.loc[~unusable]
    # computed from the rounded times users read in the CSV, so that the two always agree
    rec2y = pd.Series(pd.NA, index=table.index, dtype="Int64")
    rec2y[(table["rfs_event"] == 1) & (table["rfs_time_months"] <= RECURRENCE_HORIZON_MONTHS)] = 1
    rec2y[table["rfs_time_months"] > RECURRENCE_HORIZON_MONTHS] = 0
    table["recurrence_2y"] = rec2y
    logger.info("clinical: %d patients (%d deaths, %d RFS events, %d with a recurrence time)",
                len(table), int(table["os_event"].sum()), int(table["rfs_event"].sum()),
                int(rec_days.reindex(table.index).notna().sum()))
    return table, dropped
