"""Clinical table of the demo cohort: latent PI3K-Akt activity, staging, treatment and survival.

One latent PI3K-Akt activity per patient drives the planted genes (see
:mod:`hccomics.datasets.demo_expression`), MVI, grade and the recurrence hazard, so
that every modality carries part of the prognosis and no plant contradicts another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["HazardModel", "simulate_clinical"]

BCLC_STAGES = ("0", "A", "B", "C", "D")
TREATMENTS = ("resection", "TACE", "ablation", "transplant")
AETIOLOGIES = ("HBV", "HCV", "alcohol", "MASLD")
RECURRENCE_HORIZON_MONTHS = 24.0
DEATH_SCALE_MONTHS = 300.0
MIN_TIME_MONTHS = 0.1  # events are first seen at a visit: no follow-up time rounds to zero
# local tumour progression after ablation: exponential hazard per month falling with the minimal
# ablative margin (MAM), LTP_RATE at a 2 mm margin and exp(-LTP_SLOPE) per extra mm
LTP_RATE_PER_MONTH = 0.01
LTP_SLOPE_PER_MM = 0.5
MAM_MEAN_SD_MM = (4.0, 3.0)
MAM_RANGE_MM = (-3.0, 12.0)


@dataclass(frozen=True)
class HazardModel:
    """Weibull proportional-hazards model of recurrence (time in months).

    ``h(t) = shape / scale * (t / scale) ** (shape - 1) * exp(lp)`` with
    ``lp = activity * a + mvi * MVI + log2_size * log2(diameter / 22 mm)
    + bclc * stage index + grade * (grade - 2) + treatment effect``.
    """

    shape: float = 0.9
    scale_months: float = 150.0
    activity: float = 0.8
    mvi: float = 0.6
    log2_size: float = 0.35
    bclc: float = 0.3
    grade: float = 0.25
    treatment: tuple[tuple[str, float], ...] = (("resection", 0.0), ("TACE", 0.5), ("ablation", 0.2), ("transplant", -0.6))

    def null(self) -> HazardModel:
        """The same baseline hazard with every covariate effect set to zero."""
        return HazardModel(self.shape, self.scale_months, 0.0, 0.0, 0.0, 0.0, 0.0, tuple((t, 0.0) for t, _ in self.treatment))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["treatment"] = dict(self.treatment)
        return d


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _weibull_times(rng: np.random.Generator, lp: np.ndarray, shape: float, scale: float) -> np.ndarray:
    # inverse transform of S(t) = exp(-(t/scale)^shape * exp(lp))
    u = rng.uniform(size=lp.shape)
    return scale * (-np.log(u) * np.exp(-lp)) ** (1.0 / shape)


def simulate_clinical(
    n: int, *, rng: np.random.Generator, hazard: HazardModel, null: bool = False,
    rng_ablation: np.random.Generator | None = None,
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Draw the clinical table, the latent activity and the planted clinical effects.

    Ablation patients draw a minimal ablative margin (from ``rng_ablation``, so that the
    other patients' values do not depend on it) and a competing local tumour progression
    whose hazard falls with the margin; the earlier of the two recurrences is the recurrence.
    Their margin is in ``truth['ablation']['minimal_ablative_margin_mm']``.

    Returns
    -------
    clinical
        One row per patient (index ``patient_id``).
    activity
        Latent PI3K-Akt activity, standard normal.
    truth
        Every planted clinical effect with its size.
    """
    ids = [f"HCC-{i:04d}" for i in range(1, n + 1)]
    a = rng.standard_normal(n)
    eff = 0.0 if null else 1.0  # scales every covariate effect that is planted

    age = np.clip(np.round(rng.normal(62, 10, n)), 25, 90).astype(int)
    sex = np.where(rng.uniform(size=n) < 0.78, "M", "F")
    aetiology = rng.choice(AETIOLOGIES, size=n, p=[0.45, 0.2, 0.2, 0.15])
    child_pugh = rng.choice(["A", "B", "C"], size=n, p=[0.7, 0.25, 0.05])
    # about 30% of index lesions under 15 mm (median 22 mm, log-sd 0.75)
    diameter = np.clip(np.exp(rng.normal(np.log(22.0), 0.75, n)), 6.0, 150.0).round(1)
    lesions = np.minimum(1 + rng.poisson(0.4, n), 5)
    z_size = np.log2(diameter / 22.0)
    mvi_logit = -1.0 + eff * (0.7 * a + 0.8 * z_size) + rng.normal(0, 0.5, n)
    mvi = (rng.uniform(size=n) < _logistic(mvi_logit)).astype(int)
    grade_latent = eff * (0.6 * a + 0.3 * z_size) + rng.standard_normal(n)
    cuts = np.quantile(grade_latent, [0.15, 0.55, 0.9])
    grade = 1 + np.searchsorted(cuts, grade_latent)
    afp = np.exp(np.log(20.0) + eff * (0.5 * (grade - 2) + 0.3 * z_size) + rng.normal(0, 1.5, n)).round(1)

    extrahepatic = rng.uniform(size=n) < 0.08
    bclc = np.full(n, "A", dtype=object)
    bclc[(lesions == 1) & (diameter <= 20) & (child_pugh == "A")] = "0"
    bclc[(lesions > 3) | ((lesions > 1) & (diameter > 30))] = "B"
    bclc[extrahepatic] = "C"
    bclc[child_pugh == "C"] = "D"
    stage_index = np.array([BCLC_STAGES.index(s) for s in bclc])

    treat_p = {
        "0": [0.4, 0.0, 0.6, 0.0],
        "A": [0.5, 0.0, 0.2, 0.3],
        "B": [0.15, 0.85, 0.0, 0.0],
        "C": [0.0, 1.0, 0.0, 0.0],
        "D": [0.0, 0.0, 0.0, 1.0],
    }
    treatment = np.array([rng.choice(TREATMENTS, p=treat_p[s]) for s in bclc])
    h = hazard.null() if null else hazard
    t_eff = dict(h.treatment)
    lp = (
        h.activity * a + h.mvi * mvi + h.log2_size * z_size + h.bclc * stage_index
        + h.grade * (grade - 2) + np.array([t_eff[t] for t in treatment])
    )
    t_rec = _weibull_times(rng, lp, h.shape, h.scale_months)
    ablated = treatment == "ablation"
    mam = np.full(n, np.nan)
    t_local = np.full(n, np.inf)
    if rng_ablation is not None and ablated.any():
        mam[ablated] = np.clip(rng_ablation.normal(*MAM_MEAN_SD_MM, ablated.sum()), *MAM_RANGE_MM).round(1)
        rate = LTP_RATE_PER_MONTH * np.exp(-eff * LTP_SLOPE_PER_MM * (mam[ablated] - 2.0))
        t_local[ablated] = rng_ablation.exponential(1.0 / rate)
    local = t_local < t_rec
    t_rec = np.minimum(t_rec, t_local)
    cp_index = np.array(["ABC".index(c) for c in child_pugh])
    lp_death = eff * (0.3 * a + 0.6 * cp_index + 0.2 * stage_index)
    t_death0 = _weibull_times(rng, lp_death, 1.2, DEATH_SCALE_MONTHS)
    # death follows recurrence after a shorter, exponential interval
    t_death = np.minimum(t_death0, t_rec + rng.exponential(36.0, n) * np.exp(-0.3 * lp))
    follow_up = np.minimum(rng.uniform(12.0, 96.0, n), rng.exponential(400.0, n))

    # rounded as written to the CSV, so that recurrence_2y agrees with the times users read
    rfs_time = np.maximum(np.minimum.reduce([t_rec, t_death, follow_up]), MIN_TIME_MONTHS).round(2)
    rfs_event = (np.minimum(t_rec, t_death) <= follow_up).astype(int)
    os_time = np.maximum(np.minimum(t_death, follow_up), MIN_TIME_MONTHS).round(2)
    os_event = (t_death <= follow_up).astype(int)
    rec2y = pd.array(np.full(n, pd.NA), dtype="Int64")
    rec2y[(rfs_event == 1) & (rfs_time <= RECURRENCE_HORIZON_MONTHS)] = 1
    rec2y[rfs_time > RECURRENCE_HORIZON_MONTHS] = 0
    local_rec = pd.array(np.full(n, pd.NA), dtype="Int64")
    if rng_ablation is not None:
        # recurrence seen at the ablation site (NA for patients not ablated)
        local_rec[ablated] = ((rfs_event == 1) & local & (t_rec <= t_death))[ablated].astype(int)

    clinical = pd.DataFrame(
        {
            "age": age,
            "sex": sex,
            "aetiology": aetiology,
            "child_pugh": child_pugh,
            "bclc_stage": bclc.astype(str),
            "afp_ng_ml": afp,
            "tumour_diameter_mm": diameter,
            "lesion_count": lesions,
            "treatment": treatment,
            "mvi": mvi,
            "edmondson_grade": grade,
            "rfs_time_months": rfs_time,
            "rfs_event": rfs_event,
            "os_time_months": os_time,
            "os_event": os_event,
            "recurrence_2y": rec2y,
            **({"local_recurrence": local_rec} if rng_ablation is not None else {}),
        },
        index=pd.Index(ids, name="patient_id"),
    )
    truth = {
        "latent": "pi3k_akt_activity ~ N(0, 1), one per patient; column 'pi3k_akt_activity' of truth_patients.csv",
        "recurrence_hazard": {**h.to_dict(), "linear_predictor": HazardModel.__doc__.split("``")[3]},
        "death_hazard": {"shape": 1.2, "scale_months": DEATH_SCALE_MONTHS, "activity": 0.3 * eff, "child_pugh_index": 0.6 * eff,
                         "bclc_index": 0.2 * eff, "after_recurrence": "exponential, mean 36 months * exp(-0.3 lp)"},
        "mvi_logit": {"intercept": -1.0, "activity": 0.7 * eff, "log2_size": 0.8 * eff, "noise_sd": 0.5},
        "grade": {"latent": f"{0.6 * eff} * activity + {0.3 * eff} * log2_size + N(0, 1)",
                  "quantile_cuts": [0.15, 0.55, 0.9]},
        "censoring": "administrative U(12, 96) months, loss to follow-up exponential (mean 400 months)",
        "minimum_time_months": MIN_TIME_MONTHS,
        "ablation": {
            "minimal_ablative_margin_mm": {pid: float(m) for pid, m in zip(ids, mam) if not np.isnan(m)},
            "margin_distribution": f"N{MAM_MEAN_SD_MM} clipped to {MAM_RANGE_MM} mm, rounded to 0.1 mm",
            "local_progression_hazard": f"{LTP_RATE_PER_MONTH} / month * exp(-{eff * LTP_SLOPE_PER_MM} * (MAM - 2 mm)), "
                                        "competing with the recurrence hazard; the earlier one is the recurrence",
            "local_recurrence": "1 if the observed recurrence is the local progression; 0 otherwise; NA if not ablated",
        },
        "recurrence_2y": "1 if rfs_event and rfs_time <= 24 months; 0 if rfs_time > 24; NA when censored earlier",
        "fractions": {
            "index_lesion_under_15mm": float(np.mean(diameter < 15)),
            "multifocal": float(np.mean(lesions > 1)),
            "mvi": float(np.mean(mvi)),
            "rfs_event": float(np.mean(rfs_event)),
            "recurrence_2y": float(np.nanmean(rec2y.to_numpy(dtype=float, na_value=np.nan))),
            "recurrence_2y_missing": float(pd.isna(rec2y).mean()),
        },
    }
    return clinical, a, truth
