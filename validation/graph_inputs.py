"""Patient-level image modality (`img` with out-of-fold `X_cnn`) of a demo cohort, for the graph-fusion checks.

Reuses the Imaging II validation's work folder (registration cache, crops), so that a seed already run by
``mvi_checks.py`` costs only its lesion features and the CT CNN (5 folds, trained once and cached). The CT CNN
here is the global-pool one with which the graph-fusion figures were measured. Written to
``validation/results/graph_work/<profile>-seed<k>[-null]/img.h5ad``.

Usage: ``python validation/graph_inputs.py SEED [SEED ...] [--null]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mvi_checks import WIDTHS

EPOCHS, WIDTH, CROP_SIZE, CROP_SPACING = 30, 0.25, (32, 32, 16), (1.5, 1.5, 3.0)


def image_modality(seed: int, *, null: bool = False, profile: str = "demo", out: Path | None = None,
                   epochs: int = EPOCHS, width: float = WIDTH, crop_size=CROP_SIZE, crop_spacing=CROP_SPACING,
                   n_splits: int = 5):
    """The cohort's manifest and its `img` AnnData with `obsm['X_cnn']` (cached as h5ad)."""
    import anndata as ad
    import torch

    from hccomics import datasets, imaging, io

    torch.set_num_threads(2)
    out = out or HERE / "results"
    tag = f"{profile}-seed{seed}{'-null' if null else ''}"
    manifest = datasets.make_demo_cohort(datasets.demo_cohort_dir(profile, seed=seed, null=null), profile=profile,
                                         seed=seed, null=null)
    dest = out / "graph_work" / tag / "img.h5ad"
    if dest.exists():
        return manifest, ad.read_h5ad(dest)
    work = out / "mvi_work" / tag
    table = io.image_table(manifest)
    registered = {m: imaging.register_cohort(table, modality=m, out_dir=work / "registered" / m, seed=seed)[0]
                  for m in ("CT", "MRI")}
    lesions = {m: imaging.lesion_features(imaging.segmentation_items(r, modality=m), modality=m, widths=WIDTHS)
               for m, r in registered.items()}
    img = imaging.aggregate_lesions(*lesions.values())
    clinical = io.read_clinical(manifest)
    y_all = clinical.loc[img.obs_names, "mvi"].dropna().astype(int)
    folds = imaging.mvi_folds(y_all, n_splits=n_splits, n_repeats=3, seed=seed)
    items = imaging.crop_items(lesions, registered, out_dir=work / "crop_masks", widths=WIDTHS)
    crops = imaging.prepare_crops(items, spacing=crop_spacing, size=crop_size, cache_dir=work / "crops")
    y = imaging.mvi_targets(img, clinical, widths=WIDTHS, patients=[c["patient_id"] for c in crops])
    # the global-pool CT CNN with which the graph-fusion figures were measured (the MVI models now pool by region);
    # its own model folder, so that it and mvi_checks.py do not retrain each other's fold models
    factory = imaging.mvi_models(pooling="global", epochs=epochs, widen=width, batch_size=16, device="auto")["CNN CT"]
    ct = imaging.cross_validate_cnn(factory, crops, y, folds, repeats=[0], work_dir=work / "models" / "CNN_CT_global")
    img.obsm["X_cnn"] = ct.embeddings.reindex(img.obs_names).to_numpy(dtype=np.float32)
    img.obs["cnn_fold"] = [next((k for (r, k), train in ct.train_patients.items()
                                 if r == 0 and p in ct.embeddings.index and p not in train), -1) for p in img.obs_names]
    for target, values in ct.outputs[0].items():  # out-of-fold probabilities, comparable across fold networks
        img.obs[f"cnn_{target}"] = values.reindex(img.obs_names).to_numpy(dtype=float)
    img.uns["X_cnn"] = {"model": "CNN CT (MVI + high grade)", "repeat": 0, "epochs": epochs, "width": width,
                        "pooling": "global"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.write_h5ad(dest)
    return manifest, img


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("seeds", nargs="+", type=int)
    p.add_argument("--null", action="store_true")
    args = p.parse_args(argv)
    for s in args.seeds:
        t = time.perf_counter()
        _, img = image_modality(s, null=args.null)
        print(f"seed {s}{' null' if args.null else ''}: {img.shape}, X_cnn {img.obsm['X_cnn'].shape}, "
              f"{(time.perf_counter() - t) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
