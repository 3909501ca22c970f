"""Networks (MG 3D U-Net, SA head, MIAL discriminator, baseline heads) and model files."""

from SARCore.models.heads import ModalityDiscriminator, ScaleHead, reverse_gradient
from SARCore.models.modelfile import (
                                      build_unet,
                                      load_model_file,
                                      make_header,
                                      read_header,
                                      save_model_file,
)
from SARCore.models.unet3d import UNet3D

__all__ = ["UNet3D", "ScaleHead", "ModalityDiscriminator", "reverse_gradient", "build_unet",
           "load_model_file", "make_header", "read_header", "save_model_file"]
