"""The synthetic demo cohort: files, a manifest and truth.json, deterministic for a seed."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from hccomics._options import check_option
from hccomics.datasets.demo_anatomy import Grid
from hccomics.datasets.demo_clinical import HazardModel, simulate_clinical
from hccomics.datasets.demo_expression import ExpressionModel, simulate_counts
from hccomics.datasets.demo_pathology import draw_centres, simulate_pathology
from hccomics.datasets.demo_progression import STAGES, simulate_progression
from hccomics.datasets.demo_progression_images import simulate_progression_images
from hccomics.datasets.demo_radiology import CT_REFERENCE, MRI_REFERENCE, simulate_radiology
from hccomics.datasets.demo_radiology_model import CT_PHASES, MRI_PHASES
from hccomics.io.files import atomic_path, atomic_write_text, sha256sum
from hccomics.settings import PROFILES

__all__ = ["DEMO_PROFILES", "DemoProfile", "demo_cohort_dir", "make_demo_cohort"]

logger = logging.getLogger(__name__)
# bumped whenever the generator's output changes, so that cached cohorts are regenerated
GENERATOR_VERSION = 6


@dataclass(frozen=True)
class DemoProfile:
    """Sizes of the demo cohort; fixed per profile so that the suite's time budgets hold."""

    n_patients: int
    n_genes: int
    progression_features: int
    progression_samples_per_stage: tuple[int, int]
    dnb_module_size: int
    imaging_patients: int
    imaging_shape: tuple[int, int, int]
    imaging_spacing_mm: tuple[float, float, float]
    tile_size: int
    tiles_per_patient: tuple[int, int]  # tumour, non-tumour
    progression_image_size: int


DEMO_PROFILES: dict[str, DemoProfile] = {
    "smoke": DemoProfile(40, 400, 150, (8, 8), 12, 6, (64, 64, 24), (2.0, 2.0, 4.0), 64, (1, 1), 32),
    "demo": DemoProfile(200, 5000, 1000, (10, 15), 20, 60, (128, 128, 48), (1.5, 1.5, 3.0), 128, (2, 1), 48),
    "full": DemoProfile(600, 7500, 2000, (12, 15), 30, 200, (192, 192, 80), (1.0, 1.0, 2.0), 256, (4, 2), 64),
}


def demo_cohort_dir(profile: str = "demo", *, seed: int = 0, null: bool = False) -> Path:
    """Cache folder of the demo cohort for a profile and seed (``$HCCOMICS_CACHE/demo/...``)."""
    from hccomics.settings import cache_dir

    return cache_dir() / "demo" / f"{profile}-seed{seed}{'-null' if null else ''}"


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp)


