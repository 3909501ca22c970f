"""Run the network only where the scan has content.

A skull-stripped brain MRI fills about a third of its 240 x 240 x 155 box; the rest is one
constant value (0 after the ``brats`` z-score), and so is the air around a body once a CT
window clips it. No tumor lies in a region of one constant value, so the network runs on
the box that holds every voxel differing from the scan's fill value (the value of its
corner voxel, per channel), grown by a margin of context, and everything outside that box
is background. nnU-Net crops to the non-zero region for the same reason.

The rule is conservative: a scan whose corner value does not fill the space around the
anatomy (noise, a table at the corner) has content everywhere and runs whole, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Voxels of context kept around the content on each side: one cell of the U-Net's
#: coarsest level, so the constant border the network sees there is still a real one.
CONTENT_MARGIN = 8

Box = tuple[slice, slice, slice]


def content_box(volume: np.ndarray, min_size: Sequence[int] = (0, 0, 0),
                margin: int = CONTENT_MARGIN) -> Box | None:
    """The voxel box of a ``(C, X, Y, Z)`` volume holding all its content, or ``None`` when
    that is the whole volume (or the volume has no content at all: nothing to crop to).

    The box is grown by ``margin`` and to at least ``min_size`` per axis (the model's patch,
    so the window never pads a crop with repeated content voxels), clipped to the volume.
    """
    fill = volume[:, :1, :1, :1]
    content = np.any(volume != fill, axis=0)
    box = []
    for axis, (size, least) in enumerate(zip(content.shape, min_size)):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(content.any(axis=others))
        if hits.size == 0:
            return None
        start, stop = int(hits[0]) - margin, int(hits[-1]) + 1 + margin
        short = int(least) - (stop - start)
        if short > 0:
            start, stop = start - short // 2, stop + short - short // 2
        start, stop = max(0, start), min(size, stop)
        if stop - start < least:  # clipped at one end: extend at the other
            start, stop = max(0, stop - int(least)), min(size, start + int(least))
        box.append(slice(start, stop))
    if all(s.start == 0 and s.stop == n for s, n in zip(box, content.shape)):
        return None
    return box[0], box[1], box[2]


def place_in_background(cropped: np.ndarray, shape: Sequence[int], box: Box,
                        activation: str) -> np.ndarray:
    """``(K, X, Y, Z)`` probabilities for the whole volume: ``cropped`` inside ``box``,
    background outside (softmax: channel 0 is 1; sigmoid: every channel 0)."""
    full = np.zeros((cropped.shape[0], *shape), dtype=cropped.dtype)
    if activation == "softmax":
        full[0] = 1
    full[(slice(None), *box)] = cropped
    return full


def box_fraction(box: Box | None, shape: Sequence[int]) -> float:
    """Share of the volume's voxels inside ``box`` (1 for no box)."""
    if box is None:
        return 1.0
    return float(np.prod([s.stop - s.start for s in box]) / np.prod(shape))
