"""Survival models, metrics and protocols against independent references and hand-computed examples."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hccomics.errors import DataValidationError, NotFittedError
from hccomics.survival import (
    CoxPH,
    DeepSurv,
    FoldWithoutEventsWarning,
    MultimodalDeepSurv,
    Nomogram,
    antolini_c,
    compare_models,
    cross_validate,
    evaluate,
    harrell_c,
    integrated_brier,
    make_splits,
    time_dependent_auc,
    uno_c,
)


@pytest.fixture(scope="module")
def gbsg2() -> pd.DataFrame:
    from sksurv.datasets import load_gbsg2

    X, y = load_gbsg2()
    return X.assign(time=y["time"], event=y["cens"].astype(int))


def test_cox_equals_plain_lifelines(gbsg2) -> None:
    from lifelines import CoxPHFitter

    covs = ["age", "tsize", "pnodes", "progrec", "estrec"]
    ours = CoxPH(penalizer=0.05).fit(gbsg2, duration_col="time", event_col="event", covariates=covs)
    plain = CoxPHFitter(penalizer=0.05).fit(gbsg2[covs + ["time", "event"]], duration_col="time", event_col="event")
    np.testing.assert_allclose(ours.summary["coef"].to_numpy(), plain.params_.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_risk(gbsg2), plain.predict_log_partial_hazard(gbsg2[covs]).to_numpy(), rtol=1e-8)


def test_metrics_agree_with_sksurv(gbsg2) -> None:
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    from hccomics.survival._data import structured_y

    train, test = gbsg2.iloc[:450], gbsg2.iloc[450:]
    model = CoxPH().fit(train, duration_col="time", event_col="event")
    risk = model.predict_risk(test)
    times = np.array([400.0, 800.0, 1200.0, 1600.0])
    surv = model.predict_survival_function(test, times=times)
    ytr, yte = structured_y(train.time, train.event), structured_y(test.time, test.event)
    tr, te = (train.time.to_numpy(), train.event.to_numpy()), (test.time.to_numpy(), test.event.to_numpy())
    assert harrell_c(*te, risk) == pytest.approx(concordance_index_censored(yte["event"], yte["time"], risk)[0], abs=1e-6)
    assert uno_c(tr, te, risk, tau=1500) == pytest.approx(concordance_index_ipcw(ytr, yte, risk, tau=1500)[0], abs=1e-6)
    auc = time_dependent_auc(tr, te, risk, times=times)
    np.testing.assert_allclose(auc.to_numpy(), cumulative_dynamic_auc(ytr, yte, risk, times)[0], atol=1e-6)
    ibs = integrated_brier_score(ytr, yte, surv.to_numpy().T, times)
    assert integrated_brier(tr, te, surv, times=times) == pytest.approx(ibs, abs=1e-6)
    table = evaluate(tr, te, risk, surv, horizon=1500)
    assert {"harrell_c", "uno_c@1500", "antolini_c", "integrated_brier", "ici@1500"} <= set(table.index)
    assert table["estimator"].notna().all()


def test_antolini_hand_computed() -> None:
    # subjects: (t=2, event), (t=4, event), (t=4, censored), (t=6, censored)
    t, e = np.array([2.0, 4.0, 4.0, 6.0]), np.array([1, 1, 0, 0])
    S = pd.DataFrame([[0.5, 0.7, 0.6, 0.9], [0.3, 0.4, 0.4, 0.8]], index=[2.0, 4.0])
    # at t=2 subject 0 is compared with 1, 2, 3: S0=0.5 vs 0.7, 0.6, 0.9 -> 3 concordant
    # at t=4 subject 1 is compared with 2 (tied time, censored) and 3: 0.4 vs 0.4 (tie: 1/2), 0.4 vs 0.8 -> 1.5
    assert antolini_c(t, e, S) == pytest.approx(4.5 / 5)


def test_efron_loss_hand_computed() -> None:
    import torch
    from torchsurv.loss.cox import neg_partial_log_likelihood

    lh = torch.tensor([0.1, 0.5, -0.2, 0.3])
    ev = torch.tensor([True, True, False, True])
    t = torch.tensor([1.0, 1.0, 3.0, 4.0])
    r = np.exp([0.1, 0.5, -0.2, 0.3]).sum()
    d = np.exp([0.1, 0.5]).sum()
    efron = -(0.6 - np.log(r) - np.log(r - 0.5 * d))
    breslow = -(0.6 - 2 * np.log(r))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert float(neg_partial_log_likelihood(lh, ev, t, ties_method="efron", reduction="sum")) == pytest.approx(efron, rel=1e-5)
        assert float(neg_partial_log_likelihood(lh, ev, t, ties_method="breslow", reduction="sum")) == pytest.approx(breslow, rel=1e-5)


def test_deepsurv_is_seeded_and_learns(gbsg2) -> None:
    train, test = gbsg2.iloc[:500], gbsg2.iloc[500:]
    a = DeepSurv(seed=3, epochs=60).fit(train, duration_col="time", event_col="event")
    b = DeepSurv(seed=3, epochs=60).fit(train, duration_col="time", event_col="event")
    np.testing.assert_array_equal(a.predict_risk(test), b.predict_risk(test))
    assert harrell_c(test.time, test.event, a.predict_risk(test)) > 0.6
    sf = a.predict_survival_function(test.iloc[:5], times=[100, 1000, 2000])
    assert ((sf.diff().iloc[1:] <= 1e-12).all().all()) and sf.shape == (3, 5)


def test_batches_without_events(gbsg2) -> None:
    # mostly censored rows: small batches often hold no event
    df = pd.concat([gbsg2[gbsg2.event == 0].iloc[:290], gbsg2[gbsg2.event == 1].iloc[:10]])
    model = DeepSurv(seed=0, epochs=5, batch_size=8).fit(df, duration_col="time", event_col="event")
    assert np.isfinite(model.history_).all()


def test_multimodal_blocks(gbsg2) -> None:
    blocks = {"clinical": ["age", "menostat", "tsize", "tgrade", "pnodes"], "hormonal": ["horTh", "progrec", "estrec"]}
    model = MultimodalDeepSurv(blocks=blocks, epochs=30, seed=0).fit(gbsg2, duration_col="time", event_col="event")
    assert len(model.net_.encoders) == 2 and model.predict_risk(gbsg2).shape == (len(gbsg2),)


def test_predict_before_fit() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        CoxPH().predict_risk(pd.DataFrame({"x": [1.0]}))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.assign(time=d.time.where(d.index != d.index[3], np.nan)), "is NaN"),
        (lambda d: d.assign(time=d.time.where(d.index != d.index[3], 0.0)), "zero or negative"),
        (lambda d: d.assign(time=d.time.where(d.index != d.index[3], -5.0)), "zero or negative"),
        (lambda d: d.assign(event=d.event.where(d.index != d.index[3], 2)), "must be 0 \\(censored\\) or 1"),
        (lambda d: d.assign(event=0), "no events"),
        (lambda d: d.assign(age=50.0), "constant"),
    ],
)
def test_bad_input(gbsg2, edit, message: str) -> None:
    with pytest.raises(DataValidationError, match=message):
        CoxPH().fit(edit(gbsg2.copy()), duration_col="time", event_col="event")


def test_fold_without_events(gbsg2) -> None:
    df = gbsg2.iloc[:100].copy()
    splits = make_splits(df, event_col="event", n_splits=5)
    events = df.index[df.event == 1]
    fold0 = splits.loc[splits.fold == 0, "sample"]
    # move fold 0's events to fold 1 and take fold 1's censored rows in exchange
    swap_in = splits.loc[(splits.fold == 1) & splits["sample"].isin(df.index[df.event == 0]), "sample"].iloc[: fold0.isin(events).sum()]
    splits.loc[splits["sample"].isin(fold0[fold0.isin(events)]), "fold"] = 1
    splits.loc[splits["sample"].isin(swap_in), "fold"] = 0
    with pytest.warns(FoldWithoutEventsWarning, match="has no event"):
        cv = cross_validate(CoxPH(), df, duration_col="time", event_col="event", splits=splits, progress=False)
    assert set(cv.metrics.fold) == {1, 2, 3, 4}


def test_cross_validation_same_folds_same_c(gbsg2) -> None:
    from lifelines import CoxPHFitter

    covs = ["age", "tsize", "pnodes"]
    splits = make_splits(gbsg2, event_col="event", n_splits=5, seed=1)
    cv = cross_validate(CoxPH(penalizer=0.1), gbsg2, duration_col="time", event_col="event", covariates=covs,
                        splits=splits, progress=False)
    for fold, rows in splits.groupby("fold"):
        test = gbsg2.loc[rows["sample"]]
        train = gbsg2.drop(index=rows["sample"])
        plain = CoxPHFitter(penalizer=0.1).fit(train[covs + ["time", "event"]], duration_col="time", event_col="event")
        c = harrell_c(test.time, test.event, plain.predict_log_partial_hazard(test[covs]).to_numpy())
        ours = cv.metrics.query("fold == @fold and metric == 'harrell_c'")["value"].item()
        assert round(ours, 3) == round(c, 3)


def test_paired_comparison_detects_a_real_gain(gbsg2) -> None:
    rng = np.random.default_rng(0)
    good = CoxPH().fit(gbsg2, duration_col="time", event_col="event").predict_risk(gbsg2)
    noise = rng.normal(size=len(gbsg2))
    res = compare_models(gbsg2.time, gbsg2.event, noise, good, n_boot=200)
    assert res["low"] > 0 and res["c_b"] > res["c_a"]


def test_nomogram_points_reproduce_cox(gbsg2) -> None:
    covs = ["age", "tsize", "pnodes", "horTh"]
    nom = Nomogram(times=(365, 1825)).fit(gbsg2, duration_col="time", event_col="event", covariates=covs)
    pts = nom.points(gbsg2.iloc[:20])
    direct = nom.cox_.predict_survival_function(gbsg2.iloc[:20], times=[365]).iloc[0].to_numpy()
    np.testing.assert_allclose(pts["survival_365"].to_numpy(), direct, rtol=1e-6)
    assert pts.drop(columns=[c for c in pts if c.startswith(("survival", "total"))]).min().min() >= -1e-9


def test_calibration_with_few_distinct_predictions(gbsg2) -> None:
    from hccomics.survival import calibration

    model = CoxPH().fit(gbsg2, duration_col="time", event_col="event", covariates=["horTh"])  # two risk levels only
    surv = model.predict_survival_function(gbsg2, times=[1000.0])
    cal = calibration(gbsg2.time.to_numpy(), gbsg2.event.to_numpy(), surv, horizon=1000.0)
    assert np.isfinite(cal["ici"]) and cal["ici"] < 0.1


def test_antolini_before_first_prediction_time() -> None:
    # both subjects have S = 1 at t = 0.5, before the first predicted time: a tie, so C = 0.5
    S = pd.DataFrame({"a": [0.4], "b": [0.9]}, index=[1.0])
    assert antolini_c(np.array([0.5, 2.0]), np.array([1, 0]), S) == 0.5


def test_deepsurv_survival_keeps_requested_times(gbsg2) -> None:
    model = DeepSurv(seed=0, epochs=20).fit(gbsg2, duration_col="time", event_col="event")
    sf = model.predict_survival_function(gbsg2.iloc[:2], times=[1.0, 100.0, 5000.0, 9000.0])
    assert list(sf.index) == [1.0, 100.0, 5000.0, 9000.0]
    assert (sf.iloc[0] == 1.0).all() and (sf.iloc[2] == sf.iloc[3]).all()


def test_deepsurv_leaves_global_rng_alone(gbsg2) -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DeepSurv(seed=0, epochs=5).fit(gbsg2, duration_col="time", event_col="event")
    assert torch.equal(torch.rand(3), expected)


def test_failed_fit_is_not_fitted(gbsg2) -> None:
    model = DeepSurv(hidden=(4,), epochs=5, ties="breslow")
    model.ties = "breslo"
    with pytest.raises(Exception, match="did you mean 'breslow'"):
        model.fit(gbsg2, duration_col="time", event_col="event")
    with pytest.raises(NotFittedError):
        model.predict_risk(gbsg2)


def test_multimodal_blocks_follow_source_columns(gbsg2) -> None:
    df = gbsg2.assign(age_group=pd.cut(gbsg2.age, [0, 50, 120], labels=["young", "old"]))
    model = MultimodalDeepSurv(blocks={"a": ["age"], "b": ["age_group", "tsize"]}, epochs=5, seed=0)
    model.fit(df, duration_col="time", event_col="event")
    idx = [list(map(int, i)) for i in model.net_.index]
    assert [model.columns_[i] for i in idx[0]] == ["age"]
    assert sorted(model.columns_[i] for i in idx[1]) == ["age_group_old", "tsize"]
    with pytest.raises(DataValidationError, match="belong to no block"):
        MultimodalDeepSurv(blocks={"a": ["age"]}, epochs=2).fit(df, duration_col="time", event_col="event",
                                                                covariates=["age", "tsize"])
    with pytest.raises(DataValidationError, match="is in blocks"):
        MultimodalDeepSurv(blocks={"a": ["age"], "b": ["age"]}, epochs=2).fit(df, duration_col="time", event_col="event")


def test_prognostic_table_drops_missing_values(demo_manifest) -> None:
    from hccomics.io import read_clinical
    from hccomics.survival import prognostic_table

    clinical = read_clinical(demo_manifest)
    clinical.loc[clinical.index[0], "treatment"] = np.nan
    clinical.loc[clinical.index[1], "lesion_count"] = np.nan
    table, blocks = prognostic_table(clinical)
    assert clinical.index[0] not in table.index and clinical.index[1] not in table.index
    assert len(table) == len(clinical) - 2 and "nan" not in set(table.treatment.astype(str))
