"""The optional class-balanced MIAL loss for a CT:MRI imbalance (issue 9, fix 3)."""

from __future__ import annotations

import torch

from SARCore.pretrain.config import PretrainConfig
from SARCore.pretrain.objectives import PretrainObjective


def _terms(objective):
    batch = {"cube": torch.rand(4, 1, 32, 32, 16, generator=torch.Generator().manual_seed(1)),
             "scale": torch.tensor([0, 1, 2, 0]), "modality": torch.tensor([0, 1, 1, 1])}
    with torch.no_grad():
        return objective.eval()(batch, torch.Generator().manual_seed(0))


def test_balanced_bce_weighs_the_rarer_modality():
    torch.manual_seed(0)
    plain = PretrainObjective(PretrainConfig(method="sar", width_divisor=8))
    torch.manual_seed(0)
    balanced = PretrainObjective(PretrainConfig(method="sar", width_divisor=8,
                                                balance_modalities=True))
    assert plain.set_modality_counts(100, 300) == 1.0  # off by default: the paper's BCE
    assert balanced.set_modality_counts(100, 300) == 3.0
    a, b = _terms(plain), _terms(balanced)
    assert torch.allclose(a["restoration"], b["restoration"])  # same weights, same cubes
    assert not torch.allclose(a["adversarial"], b["adversarial"])
    assert torch.allclose(a["monitor"], b["monitor"])  # selection ignores the BCE anyway
    assert "ct_weight" not in balanced.state_dict()  # model files stay as they were