def make_demo_cohort(
    out_dir: str | Path,
    *,
    profile: str = "demo",
    seed: int = 0,
    null: bool = False,
    critical_stage: str = "low_grade_dysplastic_nodule",
    images: bool = True,
) -> Path:
    """Generate the demo HCC cohort into ``out_dir`` and return its manifest path.

    Writes the tables (``clinical.csv``, ``expression_counts.csv`` genes x patients,
    ``progression_expression.csv``, ``progression_samples.csv``), the imaging of a subset
    of patients (``imaging/<patient>/``: four-phase CT, T2 / DWI / ADC MRI for most, a
    post-ablation CT for ablation cases, NIfTI with liver and lesion masks on the reference
    phase), H&E-like tiles (``pathology/``), one nodule image per progression sample
    (``progression_images/``), the truth (``truth.json``, ``truth_genes.csv``,
    ``truth_patients.csv``, ``truth_lesions.csv``, ``truth_imaging.json``,
    ``truth_progression_samples.csv``) and ``manifest.yaml``. The same seed and
    profile give byte-identical files. If ``out_dir`` already holds a cohort made with
    the same seed, profile and options whose files match their checksums, it is reused.

    Parameters
    ----------
    out_dir
        Folder to write into (created).
    profile
        ``"smoke"`` (tiny, for CI), ``"demo"`` (about 200 patients and 5,000 genes) or
        ``"full"``; see :data:`DEMO_PROFILES`.
    seed
        Seed of every random draw.
    null
        Generate the same cohort with no planted effects, for calibration checks.
    critical_stage
        Stage of the progression series just before the transition.
    images
        Write the radiology, pathology tiles and progression nodule images (the bulk of the
        time and disk). ``False`` gives the tables only, identical to those written with
        images, for checks that need no images.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> manifest = make_demo_cohort(tempfile.mkdtemp(), profile="smoke", seed=1)
    >>> truth = json.loads((manifest.parent / "truth.json").read_text())
    >>> "IL6" in truth["expression"]["planted_genes"], truth["progression"]["critical_stage"]
    (True, 'low_grade_dysplastic_nodule')
    """
    check_option("profile", profile, PROFILES)
    check_option("critical_stage", critical_stage, STAGES[1:-1])
    out = Path(out_dir)
    params = {"profile": profile, "seed": int(seed), "null": bool(null), "critical_stage": critical_stage,
              "images": bool(images), "generator_version": GENERATOR_VERSION}
    manifest_path = out / "manifest.yaml"
    if _reusable(out, params):
        logger.info("reusing the demo cohort in %s", out)
        return manifest_path
    sizes = DEMO_PROFILES[profile]
    rng = np.random.default_rng(seed)
    # independent streams per part; spawned children depend only on their index, so parts
    # added later leave the earlier parts as they were
    rng_clin, rng_expr, rng_prog, rng_abl, rng_img, rng_path, rng_prog_img = (
        np.random.default_rng(s) for s in rng.bit_generator.seed_seq.spawn(7))
    logger.info("generating the %s demo cohort (seed %d) in %s", profile, seed, out)

    clinical, activity, clin_truth = simulate_clinical(sizes.n_patients, rng=rng_clin, hazard=HazardModel(), null=null,
                                                       rng_ablation=rng_abl)
    counts, expr_truth, gene_truth = simulate_counts(
        activity, clinical["edmondson_grade"].to_numpy(), clinical["recurrence_2y"],
        n_genes=sizes.n_genes, model=ExpressionModel(), rng=rng_expr, null=null,
    )
    prog_expr, prog_samples, prog_truth = simulate_progression(
        list(counts.columns), n_features=sizes.progression_features, module_size=sizes.dnb_module_size,
        samples_per_stage=sizes.progression_samples_per_stage, critical_stage=critical_stage, rng=rng_prog, null=null,
    )
    clinical.insert(clinical.columns.get_loc("treatment") + 1, "centre", draw_centres(len(clinical), rng=rng_path))
    mam = pd.Series(clin_truth["ablation"]["minimal_ablative_margin_mm"], dtype=float).reindex(clinical.index)

    out.mkdir(parents=True, exist_ok=True)
    series: list[dict] = []
    tiles: list[dict] = []
    prog_images: list[dict] = []
    extra_truth: dict = {}
    if images:
        grid = Grid(sizes.imaging_shape, sizes.imaging_spacing_mm)
        series, lesion_truth, img_truth = simulate_radiology(clinical, mam, out, n_patients=sizes.imaging_patients,
                                                             grid=grid, rng=rng_img, null=null)
        tiles, path_truth = simulate_pathology(
            clinical, clinical["centre"], out, rng=rng_path, tile_size=sizes.tile_size,
            tumour_tiles=sizes.tiles_per_patient[0], non_tumour_tiles=sizes.tiles_per_patient[1], null=null,
        )
        prog_images, prog_img_truth = simulate_progression_images(
            prog_samples, critical_stage=critical_stage, out_dir=out, size=sizes.progression_image_size,
            spacing_mm=0.5, rng=rng_prog_img, null=null,
        )
        # per-sample truth (drawn image attributes) goes to a table, not truth.json
        attributes = pd.DataFrame.from_dict(prog_img_truth.pop("sample_attributes"), orient="index")
        _write_csv(lesion_truth.set_index(["patient_id", "lesion"]), out / "truth_lesions.csv")
        atomic_write_text(out / "truth_imaging.json", json.dumps(img_truth["patients"], indent=1, sort_keys=True))
        extra_truth = {"imaging": img_truth["summary"], "pathology": path_truth, "progression_images": prog_img_truth}
    else:
        attributes = pd.DataFrame(index=prog_samples.index)
    truth_progression_samples = prog_samples[["dominant_mode"]].round(6).join(attributes)
    prog_samples = prog_samples.drop(columns="dominant_mode")
    patients_truth = pd.DataFrame({"pi3k_akt_activity": activity.round(6), "minimal_ablative_margin_mm": mam},
                                  index=clinical.index)
    files = {
        "clinical.csv": clinical,
        "expression_counts.csv": counts.T,
        "progression_expression.csv": prog_expr.T,
        "progression_samples.csv": prog_samples,
        "truth_genes.csv": gene_truth,
        "truth_patients.csv": patients_truth,
        "truth_progression_samples.csv": truth_progression_samples,
    }
    for name, df in files.items():
        _write_csv(df, out / name)
    truth = {
        "generator": params,
        "profile_sizes": asdict(sizes),
        "clinical": clin_truth,
        "expression": expr_truth,
        "progression": {**prog_truth, **({"images": extra_truth.pop("progression_images")} if images else {})},
        **extra_truth,
        "files": {"truth_genes.csv": "per-gene base mean, dispersion, planted effects and implied log2 fold change",
                  "truth_patients.csv": "latent PI3K-Akt activity and planted minimal ablative margin per patient",
                  "truth_lesions.csv": "every drawn lesion: centre, planted diameter, volume, irregularity, necrosis, CNR",
                  "truth_imaging.json": "per imaged patient: phase transforms, displacement, fibrosis, band strength",
                  "truth_progression_samples.csv": "dominant latent mode and drawn nodule-image attributes of each "
                                                   "progression sample"},
    }
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=1, sort_keys=True))
    manifest = _manifest(out, profile=profile, seed=seed, null=null, series=series, tiles=tiles, prog_images=prog_images)
    atomic_write_text(manifest_path, yaml.safe_dump(manifest, sort_keys=False))
    atomic_write_text(out / ".demo_params.json", json.dumps(params, sort_keys=True))
    return manifest_path


