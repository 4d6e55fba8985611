"""Imaging II on the demo cohort: ring-width comparison, MVI models on shared folds, saliency by region.

Per seed (a fresh demo cohort): register CT and MRI, lesion and ring features (shells), the radiomics model of
each ring on 5-fold x 3-repeat stratified folds (the peak should sit at the planted 6 mm +- 2 mm), CNNs on
tumour-plus-ring crops on the first repeat of the same folds (CT, MRI, CT + MRI fusion, expert-guided, CT +
clinical and semantic inputs) with AUC 95 % bootstrap CIs and paired differences, fusion against each modality on
every repeat (scores averaged over the repeats' out-of-fold models), and the saliency of the CT CNN
on MVI-positive patients (share of Grad-CAM mass in the tumour and its rings against their share of the liver).

Usage: ``python validation/mvi_checks.py [N_SEEDS] [--epochs E] [--width W]`` (or ``--only S [S ...]`` per
process, then ``--summarise``); results in
``validation/results/mvi_checks.csv`` and per seed ``mvi_seed<k>.csv`` (every model with its CI).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from criteria import summarise  # noqa: E402

WIDTHS = (2.0, 4.0, 6.0, 8.0, 10.0)
PLANTED_MM = 6.0
CRITERIA = {
    "ct_ring_peak_error_mm": ("max", "<=", 2.0),
    "mri_ring_peak_error_mm": ("max", "<=", 2.0),
    "fusion_minus_ct_auc": ("min", ">=", 0.0),
    "fusion_minus_mri_auc": ("min", ">=", 0.0),
    "gradcam_inner_mass_minus_volume": ("min", ">", 0.0),
}


def _features(seed: int, work: Path, profile: str) -> dict:
    from hccomics import datasets, imaging, io

    manifest = datasets.make_demo_cohort(datasets.demo_cohort_dir(profile, seed=seed), profile=profile, seed=seed)
    table = io.image_table(manifest)
    registered = {m: imaging.register_cohort(table, modality=m, out_dir=work / "registered" / m, seed=seed)[0]
                  for m in ("CT", "MRI")}
    lesions = {m: imaging.lesion_features(imaging.segmentation_items(r, modality=m), modality=m, widths=WIDTHS)
               for m, r in registered.items()}
    return {"manifest": manifest, "registered": registered, "lesions": lesions,
            "img": imaging.aggregate_lesions(*lesions.values()), "clinical": io.read_clinical(manifest)}


def _crops(f: dict, work: Path, *, spacing, size) -> tuple[list[dict], pd.DataFrame]:
    """Tumour-plus-ring crops of every patient and their CNN targets, cached under ``work``."""
    from hccomics import imaging

    items = imaging.crop_items(f["lesions"], f["registered"], out_dir=work / "crop_masks", widths=WIDTHS)
    crops = imaging.prepare_crops(items, spacing=spacing, size=size, cache_dir=work / "crops")
    return crops, imaging.mvi_targets(f["img"], f["clinical"], widths=WIDTHS, patients=[c["patient_id"] for c in crops])


def _model_dir(work: Path, name: str) -> Path:
    """Where a CNN's fold models of a seed are cached, by model name."""
    return work / "models" / name.replace(" ", "_").replace("+", "and").replace(",", "")


def _enough(y: pd.Series, k: int = 2) -> bool:
    counts = y.value_counts()
    return len(counts) == 2 and int(counts.min()) >= k


