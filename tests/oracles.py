"""Independent, test-only oracles for the demo cohort's planted truth.

Plain numpy/pandas/scipy written for checking, not the package's analysis code: median-of-ratios
size factors, group-mean fold changes, per-stage DNB statistics and a hand-written concordance
index. `validation/` reuses them over many seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def median_of_ratios(counts: pd.DataFrame) -> pd.Series:
    """Size factors of a samples x genes count table (DESeq's median-of-ratios, written out)."""
    logc = np.log(counts.where(counts > 0))
    usable = logc.notna().all()
    geo = logc.loc[:, usable].mean()
    return np.exp((logc.loc[:, usable] - geo).median(axis=1))


def group_log2fc(counts: pd.DataFrame, groups: pd.Series) -> pd.Series:
    """log2 ratio of mean normalised counts, group 1 over group 0 (pseudo-count 0.5)."""
    norm = counts.div(median_of_ratios(counts), axis=0)
    return np.log2((norm[groups == 1].mean() + 0.5) / (norm[groups == 0].mean() + 0.5))


def welch_pvalues(counts: pd.DataFrame, groups: pd.Series) -> pd.Series:
    """Welch t-test p-values of log2(normalised + 1) between the two groups, per gene."""
    from scipy import stats

    logn = np.log2(counts.div(median_of_ratios(counts), axis=0) + 1)
    a, b = logn[groups == 1], logn[groups == 0]
    return pd.Series(stats.ttest_ind(a, b, equal_var=False).pvalue, index=counts.columns)


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance: pairs where the earlier event has the higher risk (ties count 1/2)."""
    conc = ties = pairs = 0.0
    for i in np.flatnonzero(event == 1):
        later = time > time[i]
        pairs += later.sum()
        conc += (risk[i] > risk[later]).sum()
        ties += (risk[i] == risk[later]).sum()
    return (conc + 0.5 * ties) / pairs


def dnb_stage_statistics(expr: pd.DataFrame, stages: pd.Series, module: list[str], order: list[str]) -> pd.DataFrame:
    """Per stage: mean SD of the module, mean |r| inside it, mean |r| to the rest, composite index."""
    rest = expr.columns.difference(module)
    mi = [expr.columns.get_loc(g) for g in module]
    ri = [expr.columns.get_loc(g) for g in rest]
    rows = {}
    for stage in order:
        x = expr.loc[stages.index[stages == stage]]
        r = np.abs(np.corrcoef(x.to_numpy().T))
        pcc_in = r[np.ix_(mi, mi)][~np.eye(len(mi), dtype=bool)].mean()
        pcc_out = r[np.ix_(mi, ri)].mean()
        sd_in = x[module].std(ddof=1).mean()
        rows[stage] = {"n": len(x), "sd_in": sd_in, "pcc_in": pcc_in, "pcc_out": pcc_out,
                       "composite_index": sd_in * pcc_in / pcc_out}
    return pd.DataFrame(rows).T
