"""Load a validated cohort into MuData / AnnData."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from hccomics.io.checks import gene_id_kind, read_expression
from hccomics.io.manifest import ExpressionTable, Manifest, read_manifest
from hccomics.io.validate import validate_manifest

__all__ = ["load_cohort", "load_progression", "read_clinical", "image_table"]

logger = logging.getLogger(__name__)


def read_clinical(manifest: str | Path) -> pd.DataFrame:
    """Return the clinical table indexed by patient ID, with binary columns as nullable integers."""
    man, root = read_manifest(manifest)
    return _read_clinical(man, root)


def _read_clinical(man: Manifest, root: Path) -> pd.DataFrame:
    if man.tables is None:
        from hccomics.errors import ManifestError

        raise ManifestError(f"manifest '{man.name}' has no 'tables' section (a progression-only data set); "
                            "use load_progression, or add tables.clinical to load it as a cohort")
    clin = man.tables.clinical
    df = pd.read_csv(root / clin.path, dtype={clin.id_column: str}).set_index(clin.id_column)
    df.index.name = "patient_id"
    for col in clin.binary_columns:
        if col in df:
            df[col] = pd.to_numeric(df[col]).astype("Int64")
    for col in df.select_dtypes(include="object").columns:
        df[col] = df[col].astype("category")
    return df


def _expression_adata(spec: ExpressionTable, path: Path, annotation: pd.Series | None) -> ad.AnnData:
    df = read_expression(path, spec.orientation).apply(pd.to_numeric)
    var = pd.DataFrame(index=pd.Index(df.columns, name="gene_id"))
    kind = gene_id_kind(var.index)
    var["gene_id_kind"] = kind
    if annotation is not None:
        key = var.index.str.replace(r"\.\d+$", "", regex=True) if kind == "ensembl_versioned" else var.index
        var["symbol"] = pd.Series(key, index=var.index).map(annotation).to_numpy()
        logger.info("mapped %d of %d gene IDs to symbols", var["symbol"].notna().sum(), len(var))
    elif kind == "symbol":
        var["symbol"] = var.index
    if spec.kind == "counts":
        counts = df.to_numpy(dtype=np.int64)
        adata = ad.AnnData(counts.astype(np.float32), obs=pd.DataFrame(index=df.index), var=var)
        adata.layers["counts"] = counts
    else:
        adata = ad.AnnData(df.to_numpy(dtype=np.float32), obs=pd.DataFrame(index=df.index), var=var)
        adata.layers["log_expression"] = adata.X.copy()
    adata.uns["expression_kind"] = spec.kind
    return adata


def _annotation(man: Manifest, root: Path) -> pd.Series | None:
    ann = man.tables.gene_annotation if man.tables is not None else None
    if ann is None:
        return None
    df = pd.read_csv(root / ann.path, dtype=str)
    ids = df[ann.id_column].str.replace(r"\.\d+$", "", regex=True)
    return pd.Series(df[ann.symbol_column].to_numpy(), index=ids).groupby(level=0).first()


def load_cohort(manifest: str | Path, *, validate: bool = True):
    """Load the patient-level modalities of a cohort as a MuData.

    Parameters
    ----------
    manifest
        Path of the cohort YAML.
    validate
        Run :func:`~hccomics.io.validate_manifest` first and raise on any error (default).

    Returns
    -------
    mudata.MuData
        ``.obs`` is the clinical table (one row per patient). Modalities: ``clinical``
        (every patient, no features) and ``rna`` (patients with expression; raw counts in
        ``layers['counts']``). ``.uns['manifest']`` records the manifest's name, path and
        file checksums. Image series stay on disk: see :func:`image_table`.

    Examples
    --------
    >>> from hccomics.datasets import make_demo_cohort
    >>> import tempfile
    >>> mdata = load_cohort(make_demo_cohort(tempfile.mkdtemp(), profile="smoke"))
    >>> sorted(mdata.mod), mdata["rna"].layers["counts"].dtype.kind
    (['clinical', 'rna'], 'i')
    """
    import mudata as md

    man, root = read_manifest(manifest)
    checksums: dict[str, str] = {}
    if validate:
        with warnings.catch_warnings(record=True):
            report = validate_manifest(manifest)
        report.raise_if_errors()
        for w in report.warnings:
            logger.warning(w)
        checksums = report.checksums
    clinical = _read_clinical(man, root)
    assert man.tables is not None  # _read_clinical refused a manifest without tables
    mods = {"clinical": ad.AnnData(np.zeros((len(clinical), 0), dtype=np.float32), obs=pd.DataFrame(index=clinical.index))}
    if man.tables.expression is not None:
        rna = _expression_adata(man.tables.expression, root / man.tables.expression.path, _annotation(man, root))
        rna = rna[rna.obs_names.isin(clinical.index)].copy()
        mods["rna"] = rna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mudata's pull_on_update notice
        mdata = md.MuData(mods)
    mdata.obs = mdata.obs.join(clinical)
    mdata.uns["manifest"] = {"name": man.name, "path": str(Path(manifest)), "checksums": checksums}
    return mdata


def load_progression(manifest: str | Path, *, validate: bool = True) -> ad.AnnData:
    """Load the progression series: samples x features with an ordered ``obs['stage']``.

    When the manifest lists progression images, ``obs['image_path']`` holds each sample's
    image path (None for a sample without one).

    Raises
    ------
    ManifestError
        When the manifest has no progression series or fails validation.
    """
    from hccomics.errors import ManifestError

    man, root = read_manifest(manifest)
    prog = man.progression
    if prog is None:
        raise ManifestError(f"{manifest} has no 'progression' section; add one to use the progression series")
    if validate:
        with warnings.catch_warnings(record=True):
            validate_manifest(manifest).raise_if_errors()
    adata = _expression_adata(prog.expression, root / prog.expression.path, _annotation(man, root))
    samples = pd.read_csv(root / prog.samples.path, dtype={prog.sample_column: str, prog.stage_column: str})
    samples = samples.set_index(prog.sample_column)
    adata.obs = samples.reindex(adata.obs_names)
    adata.obs["stage"] = pd.Categorical(adata.obs[prog.stage_column], categories=prog.stages, ordered=True)
    adata.uns["stages"] = list(prog.stages)
    if prog.images:  # images stay on disk: their paths travel with the samples
        paths = {im.sample_id: str(root / im.path) for im in prog.images}
        adata.obs["image_path"] = [paths.get(s) for s in adata.obs_names]
    return adata


def image_table(manifest: str | Path) -> pd.DataFrame:
    """One row per image series (patient, modality, phase, absolute path, masks by label)."""
    man, root = read_manifest(manifest)
    rows = []
    for s in man.images:
        row = {"patient_id": s.patient_id, "modality": s.modality, "phase": s.phase, "format": s.format,
               "path": str(root / s.path)}
        row.update({f"mask_{m.label}": str(root / m.path) for m in s.masks})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["patient_id", "modality", "phase", "format", "path"])
