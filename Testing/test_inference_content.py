"""The network runs only on the box around a scan's content (SARCore.inference.content).

A skull-stripped BRATS FLAIR is a brain in a constant fill: the box must hold the whole
brain, the network must see well under the whole volume, the label map must say
background outside the box, and inside the brain it must be what the whole-volume pass
gives. Scans without a constant fill (noise, a CT crop) run whole.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from inference_models import calibrated_model

from SARCore.inference import Segmenter, SegmentOptions, load_segmentation_model
from SARCore.inference.content import box_fraction, content_box, place_in_background


def blob_volume(shape=(60, 50, 40), fill=-3.0, start=(20, 10, 5), stop=(30, 25, 9),
                channels=1) -> np.ndarray:
    volume = np.full((channels, *shape), fill, dtype=np.float32)
    volume[(slice(0, 1), *(slice(a, b) for a, b in zip(start, stop)))] = 1.5
    return volume


def spans(box) -> list[tuple[int, int]]:
    return [(s.start, s.stop) for s in box]


def test_box_is_the_content_grown_by_the_margin_and_clipped() -> None:
    assert spans(content_box(blob_volume(), margin=4)) == [(16, 34), (6, 29), (1, 13)]
    # near the border the margin is clipped to the volume
    assert spans(content_box(blob_volume(start=(0, 10, 5), stop=(5, 25, 9)), margin=4)) == \
        [(0, 9), (6, 29), (1, 13)]


def test_box_grows_to_the_model_patch_and_stays_inside_the_volume() -> None:
    box = content_box(blob_volume(), min_size=(32, 32, 16), margin=0)
    assert spans(box) == [(9, 41), (2, 34), (0, 16)]  # centred; z clipped at 0, extended
    assert all(s.stop - s.start >= m for s, m in zip(box, (32, 32, 16)))


def test_any_channel_counts_as_content() -> None:
    volume = blob_volume(channels=2)
    volume[1, 50:55, 40:45, 30:35] = 7.0  # only in the second channel
    assert spans(content_box(volume, margin=0)) == [(20, 55), (10, 45), (5, 35)]


def test_no_constant_fill_or_no_content_runs_whole() -> None:
    rng = np.random.default_rng(0)
    assert content_box(rng.normal(size=(1, 40, 40, 20)).astype(np.float32)) is None
    assert content_box(np.zeros((1, 40, 40, 20), np.float32)) is None
    whole = blob_volume(start=(0, 0, 0), stop=(60, 50, 40))
    assert content_box(whole) is None
    assert box_fraction(None, (60, 50, 40)) == 1.0


def test_outside_the_box_is_background_for_both_activations() -> None:
    box = (slice(2, 4), slice(1, 3), slice(0, 2))
    crop = np.full((2, 2, 2, 2), 0.25, np.float16)
    softmax = place_in_background(crop, (5, 4, 3), box, "softmax")
    assert softmax.shape == (2, 5, 4, 3) and softmax.dtype == np.float16
    assert (softmax[0, 0] == 1).all() and (softmax[1, 0] == 0).all()
    assert (softmax[:, 2:4, 1:3, 0:2] == 0.25).all()
    sigmoid = place_in_background(crop[:1], (5, 4, 3), box, "sigmoid")
    assert sigmoid[0].sum() == pytest.approx(0.25 * 8)


def test_brats_scan_runs_on_its_brain_box_with_the_whole_scans_labels(tmp_path,
                                                                      brats_flair) -> None:
    model = load_segmentation_model(
        calibrated_model(tmp_path / "m.sarmodel", [brats_flair], spacing=(2, 2, 2)))
    image = sitk.ReadImage(str(brats_flair))
    raw = sitk.GetArrayViewFromImage(image)
    brain = raw != raw.flat[0]
    labels = {}
    for crop in (True, False):
        segmenter = Segmenter(model, SegmentOptions(crop_to_content=crop))
        labels[crop] = sitk.GetArrayFromImage(segmenter.segment([image])) > 0
        fraction = segmenter.last_content_fraction
        if crop:
            assert 0.3 < fraction < 0.75, fraction  # 2 mm grid, 16 mm of context each side
        else:
            assert fraction == 1.0
    cropped, whole = labels[True], labels[False]
    # this random model marks much of the fill as foreground; the crop says background there
    assert (whole & ~brain).sum() > 0.1 * whole.sum()
    zs, ys, xs = np.nonzero(cropped)
    bz, by, bx = np.nonzero(brain)
    margin = 16 + 2  # voxels of 1 mm: the 8-voxel margin at 2 mm, plus resampling
    for hit, inside, in ((zs, bz), (ys, by), (xs, bx)):
        assert hit.min() >= inside.min() - margin and hit.max() <= inside.max() + margin
    inside = 2 * (cropped & whole & brain).sum() / ((cropped & brain).sum()
                                                     + (whole & brain).sum())
    assert inside > 0.99, inside
