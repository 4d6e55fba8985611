"""Validate a cohort manifest before any compute: schema, files, checksums, table contents, IDs."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hccomics.errors import ManifestError, ModalityCoverageWarning
from hccomics.io.checks import check_clinical, check_expression, read_expression
from hccomics.io.files import sha256sum
from hccomics.io.image_checks import check_images
from hccomics.io.manifest import FileRef, Manifest, read_manifest

__all__ = ["ValidationReport", "validate_manifest"]

logger = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    """What :func:`validate_manifest` found.

    Attributes
    ----------
    manifest_path
        The manifest checked.
    errors
        Problems that stop a run, each naming file and row.
    warnings
        Facts a user should know that do not stop a run (patients in one modality only).
    modalities
        Patient IDs per modality (``clinical``, ``rna``, ``img``, ``path``).
    checksums
        sha256 of every file named by the manifest, keyed by its manifest path.
    """

    manifest_path: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    modalities: dict[str, list[str]] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_if_errors(self) -> None:
        """Raise :class:`ManifestError` listing every error, if there is any."""
        if self.errors:
            raise ManifestError(
                f"{self.manifest_path} failed validation with {len(self.errors)} error(s); nothing was computed",
                self.errors,
            )

    def availability(self) -> pd.DataFrame:
        """Patients x modalities table of booleans (True where the patient has that modality)."""
        patients = sorted(set().union(*self.modalities.values())) if self.modalities else []
        return pd.DataFrame(
            {m: [p in set(ids) for p in patients] for m, ids in self.modalities.items()},
            index=pd.Index(patients, name="patient_id"),
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy table of the findings: one row per error or warning."""
        rows = [("error", e) for e in self.errors] + [("warning", w) for w in self.warnings]
        return pd.DataFrame(rows, columns=["level", "message"])

    def __str__(self) -> str:
        lines = [f"{self.manifest_path}: {'OK' if self.ok else 'INVALID'} "
                 f"({len(self.errors)} error(s), {len(self.warnings)} warning(s))"]
        lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  warning: {w}" for w in self.warnings]
        counts = ", ".join(f"{m}: {len(ids)}" for m, ids in self.modalities.items())
        if counts:
            lines.append(f"  patients per modality: {counts}")
        return "\n".join(lines)


def _check_file(root: Path, where: str, ref: FileRef, report: ValidationReport, *, verify: bool) -> Path | None:
    path = root / ref.path
    if not path.exists():
        report.errors.append(f"{where}: file {path} does not exist; fix the path (relative to the manifest's folder)")
        return None
    if verify:
        digest = sha256sum(path)
        report.checksums[ref.path] = digest
        if digest != ref.sha256:
            report.errors.append(
                f"{where}: checksum mismatch for {path}: manifest says {ref.sha256[:12]}..., file has {digest[:12]}...; "
                "the file changed since the manifest was written (re-create it or update the sha256)"
            )
    return path


def validate_manifest(manifest: str | Path, *, verify_checksums: bool = True) -> ValidationReport:
    """Check a manifest and everything it names; collect every problem instead of stopping at the first.

    Parameters
    ----------
    manifest
        Path of the cohort YAML.
    verify_checksums
        Hash every file and compare with its ``sha256`` (default). Turn off only for
        a quick look at large image collections.

    Returns
    -------
    ValidationReport
        ``report.ok`` is False when there is any error. Schema errors raise
        :class:`~hccomics.errors.ManifestError` directly, since nothing else can be checked then.

    Examples
    --------
    >>> from hccomics.datasets import make_demo_cohort
    >>> import tempfile
    >>> m = make_demo_cohort(tempfile.mkdtemp(), profile="smoke")
    >>> validate_manifest(m).ok
    True
    """
    man, root = read_manifest(manifest)
    report = ValidationReport(Path(manifest))
    files = {where: _check_file(root, where, ref, report, verify=verify_checksums) for where, ref in man.file_refs()}
    _check_tables(man, files, report)
    verified = {ref.sha256 for _, ref in man.file_refs() if report.checksums.get(ref.path) == ref.sha256}
    report.errors += check_images(man, root, verified=verified, source=manifest)
    _check_cross_modality(man, report)
    for w in report.warnings:
        warnings.warn(w, ModalityCoverageWarning, stacklevel=2)
    return report


