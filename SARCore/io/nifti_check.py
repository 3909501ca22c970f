"""Raw checks of NIfTI files that ITK's reader does not make.

ITK's NIfTI reader zero-fills a file that was cut short and turns NaN and Inf voxels
into 0, without a word. So for ``.nii``/``.nii.gz`` we stream the file once (gzip CRC
included), compare its length with what the header promises and count non-finite
float voxels.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from SARCore.errors import DataError

_FLOAT_CODES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of real floating point
_CHUNK = 1 << 22
_CUT_HINT = "the file was cut short; copy or download it again"


@dataclass(frozen=True)
class _Header:
    offset: int  # where the voxels start
    count: int  # number of voxel values
    itemsize: int
    float_dtype: np.dtype | None  # set when the voxels are floats (NaN/Inf possible)


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def check_nifti_file(path: Path) -> None:
    """Raise :class:`DataError` if ``path`` is truncated or holds NaN/Inf voxels."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            head = stream.read(544)
            header = _parse_header(head, path)
            length, bad = _scan_voxels(stream, head, header)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"truncated or corrupt gzip stream ({exc})", path, _CUT_HINT) from exc
    needed = header.offset + header.count * header.itemsize
    if length < needed:
        raise DataError(f"truncated NIfTI file ({length} of {needed} bytes)", path, _CUT_HINT)
    if bad:
        raise DataError(f"{bad} voxel(s) are NaN or infinite", path,
                        "fix or mask them before preprocessing")


def _parse_header(head: bytes, path: Path) -> _Header:
    if len(head) < 348:
        raise DataError("truncated NIfTI file (header incomplete)", path, _CUT_HINT)
    endian = "<" if struct.unpack("<i", head[:4])[0] in (348, 540) else ">"
    if struct.unpack(endian + "i", head[:4])[0] == 540:  # NIfTI-2
        if len(head) < 540:
            raise DataError("truncated NIfTI-2 file (header incomplete)", path, _CUT_HINT)
        datatype, bitpix = struct.unpack(endian + "2h", head[12:16])
        dims = struct.unpack(endian + "8q", head[16:80])
        pixdim = struct.unpack(endian + "8d", head[104:168])
        offset = struct.unpack(endian + "q", head[168:176])[0]
    else:  # NIfTI-1
        dims = struct.unpack(endian + "8h", head[40:56])
        datatype, bitpix = struct.unpack(endian + "2h", head[70:74])
        pixdim = struct.unpack(endian + "8f", head[76:108])
        offset = int(struct.unpack(endian + "f", head[108:112])[0])
    _check_header_values(dims, pixdim, bitpix, path)
    count = int(np.prod([max(1, d) for d in dims[1: 1 + max(0, min(dims[0], 7))]]))
    code = _FLOAT_CODES.get(datatype)
    dtype = np.dtype(endian + code) if code else None
    return _Header(offset, count, max(1, bitpix // 8), dtype)


def _check_header_values(dims: tuple, pixdim: tuple, bitpix: int, path: Path) -> None:
    """Refuse what ITK would read as something else: a zero, infinite or missing voxel
    size becomes 1 mm there, silently changing every physical measure."""
    rank = dims[0]
    if not 1 <= rank <= 7 or any(d < 1 for d in dims[1:1 + rank]):
        raise DataError(f"invalid NIfTI header: dim = {list(dims)}", path,
                        "the header is damaged; export the image again")
    if bitpix <= 0:
        raise DataError(f"invalid NIfTI header: bitpix = {bitpix}", path,
                        "the header is damaged; export the image again")
    spatial = [float(v) for v in pixdim[1:1 + min(rank, 3)]]
    if any(not np.isfinite(v) or v == 0 for v in spatial):
        shown = ", ".join(f"{v:g}" for v in spatial)
        raise DataError(f"invalid voxel spacing in the NIfTI header (pixdim = {shown}); a "
                        "zero or missing spacing would be read as 1 mm", path,
                        "set the real voxel size in the header (e.g. with nibabel) or "
                        "export the image again")


def _scan_voxels(stream: BinaryIO, head: bytes, header: _Header) -> tuple[int, int]:
    """Total byte length of the stream and the number of non-finite float voxels."""
    length = len(head)
    pending = head[header.offset:]
    if header.offset > len(head):
        skipped = stream.read(header.offset - len(head))
        length += len(skipped)
    bad, seen = 0, 0
    while True:
        chunk = stream.read(_CHUNK)
        length += len(chunk)
        pending += chunk
        if header.float_dtype is not None and seen < header.count:
            usable = min(len(pending) // header.itemsize, header.count - seen)
            values = np.frombuffer(pending, header.float_dtype, count=usable)
            bad += values.size - int(np.count_nonzero(np.isfinite(values)))
            seen += usable
            pending = pending[usable * header.itemsize:]
        else:
            pending = b""
        if not chunk:
            return length, bad
