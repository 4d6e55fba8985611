"""Which CT + MRI fusion the MVI notebook and validation use: chosen on development seeds, never on the reported ones.

On demo cohorts of development seeds (default 100-102; ``mvi_checks.py`` reports seeds 0-2), the CT and MRI CNNs
and four fusions are cross-validated on the first repeat of the shared folds, with the validation's settings:
joint fusion (one head on both embeddings), joint fusion with a head and loss per encoder (``modality_heads``),
early fusion (the MRI phases as extra input channels of one encoder, ``fusion="channels"``) and late fusion (the
mean of the CT and MRI networks' out-of-fold logits). Each model also with region-pooled encoders (``pooling=
"regions"``: features averaged over the tumour, each ring shell and the rest of the liver instead of the whole crop).
AUC on the patients with both modalities, and each fusion minus the better single modality of its kind (global or
region-pooled). Adopted: the fusion that is >= the better single modality on the most seeds (ties: the larger mean
difference).

Outcome (AUC on seeds 100 / 101 / 102). At 30 epochs the region-pooled singles beat the global ones (CT .976 / .982 /
.985 against .909 / .873 / .948) but no fusion was >= the better single on most seeds (global heads per modality:
+.009 / +.060 / -.078; region-pooled: -.002 / -.020 / .000). At 60 epochs, region-pooled: CT 1.000 / 1.000 / 1.000,
MRI .955 / .960 / .987, heads per modality 1.000 / 1.000 / 1.000 (>= on 3 of 3, ties at the ceiling), late fusion
.998 / 1.000 / 1.000 (2 of 3). Adopted: heads per modality with region-pooled encoders, 60 epochs
(:func:`hccomics.imaging.mvi_models`).

Usage: ``python validation/mvi_fusion_selection.py [SEEDS ...] [--epochs E] [--models NAME ...]``; writes
``validation/results/mvi_fusion_selection.csv``, one row per seed and training length (a later run replaces the scores
it computes, keeps the others). ``--models`` restricts the candidates: a run without the CT and the MRI
CNN among them only trains (e.g. a second process side by side); a later run reloads the cached fold models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mvi_checks import _crops, _features, _model_dir  # noqa: E402


def _logit(p: pd.Series) -> pd.Series:
    p = p.clip(1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _region_pooled(model):
    model.pooling = "regions"
    return model


def one_seed(seed: int, *, epochs: int = 30, width: float = 0.25, profile: str = "demo", out: Path = HERE / "results",
             crop_size=(32, 32, 16), crop_spacing=(1.5, 1.5, 3.0), only: list[str] | None = None) -> dict | None:
    """AUC of every single-modality model and fusion on the patients with CT and MRI, for one development seed.

    ``only`` restricts the candidates; without both single-modality CNNs of a kind (global or region-pooled) among
    them, it trains and returns ``None``.
    """
    from sklearn.metrics import roc_auc_score

    from hccomics import imaging

    work = out / "mvi_work" / f"{profile}-seed{seed}"
    f = _features(seed, work, profile)
    img, clinical = f["img"], f["clinical"]
    y_all = clinical.loc[img.obs_names, "mvi"].dropna().astype(int)
    folds = imaging.mvi_folds(y_all, n_splits=5, n_repeats=3, seed=seed)
    crops, y = _crops(f, work, spacing=crop_spacing, size=crop_size)
    options = dict(targets=("mvi", "high_grade"), epochs=epochs, widen=width, batch_size=16, device="auto")
    models = {  # the candidates spelled out (mvi_models holds only the one chosen here)
        "CNN CT": lambda s: imaging.MVIClassifier(seed=s, **options),
        "CNN MRI": lambda s: imaging.MVIClassifier(modality="mri", seed=s, **options),
        "CNN CT + MRI": lambda s: imaging.MVIClassifier(fusion=True, seed=s, **options),
        "CNN CT + MRI, heads per modality": lambda s: imaging.MVIClassifier(fusion=True, modality_heads=True, seed=s, **options),
        "CNN CT + MRI, early (channels)": lambda s: imaging.MVIClassifier(fusion="channels", seed=s, **options),
    }
    # the same with region-pooled encoders (features averaged over the tumour, each ring shell, the rest of the liver)
    for name in ("CNN CT", "CNN MRI", "CNN CT + MRI", "CNN CT + MRI, heads per modality"):
        models[f"{name}, region-pooled"] = lambda s, make=models[name]: _region_pooled(make(s))
    unknown = sorted(set(only or ()) - set(models))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {list(models)}")
    oof = {}
    for name in only or models:
        res = imaging.cross_validate_cnn(models[name], crops, y, folds, repeats=[0], work_dir=_model_dir(work, name))
        oof[name] = res.oof[0]
    families = [f for f in ("", ", region-pooled") if f"CNN CT{f}" in oof and f"CNN MRI{f}" in oof]
    if not families:
        return None
    oof = pd.DataFrame(oof).dropna()
    for f in families:
        oof[f"late fusion (mean logit){f}"] = 1 / (1 + np.exp(-(_logit(oof[f"CNN CT{f}"]) + _logit(oof[f"CNN MRI{f}"])) / 2))
    yy = y.loc[oof.index, "mvi"].astype(int)
    row = {"seed": seed, "epochs": epochs, "patients_with_both": len(oof), "mvi_positive": int(yy.sum())}
    auc = {name: roc_auc_score(yy, oof[name]) for name in oof.columns}
    for name, a in auc.items():
        row[f"auc {name}"] = a
        f = ", region-pooled" if name.endswith(", region-pooled") else ""
        if f in families and name not in (f"CNN CT{f}", f"CNN MRI{f}"):  # against the better single CNN of its kind
            row[f"{name} minus best single"] = a - max(auc[f"CNN CT{f}"], auc[f"CNN MRI{f}"])
    return row


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("seeds", nargs="*", type=int, default=[100, 101, 102])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--models", nargs="+", default=None, help="only these candidates")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / "mvi_fusion_selection.csv"
    rows = []
    for s in args.seeds:
        row = one_seed(s, epochs=args.epochs, out=out, only=args.models)
        if row is None:
            continue
        rows.append(row)
        old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["seed", "epochs"])
        # rows written before the column existed were trained for 30 epochs
        old["epochs"] = old["epochs"].fillna(30).astype(int) if "epochs" in old else 30
        # a seed's new scores replace its old ones; the candidates this run left out keep theirs
        table = pd.DataFrame(rows).set_index(["seed", "epochs"]).combine_first(old.set_index(["seed", "epochs"]))
        table.sort_index(level=["epochs", "seed"]).reset_index().to_csv(path, index=False)  # kept if a later seed is cut
        print(pd.DataFrame(rows).set_index("seed").T.to_string(), flush=True)
    if rows:
        print(pd.DataFrame(rows).set_index("seed").mean().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