def _check_tables(man: Manifest, files: dict[str, Path | None], report: ValidationReport) -> None:
    if man.tables is not None:
        _check_cohort_tables(man, files, report)
    _check_progression(man, files, report)


def _check_cohort_tables(man: Manifest, files: dict[str, Path | None], report: ValidationReport) -> None:
    assert man.tables is not None  # narrowed by the caller
    clin = man.tables.clinical
    path = files["tables.clinical"]
    if path is not None:
        df = pd.read_csv(path, dtype={clin.id_column: str})
        report.errors += check_clinical(
            df, path, id_column=clin.id_column,
            survival={k: (v.time, v.event) for k, v in clin.survival.items()},
            binary_columns=clin.binary_columns,
        )
        if clin.id_column in df:
            report.modalities["clinical"] = sorted(df[clin.id_column].dropna().astype(str).unique())
    ann = man.tables.gene_annotation
    if ann is not None and files.get("tables.gene_annotation") is not None:
        cols = pd.read_csv(files["tables.gene_annotation"], nrows=0).columns
        for col in (ann.id_column, ann.symbol_column):
            if col not in cols:
                report.errors.append(f"{files['tables.gene_annotation']}: column '{col}' is missing (columns: {list(cols)[:10]}); "
                                     "set tables.gene_annotation.id_column / symbol_column")
    expr = man.tables.expression
    if expr is not None and files["tables.expression"] is not None:
        df = read_expression(files["tables.expression"], expr.orientation)
        report.errors += check_expression(df, files["tables.expression"], kind=expr.kind, gene_id=expr.gene_id)
        report.modalities["rna"] = sorted(df.index.unique())
    if man.images:
        report.modalities["img"] = sorted({s.patient_id for s in man.images})
        seen = Counter((s.patient_id, s.modality, s.phase) for s in man.images)
        for key, n in seen.items():
            if n > 1:
                report.errors.append(f"images: patient {key[0]} has {n} {key[1]} series for phase '{key[2]}'; keep one")
    if man.pathology:
        report.modalities["path"] = sorted({t.patient_id for t in man.pathology})


def _check_progression(man: Manifest, files: dict[str, Path | None], report: ValidationReport) -> None:
    prog = man.progression
    if prog is not None and files["progression.expression"] is not None:
        expr_df = read_expression(files["progression.expression"], prog.expression.orientation)
        report.errors += check_expression(expr_df, files["progression.expression"], kind=prog.expression.kind,
                                          gene_id=prog.expression.gene_id)
        spath = files["progression.samples"]
        if spath is not None:
            sdf = pd.read_csv(spath, dtype={prog.sample_column: str, prog.stage_column: str})
            for col in (prog.sample_column, prog.stage_column):
                if col not in sdf:
                    report.errors.append(f"{spath}: column '{col}' is missing")
            if prog.sample_column in sdf and prog.stage_column in sdf:
                bad = ~sdf[prog.stage_column].isin(prog.stages)
                if bad.any():
                    report.errors.append(
                        f"{spath}: stages {sorted(set(sdf.loc[bad, prog.stage_column].astype(str)))} are not among "
                        f"progression.stages {prog.stages} (lines {[i + 2 for i in sdf.index[bad][:5]]})"
                    )
                missing = sorted(set(expr_df.index) ^ set(sdf[prog.sample_column]))
                if missing:
                    report.errors.append(f"{spath}: samples in only one of the sample table and the expression table: {missing[:5]}")


def _check_cross_modality(man: Manifest, report: ValidationReport) -> None:
    mods = report.modalities
    if len(mods) < 2:
        return
    single = {m: sorted(set(ids) - set().union(*(set(v) for k, v in mods.items() if k != m))) for m, ids in mods.items()}
    for m, ids in single.items():
        if ids:
            report.warnings.append(
                f"{len(ids)} patient(s) present in modality '{m}' only: {ids[:5]}{' ...' if len(ids) > 5 else ''}"
            )
    if "clinical" in mods:
        clinical = set(mods["clinical"])
        for m, ids in mods.items():
            orphans = sorted(set(ids) - clinical - set(single[m]))
            if m != "clinical" and orphans:
                report.warnings.append(
                    f"{len(orphans)} patient(s) of modality '{m}' have no clinical row and are left out of the cohort: {orphans[:5]}"
                )
