"""``segment`` warns when an input looks like another sequence or modality than the
model header's (file name, folder name, or the file's own header)."""

from __future__ import annotations

import SimpleITK as sitk
from inference_models import calibrated_model, crop_to_file

from SARCore.inference.cases import gather_cases, input_warnings
from SARCore.inference.model import load_segmentation_model


def test_sequence_and_modality_mismatches_are_warned(tmp_path, brats_flair) -> None:
    flair = crop_to_file(brats_flair, tmp_path / "case_flair.nii.gz", (56, 96, 56), (48, 56, 32))
    model = load_segmentation_model(calibrated_model(tmp_path / "m.sarmodel", [flair]))
    t1c = tmp_path / "tcga_gbm_t1gd"
    t1c.mkdir()
    image = sitk.ReadImage(str(flair))
    image.SetMetaData("0008|0060", "CT")
    sitk.WriteImage(image, str(t1c / "brain1_image.nrrd"))

    [same] = gather_cases([flair], model)
    assert input_warnings(same, model) == []
    [other] = gather_cases([t1c / "brain1_image.nrrd"], model)
    warnings = input_warnings(other, model)
    assert any("looks like a t1c scan" in w and "trained on flair" in w for w in warnings)
    assert any("header says CT" in w and "MRI" in w for w in warnings)
    assert all(str(t1c / "brain1_image.nrrd") in w for w in warnings)
