"""One training step's losses for every pre-training method (what the loop backpropagates).

:class:`PretrainObjective` owns the U-Net and the heads its method switches on, and maps
a batch of cubes to loss terms::

    restoration   MSE(sigmoid(unet(corrupted)), target)             weight beta
    scale         CE(ScaleHead(bottom tap), scale class)             weight alpha
    adversarial   BCE(Discriminator(reverse_gradient(taps)), is CT)  weight 1

The corruption runs inside ``forward``, after the loop has moved the batch to the
device, with the loop's generator for that device: on a GPU the Models Genesis
transforms run there too, and a resumed run replays the same corruptions. Under
``--compile`` the corruption stays eager (:func:`_corrupt`); only the networks compile.

Model selection and the learning-rate schedule follow ``"monitor"``: the weighted
restoration + scale terms only. The encoder is trained to *raise* the adversarial BCE,
so a quantity that includes it would favour the epochs where the discriminator wins,
i.e. the least modality-invariant encoder; the adversarial term is logged apart.

Gradient reversal makes the single ``loss.backward()`` play the min-max game of paper
eq. 3-4: the discriminator descends the BCE while the encoder receives ``-weight *`` the
discriminator's gradient, i.e. ascends it (see :mod:`SARCore.models.heads`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from SARCore.corruptions import ModelsGenesisCorruption
from SARCore.io.modality import CT
from SARCore.models.heads import ModalityDiscriminator, ScaleHead, reverse_gradient
from SARCore.models.unet3d import UNet3D
from SARCore.pretrain.config import PretrainConfig, corruption_config
from SARCore.pretrain.methods import active_terms


@torch.compiler.disable
def _corrupt(corruption: ModelsGenesisCorruption, cubes: Tensor, generator: torch.Generator
             ) -> tuple[Tensor, Tensor]:
    """The corruption in float32, outside any ``torch.compile`` region: its CPU path draws
    with NumPy and its parameters vary per batch, which Dynamo cannot trace."""
    with torch.autocast(cubes.device.type, enabled=False):
        return corruption(cubes.float(), generator)


def _accuracy(correct: Tensor) -> Tensor:
    return correct.detach().float().mean()


class PretrainObjective(nn.Module):
    """U-Net plus the heads of ``config.method``; ``forward(batch, generator)`` -> terms.

    ``batch`` is the collated :class:`~SARCore.cubes.store.CubeDataset` dict on the
    device: ``cube (B,1,64,64,32)``, ``scale (B,)``, ``modality (B,)``. The result has
    ``"loss"`` (weighted sum, backpropagated), ``"monitor"`` (the weighted restoration +
    scale terms the loop selects on) and each term and accuracy, detached.
    """

    def __init__(self, config: PretrainConfig):
        super().__init__()
        config = config.resolved()
        self.spec = config.spec
        self.terms = active_terms(self.spec, len(config.scales))
        self.weights = {"restoration": float(config.restoration_weight),
                        "scale": float(config.scale_weight),
                        "adversarial": float(config.adversarial_weight)}
        self.unet = UNet3D(1, 1, config.width_divisor)
        channels, divisor = self.unet.encoder_channels, config.width_divisor
        # Head widths shrink with the U-Net so that width/8 test runs stay small.
        self.scale_head = (ScaleHead(channels[-1], hidden=max(64, 1024 // divisor))
                           if "scale" in self.terms else None)
        self.discriminator = (ModalityDiscriminator(channels, width=max(8, 64 // divisor),
                                                    hidden=max(32, 256 // divisor))
                              if "adversarial" in self.terms else None)
        self.task = None
        self.head = None
        if self.spec.baseline is not None:
            from SARCore.pretrain.baseline_tasks import BASELINE_TASKS

            self.task = BASELINE_TASKS[self.spec.baseline]
            self.head = self.task.build_head(channels, divisor)
        self.corruption = (ModelsGenesisCorruption(corruption_config(config.corruption))
                           if self.spec.restoration else None)
        # Class-balanced MIAL loss (optional): CT cubes weighted by n_MRI / n_CT, set by
        # set_modality_counts; 1 leaves the BCE as the paper has it.
        self.balance_modalities = bool(config.balance_modalities)
        self.register_buffer("ct_weight", torch.ones(()), persistent=False)
        # DDP must not wait for gradients of the decoder that encoder-only tasks never use.
        self.find_unused_parameters = self.spec.encoder_only

    def forward(self, batch: Mapping[str, Tensor], generator: torch.Generator
                ) -> dict[str, Tensor]:
        cubes = batch["cube"]
        if self.task is not None:
            return self.task.step(self.unet, self.head, cubes, generator)
        corrupted, target = _corrupt(self.corruption, cubes, generator)
        taps = self.unet.encode(corrupted)
        restored = torch.sigmoid(self.unet.decode(taps).float())
        terms = {"restoration": F.mse_loss(restored, target.float())}
        loss = self.weights["restoration"] * terms["restoration"]
        if self.scale_head is not None:
            logits = self.scale_head(taps[-1]).float()
            terms["scale"] = F.cross_entropy(logits, batch["scale"])
            terms["scale_acc"] = _accuracy(logits.argmax(dim=1) == batch["scale"])
            loss = loss + self.weights["scale"] * terms["scale"]
        terms["monitor"] = loss.detach()  # what the loop selects on: no adversarial term
        if self.discriminator is not None:
            logit = self.discriminator([reverse_gradient(tap) for tap in taps]).float()
            is_ct = (batch["modality"] == CT).float()
            terms["adversarial"] = F.binary_cross_entropy_with_logits(
                logit, is_ct, pos_weight=self.ct_weight)
            terms["disc_acc"] = _accuracy((logit > 0).float() == is_ct)
            loss = loss + self.weights["adversarial"] * terms["adversarial"]
        return {"loss": loss, **terms}

    def set_modality_counts(self, n_ct: int, n_mri: int) -> float:
        """With ``balance_modalities``, weight CT cubes by ``n_mri / n_ct`` in the MIAL BCE
        (a CT:MRI imbalance otherwise lets the discriminator win by guessing the larger
        class). Returns the weight in use."""
        if self.balance_modalities and n_ct > 0 and n_mri > 0:
            self.ct_weight.fill_(n_mri / n_ct)
        return float(self.ct_weight)

    def model_state_dict(self) -> dict[str, Tensor]:
        """What the model file keeps: U-Net (encoder only for baselines) and the heads."""
        keep = ("unet.encoder.", "head.") if self.spec.encoder_only else (
            "unet.", "scale_head.", "discriminator.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(keep)}

    def param_groups(self, config: PretrainConfig) -> list[dict[str, Any]]:
        """Optimizer parameter groups with the per-module learning rates of ``config``."""
        config = config.resolved()
        groups = [("unet", self.unet, config.lr_unet),
                  ("scale_head", self.scale_head, config.lr_scale),
                  ("discriminator", self.discriminator, config.lr_adversarial),
                  ("head", self.head, config.lr_head)]
        return [{"name": name, "params": list(module.parameters()), "lr": lr}
                for name, module, lr in groups
                if module is not None and any(True for _ in module.parameters())]