def one_seed(seed: int, *, epochs: int = 60, width: float = 0.25, n_boot: int = 1000, profile: str = "demo",
             out: Path | None = None, n_splits: int = 5, n_repeats: int = 3, crop_size=(32, 32, 16),
             crop_spacing=(1.5, 1.5, 3.0), threads: int = 2, fusion_repeats: int | None = None) -> dict:
    """Every measurement of one seed; writes the model table of the seed beside the summary.

    The CNNs train on the first repeat of the folds; the CT, MRI and fusion CNNs on ``fusion_repeats`` repeats
    (default all) for the fusion comparison.
    """
    import torch
    from sklearn.metrics import roc_auc_score

    from hccomics import imaging

    torch.set_num_threads(threads)
    fusion_repeats = n_repeats if fusion_repeats is None else fusion_repeats
    out = out or HERE / "results"
    work = out / "mvi_work" / f"{profile}-seed{seed}"
    start = time.perf_counter()
    f = _features(seed, work, profile)
    img, clinical = f["img"], f["clinical"]
    y_all = clinical.loc[img.obs_names, "mvi"].dropna().astype(int)
    folds = imaging.mvi_folds(y_all, n_splits=n_splits, n_repeats=n_repeats, seed=seed)
    row: dict = {"seed": seed, "patients": len(y_all), "mvi_positive": int(y_all.sum()), "epochs": epochs}
    for m in ("ct", "mri"):
        if not _enough(y_all[img.obs.loc[y_all.index, f"has_{m}"].to_numpy(dtype=bool)]):
            row[f"{m}_ring_peak_mm"] = row[f"{m}_ring_peak_error_mm"] = np.nan
            continue
        table, _ = imaging.ring_width_comparison(img, y_all, folds=folds, modality=m, n_boot=n_boot, seed=seed)
        peak = float(table.loc[table["best"], "width_mm"].iloc[0])
        row[f"{m}_ring_peak_mm"] = peak
        row[f"{m}_ring_peak_error_mm"] = abs(peak - PLANTED_MM)
        for r in table.itertuples():
            row[f"{m}_auc_{r.region}"] = r.auc
            row[f"{m}_logloss_{r.region}"] = r.log_loss
    crops, y = _crops(f, work, spacing=crop_spacing, size=crop_size)
    expert = list(imaging.EXPERT_FEATURES)
    factories = imaging.mvi_models(epochs=epochs, widen=width, batch_size=16, device="auto")
    results = {name: imaging.cross_validate_cnn(fn, crops, y, folds, repeats=[0],
                                                work_dir=_model_dir(work, name))
               for name, fn in factories.items()}
    scores = {name: r.oof[0] for name, r in results.items()}
    scores["CNN expert-guided (stage 2)"] = imaging.two_stage_oof(results["CNN expert-guided"], y["mvi"], features=expert)[0]
    X = pd.DataFrame(img.X, index=img.obs_names, columns=img.var_names)
    for m in ("ct", "mri"):
        has = img.obs_names[img.obs[f"has_{m}"].to_numpy(dtype=bool)].intersection(y.index)
        rings = img.var_names[(img.var["modality"].str.lower() == m) & img.var["region"].str.startswith("ring_")
                              & img.var["family"].isin(["cnr", "first_order", "texture"])]
        scores[f"radiomics {m.upper()}, all rings"] = imaging.radiomics_oof(X.loc[has, rings], y.loc[has, "mvi"],
                                                                           folds[folds["repeat"] == 0])[0]
        if np.isnan(row[f"{m}_ring_peak_mm"]):
            continue
        # the ring chosen by the comparison on every patient: optimistic, reported for reference only
        best = rings[img.var.loc[rings, "region"] == f"ring_{row[f'{m}_ring_peak_mm']:g}mm"]
        scores[f"radiomics {m.upper()} best ring (chosen on all patients)"] = imaging.radiomics_oof(
            X.loc[has, best], y.loc[has, "mvi"], folds[folds["repeat"] == 0])[0]
    models = imaging.model_table(y["mvi"], scores, n_boot=n_boot, seed=seed)
    models.insert(0, "seed", seed)
    models.to_csv(out / f"mvi_seed{seed}.csv", index=False)
    for rec in models.itertuples():
        row[f"auc {rec.model}"] = rec.auc
        row[f"auc {rec.model} low"] = rec.auc_low
        row[f"auc {rec.model} high"] = rec.auc_high
    oof = pd.DataFrame(scores)
    # fusion against each modality on repeated CV: the CT, MRI and fusion CNNs train on every repeat of the folds
    # (repeat 0 reloads the models above), and a patient's score is the mean of the out-of-fold probabilities of
    # the repeats' models that held it out, as ring_width_comparison scores the radiomics models
    fused = ("CNN CT", "CNN MRI", "CNN CT + MRI")
    repeated = {name: imaging.cross_validate_cnn(factories[name], crops, y, folds, repeats=range(fusion_repeats),
                                                 work_dir=_model_dir(work, name)).oof
                for name in fused}
    mean_oof = pd.DataFrame({name: o.mean(axis=1) for name, o in repeated.items()})
    both = mean_oof.dropna().index
    row["fusion_repeats"] = fusion_repeats
    for name in fused:
        row[f"auc {name}, repeats averaged"] = roc_auc_score(y.loc[both, "mvi"], mean_oof.loc[both, name])
    for name, other in (("ct", "CNN CT"), ("mri", "CNN MRI")):
        if not _enough(y.loc[both, "mvi"], 1):
            continue
        d = imaging.compare_auc(y.loc[both, "mvi"], mean_oof.loc[both, other], mean_oof.loc[both, "CNN CT + MRI"],
                                n_boot=n_boot, seed=seed)
        row[f"fusion_minus_{name}_auc"], row[f"fusion_minus_{name}_low"], row[f"fusion_minus_{name}_high"] = \
            d["estimate"], d["low"], d["high"]
        for r in range(fusion_repeats):  # each repeat alone (repeat 0: the models of the table above)
            row[f"fusion_minus_{name}_auc_repeat{r}"] = (roc_auc_score(y.loc[both, "mvi"], repeated["CNN CT + MRI"].loc[both, r])
                                                        - roc_auc_score(y.loc[both, "mvi"], repeated[other].loc[both, r]))
    for name in ("CNN expert-guided", "CNN expert-guided (stage 2)", "CNN + clinical and semantic"):
        idx = oof[["CNN CT", name]].dropna().index
        if not _enough(y.loc[idx, "mvi"], 1):
            continue
        d = imaging.compare_auc(y.loc[idx, "mvi"], oof.loc[idx, "CNN CT"], oof.loc[idx, name], n_boot=n_boot, seed=seed)
        row[f"{name} minus CNN CT"], row[f"{name} minus CNN CT low"] = d["estimate"], d["low"]
    # saliency of the CT CNN on MVI-positive patients, each with the fold model that held it out
    ct = results["CNN CT"]
    positives = [p for p in ct.oof.index if y.loc[p, "mvi"] == 1]
    by_id = {c["patient_id"]: c for c in crops}
    tables, deletion = [], []
    for fold in sorted({ct.fold_model(p)[1] for p in positives}):
        model = imaging.fold_classifier(factories["CNN CT"], ct, crops, y, repeat=0, fold=fold)
        group = [by_id[p] for p in positives if ct.fold_model(p)[1] == fold]
        for method in ("gradcam", "gradcam++", "gradient", "occlusion"):
            maps = imaging.saliency_maps(model, group if method != "occlusion" else group[:3], y, method=method)
            tables.append(imaging.saliency_by_region(maps, group[:len(maps)], widths=WIDTHS).assign(method=method))
            if method == "gradcam":
                deletion.append(imaging.deletion_curve(model, group, maps, y, seed=seed))
    sal = pd.concat(tables, ignore_index=True)
    sal.to_csv(out / f"mvi_saliency_seed{seed}.csv", index=False)
    inner = ["tumour", *(f"ring_{w:g}mm" for w in WIDTHS)]
    for method, t in sal.groupby("method"):
        per = t[t["region"].isin(inner)].groupby("patient_id")[["mass_share", "volume_share"]].sum().mean()
        key = method.replace("++", "pp")
        row[f"{key}_inner_mass_minus_volume"] = float(per["mass_share"] - per["volume_share"])
        for region, s in t.groupby("region"):
            row[f"{key}_{region}_mass"] = float(s["mass_share"].mean())
            row[f"{key}_{region}_volume"] = float(s["volume_share"].mean())
    deletion = pd.concat(deletion, ignore_index=True)
    row["deletion_auc_gradcam"] = float(deletion["auc_saliency"].mean())
    row["deletion_auc_random"] = float(deletion["auc_random"].mean())
    row["minutes"] = (time.perf_counter() - start) / 60
    return row


