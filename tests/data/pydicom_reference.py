"""Writes pydicom_reference.json: what pydicom (the reference DICOM reader) decodes from
its own test files, for tui/src/data/dicom.rs to check itself against.

Run with a Python that has pydicom, numpy, pillow, pylibjpeg, pylibjpeg-libjpeg and
pylibjpeg-openjpeg (pydicom's JPEG 2000 decoder, OpenJPEG):

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install 'pydicom==3.0.*' numpy pillow \
        pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg
    /tmp/ref/bin/python tests/data/pydicom_reference.py

For each file: the first frame's size, and for gray images the modality (rescaled) values,
for color images the RGB values scaled to 8 bits; as their sum, min, max and a 5x5 grid
of samples (row-major, at rows/cols i*(n-1)/4), so the check stays small and exact where
the codec is lossless.
"""

import json
import os

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, apply_modality_lut

FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "image_dfl.dcm",
    "liver_1frame.dcm",
    "rtdose_1frame.dcm",
    "examples_overlay.dcm",
    "SC_rgb_small_odd.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_dcmtk_+eb+cy+np.dcm",
    "SC_jpeg_no_color_transform_2.dcm",
    "SC_rgb_dcmtk_+eb+cr.dcm",
    "SC_rgb_dcmtk_+eb+cy+n1.dcm",
    "SC_rgb_dcmtk_+eb+cy+n2.dcm",
    "SC_rgb_dcmtk_+eb+cy+s2.dcm",
    "SC_rgb_dcmtk_+eb+cy+s4.dcm",
    "SC_rgb_jpeg_app14_dcmd.dcm",
    "SC_rgb_jpeg_dcmd.dcm",
    "SC_rgb_jpeg_lossy_gdcm.dcm",
    "SC_rgb_small_odd_jpeg.dcm",
    "SC_rgb_rle_16bit_2frame.dcm",
    "MR_small_expb.dcm",
    "liver_expb_1frame.dcm",
    "rtdose.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "ExplVR_BigEnd.dcm",
    "examples_rgb_color.dcm",
    "examples_ybr_color.dcm",
    "examples_palette.dcm",
    # JPEG 2000: every file in it that pydicom's wheel ships and pydicom decodes. pydicom
    # fetches the others (693_J2KR, MR2_J2K*, RG1_J2K*, RG3_J2K*, US1_J2K*, emri_small_jpeg_
    # 2k_lossless*, HTJ2K*_08_RGB) from the internet on demand: not part of this check.
    "MR_small_jp2klossless.dcm",
    "J2K_pixelrep_mismatch.dcm",
    "693_J2KI.dcm",
    "JPEG2000.dcm",
    "GDCMJ2K_TextGBR.dcm",
    "examples_jpeg2k.dcm",
    "SC_rgb_gdcm_KY.dcm",
]

# Left out, each for a reason the Rust tests check or the report states:
# - JPGExtended.dcm, JPEG-lossy.dcm: 12-bit JPEG Extended, which jpeg-decoder (dicom-rs'
#   pure-Rust JPEG codec) does not decode; refused with an error.
# - rtdose_rle_1frame.dcm: 32-bit RLE, which dicom-rs' RLE decoder does not decode.
# - rtdose_expb_1frame.dcm: 32-bit samples in Explicit VR Big Endian (retired); refused.
# - SC_rgb_jpeg.dcm: implicit VR data in an explicit VR file, which dicom-rs cannot parse.
# - SC_jpeg_no_color_transform.dcm: an RGB JPEG without an Adobe APP14 marker, which
#   jpeg-decoder takes for YCbCr and converts (pydicom does not).
# - JPEG2000-embedded-sequence-delimiter.dcm: a copy of JPEG2000.dcm with four codestream
#   bytes overwritten by a Sequence Delimiter (pydicom's README), which neither pydicom
#   (OpenJPEG: "failed to read the header") nor gantry ("jpeg2k decoder failure") decodes.
# - JPEG-LS (MR_small_jpeg_ls_lossless.dcm, JPEGLSNearLossless_08/16.dcm,
#   SC_rgb_jls_lossy_line/sample.dcm): dicom-rs decodes JPEG-LS only with CharLS, a C++
#   library; refused with an error naming JPEG-LS.
# pydicom's wheel has no HTJ2K file; dicom.rs checks HTJ2K on small codestreams of its own.

# JPEG baseline and extended, JPEG 2000 and HTJ2K lossy: two decoders may differ a little
# (openjp2 and OpenJPEG agreed on every sample of the lossy JPEG 2000 files above).
LOSSY = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.203",
}


def first_frame(ds):
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return arr[0] if frames > 1 else arr


def entry(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    pi = ds.PhotometricInterpretation
    frame = first_frame(ds)
    if pi.startswith("MONOCHROME"):
        values = apply_modality_lut(frame, ds).astype(np.float64)
        kind = "gray"
    else:
        if pi == "PALETTE COLOR":
            rgb = apply_color_lut(frame, ds)
            bits = 16 if rgb.dtype.itemsize == 2 else 8
        else:
            # pydicom converts YBR to RGB itself (for JPEG: its decoder does).
            rgb = frame
            bits = int(ds.BitsStored)
        values = (rgb.astype(np.uint64) >> max(bits - 8, 0)).astype(np.float64)
        kind = "rgb"
    rows, cols = values.shape[:2]
    grid = [
        values[r * (rows - 1) // 4, c * (cols - 1) // 4].tolist()
        for r in range(5)
        for c in range(5)
    ]
    return {
        "file": name,
        "kind": kind,
        "rows": rows,
        "cols": cols,
        "lossy": ds.file_meta.TransferSyntaxUID in LOSSY,
        "sum": float(values.sum()),
        "min": float(values.min()),
        "max": float(values.max()),
        "grid": grid,
    }


def main():
    out = [entry(name) for name in FILES]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pydicom_reference.json")
    with open(path, "w") as f:
        f.write(json.dumps({"pydicom": pydicom.__version__, "files": out}, indent=1))
        f.write("\n")


if __name__ == "__main__":
    main()
