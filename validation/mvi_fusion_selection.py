"""Which CT + MRI fusion the MVI notebook and validation use: chosen on development seeds, never on the reported ones.

On demo cohorts of development seeds (default 100-102; ``mvi_checks.py`` reports seeds 0-2), the CT and MRI CNNs
and four fusions are cross-validated on the first repeat of the shared folds, with the validation's settings:
joint fusion (one head on both embeddings), joint fusion with a head and loss per encoder (``modality_heads``),
early fusion (the MRI phases as extra input channels of one encoder, ``fusion="channels"``) and late fusion (the
mean of the CT and MRI networks' out-of-fold logits). AUC on the patients with both modalities, and each fusion
minus the better single modality. Adopted: the fusion that is >= the better single
modality on the most seeds (ties: the larger mean difference).

Usage: ``python validation/mvi_fusion_selection.py [SEEDS ...] [--epochs E]``; writes
``validation/results/mvi_fusion_selection.csv``.
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


def one_seed(seed: int, *, epochs: int = 30, width: float = 0.25, profile: str = "demo", out: Path = HERE / "results",
             crop_size=(32, 32, 16), crop_spacing=(1.5, 1.5, 3.0)) -> dict:
    """AUC of every single-modality model and fusion on the patients with CT and MRI, for one development seed."""
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
    oof = {}
    for name in models:
        res = imaging.cross_validate_cnn(models[name], crops, y, folds, repeats=[0], work_dir=_model_dir(work, name))
        oof[name] = res.oof[0]
    oof = pd.DataFrame(oof).dropna()
    oof["late fusion (mean logit)"] = 1 / (1 + np.exp(-(_logit(oof["CNN CT"]) + _logit(oof["CNN MRI"])) / 2))
    yy = y.loc[oof.index, "mvi"].astype(int)
    row = {"seed": seed, "patients_with_both": len(oof), "mvi_positive": int(yy.sum())}
    auc = {name: roc_auc_score(yy, oof[name]) for name in oof.columns}
    best_single = max(auc["CNN CT"], auc["CNN MRI"])
    for name, a in auc.items():
        row[f"auc {name}"] = a
        if name not in ("CNN CT", "CNN MRI"):
            row[f"{name} minus best single"] = a - best_single
    return row


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("seeds", nargs="*", type=int, default=[100, 101, 102])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    rows = []
    for s in args.seeds:
        rows.append(one_seed(s, epochs=args.epochs, out=out))
        table = pd.DataFrame(rows).set_index("seed")
        table.to_csv(out / "mvi_fusion_selection.csv")  # kept when a later seed is interrupted
        print(table.T.to_string(), flush=True)
    table = pd.DataFrame(rows).set_index("seed")
    print(table.mean().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