def run(seeds=range(3), **kwargs) -> pd.DataFrame:
    rows = [one_seed(s, **kwargs) for s in seeds]
    return summarise(rows, CRITERIA)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("seeds", nargs="?", type=int, default=3, help="number of seeds: 0 .. N-1")
    p.add_argument("--only", type=int, nargs="+", default=None,
                   help="run just these seeds (to run seeds side by side, then --summarise)")
    p.add_argument("--summarise", action="store_true", help="summarise the saved rows of seeds 0 .. N-1, run nothing")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 beside another validation)")
    args = p.parse_args(argv)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    seeds = args.only if args.only is not None else range(args.seeds)
    if not args.summarise:
        for s in seeds:  # each seed's row saved as it ends: kept when a later seed is interrupted
            row = one_seed(s, epochs=args.epochs, width=args.width, out=out, threads=args.threads)
            pd.DataFrame([row]).to_csv(out / f"mvi_checks_row_seed{s}.csv", index=False)
    if args.only is not None and not args.summarise:
        return 0
    missing = [s for s in seeds if not (out / f"mvi_checks_row_seed{s}.csv").exists()]
    if missing:
        raise SystemExit(f"no saved row for seed(s) {missing}: run them first")
    rows = [pd.read_csv(out / f"mvi_checks_row_seed{s}.csv").iloc[0].to_dict() for s in seeds]
    table = summarise(rows, CRITERIA)
    table.to_csv(out / "mvi_checks.csv")
    print(table.to_string())
    return 0 if table["ok"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
