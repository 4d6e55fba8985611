"""Parameter values per profile: a profile only changes parameters (DESIGN §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["PROFILE_PARAMETERS", "notebook_parameters"]

# applied to a notebook only when its parameters cell defines the name; -p on the command line wins
PROFILE_PARAMETERS: dict[str, dict[str, Any]] = {
    "smoke": {"n_repeats": 1, "deepsurv_epochs": 60, "n_boot": 200, "permutation_num": 200, "n_permutations": 19,
              "feature_null": 19, "image_epochs": 3, "biotip_permutations": 19},
    "demo": {},
    "full": {},
}


def notebook_parameters(notebook: Path, profile: str, base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Parameters to inject: the run's base values, the profile's values the notebook knows, then the user's."""
    import papermill as pm

    known = set(pm.inspect_notebook(str(notebook)))
    profile_values = {k: v for k, v in PROFILE_PARAMETERS.get(profile, {}).items() if k in known}
    return {**base, **profile_values, **user}
