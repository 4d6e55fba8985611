"""Parameter values per profile: a profile only changes parameters (DESIGN §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["PROFILE_PARAMETERS", "notebook_parameters"]

# applied to a notebook only when its parameters cell defines the name; -p on the command line wins
PROFILE_PARAMETERS: dict[str, dict[str, Any]] = {
    "smoke": {"n_repeats": 1, "deepsurv_epochs": 60, "n_boot": 200, "permutation_num": 200, "n_permutations": 19,
              "feature_null": 19, "image_epochs": 3, "biotip_permutations": 19,
              # 04 lesion segmentation: the smoke cohort's coarser grid, a few epochs
              "n_folds": 2, "liver_epochs": 3, "lesion_epochs": 3, "variant_epochs": 2, "val_every": 3, "coarse_spacing": [4.0, 4.0, 8.0],
              "fine_spacing": [2.0, 2.0, 4.0], "patch_size": [32, 32, 16],
              # 06 MVI prediction: small crops on the smoke grid, two epochs
              "crop_spacing": [2.0, 2.0, 4.0], "crop_size": [16, 16, 8], "cnn_epochs": 2, "occlusion_patients": 1,
              # 08 graph fusion: short training
              "gnn_epochs": 30},
    "demo": {},
    # GPU, real volume sizes (the full demo profile is 192 x 192 x 80 at 1 x 1 x 2 mm)
    "full": {"n_folds": 5, "liver_epochs": 60, "lesion_epochs": 200, "variant_epochs": 100, "coarse_spacing": [2.0, 2.0, 4.0],
             "fine_spacing": [1.0, 1.0, 2.0], "patch_size": [128, 128, 64], "lesion_channels": [32, 64, 128, 256],
             "variant_channels": [16, 32, 64, 128], "crop_spacing": [1.0, 1.0, 2.0], "crop_size": [64, 64, 32],
             "cnn_epochs": 100, "cnn_width": 0.5, "cnn_repeats": 3, "variant_folds": 5, "variant_samples": 2},
}


def notebook_parameters(notebook: Path, profile: str, base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Parameters to inject: the run's base values, the profile's values the notebook knows, then the user's."""
    import papermill as pm

    known = set(pm.inspect_notebook(str(notebook)))
    profile_values = {k: v for k, v in PROFILE_PARAMETERS.get(profile, {}).items() if k in known}
    return {**base, **profile_values, **user}