def _manifest(out: Path, *, profile: str, seed: int, null: bool, series: list[dict], tiles: list[dict],
              prog_images: list[dict]) -> dict:
    def ref(name: str, **extra: object) -> dict:
        return {"path": name, "sha256": sha256sum(out / name), **extra}

    images = [{**ref(s["path"]), "patient_id": s["patient_id"], "modality": s["modality"], "phase": s["phase"],
               "masks": [ref(m["path"], label=m["label"]) for m in s["masks"]]} for s in series]
    manifest = {
        "schema_version": 1,
        "name": f"hccomics demo cohort ({profile}, seed {seed}{', null' if null else ''})",
        "description": "Synthetic HCC cohort with planted ground truth (truth.json); generated by "
                       "hccomics.datasets.make_demo_cohort.",
        "tables": {
            "clinical": ref("clinical.csv", binary_columns=["mvi", "recurrence_2y", "local_recurrence"]),
            "expression": ref("expression_counts.csv", kind="counts", orientation="genes_x_samples", gene_id="symbol"),
        },
        "imaging": {"phases": {"CT": list(CT_PHASES), "MRI": list(MRI_PHASES)},
                    "reference_phase": {"CT": CT_REFERENCE, "MRI": MRI_REFERENCE}},
        "images": images,
        "pathology": [{**ref(t["path"]), **{k: v for k, v in t.items() if k != "path"}} for t in tiles],
        "progression": {
            "expression": ref("progression_expression.csv", kind="log_expression", orientation="genes_x_samples",
                              gene_id="symbol"),
            "samples": ref("progression_samples.csv"),
            "stages": list(STAGES),
            "images": [{**ref(im["path"]), "sample_id": im["sample_id"]} for im in prog_images],
        },
        "truth": ref("truth.json"),
    }
    if not series:  # tables only
        for key in ("imaging", "images", "pathology"):
            manifest.pop(key)
        manifest["progression"].pop("images")
    return manifest


def _reusable(out: Path, params: dict) -> bool:
    marker = out / ".demo_params.json"
    if not (marker.is_file() and (out / "manifest.yaml").is_file()):
        return False
    if json.loads(marker.read_text()) != params:
        return False
    from hccomics.io.manifest import read_manifest

    try:
        man, root = read_manifest(out / "manifest.yaml")
    except Exception:  # a damaged cache is regenerated, never trusted
        logger.info("the cached demo cohort in %s is damaged; regenerating", out)
        return False
    return all((root / r.path).is_file() and sha256sum(root / r.path) == r.sha256 for _, r in man.file_refs())
