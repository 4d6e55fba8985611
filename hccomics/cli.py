"""The ``hccomics`` command: validate a manifest, run the notebook suite, run the demo."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from hccomics import __version__
from hccomics.settings import PROFILES

__all__ = ["main"]

# public data set -> converter in hccomics.io.public
CONVERTERS = {"tcga-lihc": "convert_tcga_lihc", "gse6764": "convert_gse6764", "lits": "convert_lits",
              "hcc-tace-seg": "convert_hcc_tace_seg"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hccomics",
        description="Multimodal HCC analysis: validate data manifests and run the notebook suite into an offline report.",
    )
    p.add_argument("--version", action="version", version=f"hccomics {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    v = sub.add_parser("validate", help="check a cohort manifest and its files before any compute")
    v.add_argument("manifest", type=Path)
    v.add_argument("--no-checksums", action="store_true", help="skip hashing files (quick look only)")

    def run_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--profile", choices=PROFILES, default="demo", help="parameter profile (default: demo)")
        sp.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 00,01")
        sp.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="notebook parameter (repeatable); values parse as JSON when they can")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
        sp.add_argument("--notebooks", type=Path, default=None, help="folder of NN_*.ipynb (default: the package's)")
        sp.add_argument("--force", action="store_true", help="re-run notebooks even when unchanged")

    r = sub.add_parser("run", help="execute the notebooks on a manifest and write RUN_DIR/report.html")
    r.add_argument("manifest", type=Path)
    r.add_argument("--out", type=Path, required=True, help="run folder (created; re-runs resume)")
    run_options(r)

    d = sub.add_parser("demo", help="generate (or reuse) the demo cohort, then run the suite on it")
    d.add_argument("--out", type=Path, default=None, help="run folder (default: runs/demo-PROFILE)")
    run_options(d)

    rep = sub.add_parser("report", help="rebuild RUN_DIR/report.html from a run folder")
    rep.add_argument("run_dir", type=Path)

    dc = sub.add_parser("dicom2nifti", help="convert one DICOM series to NIfTI, de-identified (PS3.15 basic profile)")
    dc.add_argument("src", type=Path, help="folder (searched recursively) or file of the series")
    dc.add_argument("out", type=Path, help="output .nii.gz (a de-identified .json sidecar is written beside it)")
    dc.add_argument("--patient-id", required=True, help="pseudonym to record for this patient (never the DICOM PatientID)")
    dc.add_argument("--series-uid", default=None, help="which series, when the folder holds several")

    cv = sub.add_parser("convert", help="turn a public data set in its native layout into a cohort manifest")
    cv.add_argument("dataset", choices=sorted(CONVERTERS), help="data set (see data_manifests/public/)")
    cv.add_argument("src", type=Path, help="folder holding the downloaded files")
    cv.add_argument("out", type=Path, help="folder to write the tidy files and manifest.yaml into")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    from hccomics.errors import HccomicsError

    try:
        return _dispatch(args)
    except HccomicsError as exc:
        print(f"hccomics {args.command}: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "validate":
        from hccomics.io import validate_manifest

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = validate_manifest(args.manifest, verify_checksums=not args.no_checksums)
        print(report, file=sys.stdout if report.ok else sys.stderr)
        return 0 if report.ok else 1
    if args.command == "dicom2nifti":
        from hccomics.io.dicom import dicom_to_nifti

        print(dicom_to_nifti(args.src, args.out, patient_id=args.patient_id, series_uid=args.series_uid))
        return 0
    if args.command == "convert":
        import hccomics.io.public as public

        print(getattr(public, CONVERTERS[args.dataset])(args.src, args.out))
        return 0
    if args.command == "report":
        from hccomics.pipeline import write_report

        print(write_report(args.run_dir))
        return 0

    from hccomics.pipeline import parse_parameters, run_suite

    params = parse_parameters(args.param)
    only = args.only.split(",") if args.only else None
    if args.command == "demo":
        from hccomics.datasets import demo_cohort_dir, make_demo_cohort

        manifest = make_demo_cohort(demo_cohort_dir(args.profile, seed=args.seed), profile=args.profile, seed=args.seed)
        out = args.out or Path("runs") / f"demo-{args.profile}"
    else:
        manifest, out = args.manifest, args.out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        report = run_suite(manifest, out, profile=args.profile, only=only, parameters=params, seed=args.seed,
                           device=args.device, notebooks_dir=args.notebooks, force=args.force)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
