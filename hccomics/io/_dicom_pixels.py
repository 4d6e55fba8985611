"""Decode the pixel data of a checked DICOM series with pydicom and stack it in NIfTI order (internal)."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID

from hccomics.errors import DataValidationError
from hccomics.io._dicom_series import Geometry, SeriesFiles

# extra decoders pydicom needs, by transfer syntax family (pydicom decodes native and RLE data itself)
_DECODER_HINTS = {
    "JPEG 2000": "pip install pylibjpeg pylibjpeg-openjpeg",
    "JPEG-LS": "pip install pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",
    "JPEG": "pip install pylibjpeg pylibjpeg-libjpeg",
    "RLE": "pip install pylibjpeg pylibjpeg-rle",
}


def _check_decodable(series: SeriesFiles) -> None:
    syntaxes = {str(getattr(getattr(h, "file_meta", None), "TransferSyntaxUID", "") or "") for h in series.headers}
    for ts in sorted(syntaxes):
        if not ts:
            continue
        uid = UID(ts)
        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            raise DataValidationError(
                f"{series.describe()}: pydicom has no decoder for transfer syntax {uid.name} ({ts}); decompress the files "
                "first (e.g. gdcmconv --raw, or dcmdjpeg) or install python-gdcm"
            ) from None
        if not decoder.is_available:
            family = next((k for k in _DECODER_HINTS if k in uid.name), None)
            hint = _DECODER_HINTS.get(family, "pip install python-gdcm") if family else "pip install python-gdcm"
            raise DataValidationError(
                f"{series.describe()}: its pixel data use the compressed transfer syntax {uid.name} ({ts}), which "
                f"needs a decoder that is not installed. Install one: {hint}, or pip install python-gdcm "
                f"(pydicom reports: {'; '.join(decoder.missing_dependencies)})"
            )


def stack_pixels(series: SeriesFiles, geometry: Geometry) -> tuple[np.ndarray, bool]:
    """Decode every frame with pydicom, apply the modality rescale, and stack in NIfTI order (i, j, k).

    Returns the float32 volume and whether a rescale (slope / intercept or modality LUT) was applied.
    """
    _check_decodable(series)
    slot = {(fr.file, fr.frame): k for k, fr in enumerate(geometry.frames)}
    volume = np.empty((geometry.columns, geometry.rows, len(geometry.frames)), dtype=np.float32)
    rescaled = False
    for index, path in enumerate(series.files):
        ds = pydicom.dcmread(path)
        try:
            pixels = ds.pixel_array
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            ts = str(ds.file_meta.get("TransferSyntaxUID", "unknown"))
            raise DataValidationError(
                f"{path}: pixel data could not be decoded (transfer syntax {UID(ts).name}; {type(exc).__name__}: {exc}). "
                "Install a decoder (pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg, or python-gdcm) "
                "or check that the file is complete"
            ) from None
        if "PerFrameFunctionalGroupsSequence" in ds:
            pixels = pixels.reshape((-1, geometry.rows, geometry.columns))
            for f in range(pixels.shape[0]):
                fr = geometry.frames[slot[(index, f)]]
                values = pixels[f].astype(np.float64)
                if fr.slope is not None or fr.intercept is not None:
                    values = values * (fr.slope if fr.slope is not None else 1.0) + (fr.intercept or 0.0)
                    rescaled = True
                volume[:, :, slot[(index, f)]] = values.T
        else:
            rescaled |= "RescaleSlope" in ds or "RescaleIntercept" in ds or bool(ds.get("ModalityLUTSequence"))
            volume[:, :, slot[(index, None)]] = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64).T
    return volume, rescaled
