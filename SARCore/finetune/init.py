"""The network a fine-tuning run starts from: random (scratch) or a pre-trained model file.

From a pre-trained model every part that fits is transferred (the paper: "we transfer
the 3D encoder-decoder"): the encoder always; the decoder when the file holds one
(encoder-only methods - rotation, RPL, jigsaw, CPC - leave it randomly initialized, as
the paper does); the final 1x1 head only when its shape equals the new one (a
restoration head has one channel, so it carries over to a one-class sigmoid model but
not to a softmax over several classes), as MG does; ``transfer_head=False`` starts the
head afresh instead (a restoration head maps features to intensities, and after a short
or unstable pre-training its large weights can saturate the sigmoid). Every layer stays
trainable.

A fresh head starts from a foreground prior (``head_prior``, as RetinaNet's classifier
does): near-zero weights and the bias that predicts probability ``head_prior`` of tumor
everywhere. PyTorch's default init gives logits of either sign, and a run that starts
out marking most of the volume sits where the batch Dice loss barely pulls the bias
back (the gradients of the missed background and of the found tumor nearly cancel): a
short fine-tuning then ends marking the whole scan, background included. Started from
"little tumor", the Dice gradient points at the tumor voxels from the first step.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from SARCore.errors import ModelFileError
from SARCore.finetune.inflate import inflate_input_channels
from SARCore.models.modelfile import load_model_file
from SARCore.models.unet3d import UNet3D

log = logging.getLogger(__name__)

PARTS = ("encoder", "decoder", "head")


@dataclass(frozen=True)
class Pretrained:
    """A loaded model file: where it came from, its header and its weights."""

    path: Path
    header: dict[str, Any]
    state: dict[str, torch.Tensor]

    @property
    def method(self) -> str:
        return str(self.header.get("method", "unknown"))

    @property
    def modalities(self) -> list[str]:
        return [str(m).upper() for m in self.header.get("modalities") or []]


def load_pretrained(path: str | Path) -> Pretrained:
    """Read and check a model file meant as a fine-tuning starting point."""
    path = Path(path)
    header, state = load_model_file(path, architecture=UNet3D.architecture)
    return Pretrained(path, header, state)


def check_fits(model: Pretrained, in_channels: int, modality: str | None,
               sequences: tuple[str, ...]) -> None:
    """Refuse images the model cannot take (channel count, modality) with a clear message."""
    want = int(model.header["in_channels"])
    if want != in_channels and not (want == 1 and in_channels > 1):  # 1: inflated
        given = f"{in_channels} channel(s)" + (f" ({', '.join(sequences)})" if sequences else "")
        raise ModelFileError(
            f"the model takes {want} input channel(s) but the images give {given}", model.path,
            f"choose {want} sequence(s) with --sequence, or start from scratch")
    if modality and model.modalities and modality.upper() not in model.modalities:
        raise ModelFileError(
            f"the model was pre-trained on {'/'.join(model.modalities)} but these images are "
            f"{modality.upper()}", model.path,
            "pre-train on this modality first (or fine-tune from scratch)")


def _unet_weights(model: Pretrained) -> dict[str, torch.Tensor]:
    prefix = "unet."
    weights = {k[len(prefix):]: v for k, v in model.state.items() if k.startswith(prefix)}
    if not any(k.startswith("encoder.") for k in weights):
        raise ModelFileError("the model file holds no U-Net encoder weights ('unet.encoder.*')",
                             model.path)
    return weights


def transfer_weights(net: UNet3D, model: Pretrained, head: bool = True) -> list[str]:
    """Copy the parts of ``model`` that fit ``net`` (the head only if ``head``); returns
    the part names copied."""
    source = _unet_weights(model)
    target = net.state_dict()
    inflated = inflate_input_channels(source, target, net.in_channels)
    if inflated:
        log.info("first convolution inflated from 1 to %d input channels: %s",
                 net.in_channels, ", ".join(inflated))
    copied: dict[str, torch.Tensor] = {}
    parts = []
    for part in PARTS if head else PARTS[:-1]:
        names = [k for k in target if k.startswith(part + ".")]
        present = [k for k in names if k in source]
        if not present:
            continue
        if len(present) != len(names):
            raise ModelFileError(f"the model file holds only part of the {part} "
                                 f"({len(present)} of {len(names)} tensors)", model.path)
        mismatched = [k for k in names if source[k].shape != target[k].shape]
        if mismatched:
            if part == "head":
                log.info("head not transferred: %s has shape %s, the new head %s", mismatched[0],
                         tuple(source[mismatched[0]].shape), tuple(target[mismatched[0]].shape))
                continue
            raise ModelFileError(f"the {part} weights do not fit (e.g. {mismatched[0]}: "
                                 f"{tuple(source[mismatched[0]].shape)} vs "
                                 f"{tuple(target[mismatched[0]].shape)})", model.path,
                                 "the header's width_divisor or in_channels is wrong")
        copied.update({k: source[k] for k in names})
        parts.append(part)
    net.load_state_dict({**target, **copied})
    return parts


def set_head_prior(head: torch.nn.Conv3d, activation: str, prior: float) -> None:
    """Make ``head`` predict foreground probability ``prior`` everywhere (split evenly
    over the foreground classes of a softmax) with near-zero weights; 0 leaves it as is."""
    if prior == 0:
        return
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01)
        if activation == "sigmoid":
            head.bias.fill_(math.log(prior / (1 - prior)))
        else:
            head.bias.fill_(math.log(prior / max(1, head.out_channels - 1)))
            head.bias[0] = math.log(1 - prior)


def build_network(in_channels: int, out_channels: int, width_divisor: int,
                  model: Pretrained | None, transfer_head: bool = True,
                  activation: str = "sigmoid", head_prior: float = 0.0,
                  ) -> tuple[UNet3D, dict[str, Any]]:
    """The U-Net to fine-tune and the header's ``init``/``init_model`` fields; a head
    that is not transferred starts from ``head_prior`` (see :func:`set_head_prior`)."""
    if model is None:
        net = UNet3D(in_channels, out_channels, width_divisor)
        set_head_prior(net.head, activation, head_prior)
        return net, {"init": "scratch", "init_model": None}
    net = UNet3D(in_channels, out_channels, int(model.header["width_divisor"]))
    parts = transfer_weights(net, model, transfer_head)
    if "head" not in parts:
        set_head_prior(net.head, activation, head_prior)
    log.info("fine-tuning from %s (%s): transferred %s", model.path.name, model.method,
             ", ".join(parts))
    info = {"name": model.header.get("name"), "method": model.method, "file": model.path.name,
            "weights_sha256": model.header.get("weights_sha256"), "transferred": parts,
            "encoder_only": "decoder" not in parts,
            "inflated_input_channels": (net.in_channels
                                        if int(model.header["in_channels"]) < net.in_channels
                                        else None)}
    return net, {"init": model.method, "init_model": info}
