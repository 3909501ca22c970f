"""The header of a fine-tuned segmentation model file.

Besides the common fields (see :mod:`SARCore.models.modelfile`) it carries everything the
segmentation pipeline and the Slicer module need to use the model on a new scan without
guessing: the output classes (name, label value, colour, standard terminology codes
where the name is known to :mod:`SARCore.terminology`), the output activation, the
preprocessing preset, the patch size, the sequences/modalities it expects, and where its
weights came from (``init``: the pre-training method or ``"scratch"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from SARCore.finetune.config import FinetuneConfig
from SARCore.finetune.labels import ClassSpec, output_activation
from SARCore.finetune.splits import Split
from SARCore.models.modelfile import make_header
from SARCore.models.unet3d import UNet3D
from SARCore.preprocess.presets import Preset
from SARCore.terminology import with_terminology


def segmentation_header(config: FinetuneConfig, *, name: str, classes: Sequence[ClassSpec],
                        preset: Preset, modality: str, net: UNet3D, split: Split,
                        split_seed: int, init_fields: dict[str, Any],
                        training: dict[str, Any]) -> dict[str, Any]:
    """All header fields of one trial's or fold's model (``training``: epochs, val loss)."""
    classes = tuple(classes)
    return make_header(
        name=name, task="segmentation", architecture=UNet3D.architecture,
        width_divisor=net.width_divisor, in_channels=net.in_channels,
        out_channels=net.out_channels, input_size=list(config.patch_size), method="finetune",
        **init_fields,
        classes=with_terminology([c.to_header() for c in classes]),  # + DICOM/SNOMED codes
        output_activation=output_activation(classes),
        preprocess=preset.to_dict(), patch_size=list(config.patch_size),
        modalities=[modality], sequences=list(config.sequences),
        training_cases=list(split.train), validation_cases=list(split.validation),
        test_cases=list(split.test), split=split.name, split_seed=split_seed,
        label_fraction=config.label_fraction, loss=config.loss,
        epochs=training.get("epochs"), best_epoch=training.get("best_epoch"),
        best_val_loss=training.get("best_val_loss"))
