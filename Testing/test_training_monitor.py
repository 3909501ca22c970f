"""Model selection follows the objective's ``monitor`` (restoration + scale), never the
adversarial BCE that the encoder is trained to raise (issue 9, protocol fix 1)."""

from __future__ import annotations

import torch
from torch import nn

from SARCore.pretrain.config import PretrainConfig
from SARCore.pretrain.objectives import PretrainObjective
from SARCore.training.loop import LoopConfig, train


class _EpochData(torch.utils.data.Dataset):
    """Two samples that carry the epoch number, so the toy objective can follow a script."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": torch.ones(1), "epoch": torch.tensor(float(self.epoch))}


class _AdversaryWins(nn.Module):
    """Restoration rises every epoch while the BCE falls faster: the total loss falls."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, batch, generator):
        epoch = batch["epoch"].mean()
        restoration = 0.1 + 0.05 * epoch + 0 * self.weight.sum()
        adversarial = 3.0 - 1.0 * epoch + 0 * self.weight.sum()
        monitor = 10 * restoration
        return {"loss": monitor + adversarial, "monitor": monitor.detach(),
                "restoration": restoration.detach(), "adversarial": adversarial.detach()}


def test_falling_bce_with_rising_restoration_keeps_the_first_checkpoint(tmp_path):
    saved = []
    config = LoopConfig(epochs=3, batch_size=2, bn_recalibration=0, device="cpu")
    result = train(_AdversaryWins(), lambda m: torch.optim.SGD(m.parameters(), lr=0.0),
                   _EpochData(), _EpochData(), tmp_path, config,
                   save_best=lambda module, row: saved.append(row["epoch"]))
    losses = [row["val_loss"] for row in result.history]
    assert losses[0] > losses[1] > losses[2]  # the old rule would have kept epoch 3
    assert saved == [1] and result.best_epoch == 1
    assert result.best_val == result.history[0]["val_monitor"]
    assert "val_adversarial" in result.history[0]  # logged apart


def test_sar_monitor_is_restoration_and_scale_only():
    config = PretrainConfig(method="sar", width_divisor=8)
    objective = PretrainObjective(config).eval()
    generator = torch.Generator().manual_seed(0)
    batch = {"cube": torch.rand(2, 1, 64, 64, 32), "scale": torch.tensor([0, 2]),
             "modality": torch.tensor([0, 1])}
    with torch.no_grad():
        terms = objective(batch, generator)
    weights = objective.weights
    expected = weights["restoration"] * terms["restoration"] + weights["scale"] * terms["scale"]
    assert torch.allclose(terms["monitor"], expected)
    assert torch.allclose(terms["loss"], expected + weights["adversarial"] * terms["adversarial"])
