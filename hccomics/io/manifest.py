"""The cohort manifest: a YAML file describing every table and image of a data set.

The schema is a set of pydantic models; unknown keys are errors, so a typo never
silently drops a file. Paths are relative to the manifest's folder. See
``data_manifests/SCHEMA.md`` for the documented fields and an example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hccomics.errors import ManifestError

__all__ = [
    "FileRef", "SurvivalEndpoint", "ClinicalTable", "ExpressionTable", "GeneAnnotation", "Tables",
    "Mask", "ImageSeries", "ImagingProtocol", "PathologyTile", "ProgressionImage", "ProgressionSeries", "Manifest",
    "read_manifest", "IMAGE_PHASES", "MASK_LABELS",
]

SHA256 = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file (of the sorted file digests for a folder)")
Phase = Literal["non_contrast", "arterial", "portal_venous", "delayed", "t2_fs", "dwi", "adc", "post_ablation"]
MaskLabel = Literal["liver", "lesion", "lesion_reader_corrected", "ablation_zone"]
Modality = Literal["CT", "MRI"]
IMAGE_PHASES: tuple[str, ...] = get_args(Phase)
MASK_LABELS: tuple[str, ...] = get_args(MaskLabel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Strict):
    """A file (or, for DICOM, a folder) with its checksum."""

    path: str
    sha256: str = SHA256


class SurvivalEndpoint(_Strict):
    """A (time, event) column pair; times are non-negative, events 0 or 1."""

    time: str
    event: str


class ClinicalTable(FileRef):
    """One row per patient (CSV)."""

    id_column: str = "patient_id"
    survival: dict[str, SurvivalEndpoint] = Field(
        default_factory=lambda: {
            "rfs": SurvivalEndpoint(time="rfs_time_months", event="rfs_event"),
            "os": SurvivalEndpoint(time="os_time_months", event="os_event"),
        }
    )
    binary_columns: list[str] = Field(default_factory=lambda: ["mvi", "recurrence_2y"])


class ExpressionTable(FileRef):
    """An expression matrix (CSV): raw counts or log-scale expression."""

    kind: Literal["counts", "log_expression"]
    orientation: Literal["genes_x_samples", "samples_x_genes"] = "genes_x_samples"
    gene_id: Literal["auto", "symbol", "ensembl"] = "auto"


class GeneAnnotation(FileRef):
    """Maps gene identifiers (e.g. versioned Ensembl IDs) to HGNC symbols."""

    id_column: str = "gene_id"
    symbol_column: str = "symbol"


class Tables(_Strict):
    clinical: ClinicalTable
    expression: ExpressionTable | None = None
    gene_annotation: GeneAnnotation | None = None


class Mask(FileRef):
    """A mask on the grid of its series; ``lesion`` masks hold one integer label per lesion (1 = index lesion)."""

    label: MaskLabel


class ImageSeries(FileRef):
    """One image series of one patient: a NIfTI volume or a DICOM folder, with its masks."""

    patient_id: str
    modality: Modality
    phase: Phase
    format: Literal["nifti", "dicom"] = "nifti"
    masks: list[Mask] = Field(default_factory=list)


class ImagingProtocol(_Strict):
    """The acquisition protocol: which phases every examined patient has, per modality.

    A patient with any series of a modality must have each of its declared phases;
    a patient may lack a modality altogether (e.g. no MRI). Phases not declared here
    (e.g. ``post_ablation``) are optional.
    """

    phases: dict[Modality, list[Phase]] = Field(default_factory=dict)
    reference_phase: dict[Modality, Phase] = Field(
        default_factory=dict, description="phase whose grid the masks are drawn on and the others are registered to"
    )

    @model_validator(mode="after")
    def _reference_declared(self) -> ImagingProtocol:
        for mod, ph in self.reference_phase.items():
            if ph not in self.phases.get(mod, []):
                raise ValueError(f"reference phase '{ph}' of {mod} is not among its declared phases {self.phases.get(mod, [])}")
        return self


class PathologyTile(FileRef):
    """One RGB tile (PNG or TIFF) of one patient."""

    patient_id: str
    region: Literal["tumour", "non_tumour"] | None = None
    magnification: float | None = None
    microns_per_pixel: float | None = None


class ProgressionImage(FileRef):
    sample_id: str


class ProgressionSeries(_Strict):
    """Samples in ordered disease stages (not cohort patients), for critical-state detection."""

    expression: ExpressionTable
    samples: FileRef
    stages: list[str] = Field(min_length=2, description="stage names in biological order")
    sample_column: str = "sample_id"
    stage_column: str = "stage"
    images: list[ProgressionImage] = Field(default_factory=list)


class Manifest(_Strict):
    """A cohort: tables, image series, pathology tiles and an optional progression series.

    ``tables`` may be left out only by a progression-only data set (e.g. GSE6764).
    """

    schema_version: Literal[1] = 1
    name: str
    description: str = ""
    tables: Tables | None = None
    imaging: ImagingProtocol | None = None
    images: list[ImageSeries] = Field(default_factory=list)
    pathology: list[PathologyTile] = Field(default_factory=list)
    progression: ProgressionSeries | None = None
    truth: FileRef | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Manifest:
        if self.tables is None and self.progression is None:
            raise ValueError("a manifest needs 'tables' (with a clinical table), a 'progression' series, or both")
        if self.tables is None and (self.images or self.pathology):
            raise ValueError("images and pathology tiles belong to cohort patients: add tables.clinical")
        return self

    def file_refs(self) -> list[tuple[str, FileRef]]:
        """Every file the manifest names, with its location in the manifest."""
        refs: list[tuple[str, FileRef]] = []
        for key in ("clinical", "expression", "gene_annotation") if self.tables is not None else ():
            ref = getattr(self.tables, key)
            if ref is not None:
                refs.append((f"tables.{key}", ref))
        for i, s in enumerate(self.images):
            refs.append((f"images[{i}]", s))
            refs += [(f"images[{i}].masks[{j}]", m) for j, m in enumerate(s.masks)]
        refs += [(f"pathology[{i}]", t) for i, t in enumerate(self.pathology)]
        if self.progression is not None:
            refs += [("progression.expression", self.progression.expression), ("progression.samples", self.progression.samples)]
            refs += [(f"progression.images[{i}]", im) for i, im in enumerate(self.progression.images)]
        if self.truth is not None:
            refs.append(("truth", self.truth))
        return refs


def _format_pydantic(err: ValidationError, source: Path) -> list[str]:
    out = []
    for e in err.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"]).replace(".[", "[")
        if e["type"] == "extra_forbidden":
            out.append(f"{source}: unknown key '{e['loc'][-1]}' at {loc}; check its spelling against data_manifests/SCHEMA.md")
        elif e["type"] == "missing":
            out.append(f"{source}: required key missing: {loc}")
        else:
            out.append(f"{source}: {loc}: {e['msg']} (found {e.get('input')!r})")
    return out


def read_manifest(path: str | Path) -> tuple[Manifest, Path]:
    """Parse and schema-check a manifest; return it with the folder its paths are relative to.

    Raises
    ------
    ManifestError
        With every schema problem listed, when the file is not valid YAML or breaks the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist; pass the path of a cohort YAML (see data_manifests/)")
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path} must hold a mapping at the top level, found {type(raw).__name__}")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = _format_pydantic(exc, path)
        raise ManifestError(f"{path} does not follow the manifest schema ({len(problems)} problem(s))", problems) from None
    return manifest, path.resolve().parent
