"""Batch-norm statistics re-estimated for the current weights before validation."""

from __future__ import annotations

import torch
from torch import nn

from SARCore.training.batchnorm_stats import batchnorm_layers, recalibrate_batchnorm


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
                         nn.Conv3d(4, 2, 1), nn.BatchNorm3d(2))


def test_statistics_become_the_equal_weight_average_of_the_batches() -> None:
    net = _net().eval()
    batches = [torch.randn(3, 1, 6, 6, 4) * (i + 1) + i for i in range(5)]
    layer = net[1]
    expected_mean = torch.stack([net[0](b).mean(dim=(0, 2, 3, 4)) for b in batches[:3]]).mean(0)
    used = recalibrate_batchnorm(net, iter(batches), 3, net)
    assert used == 3
    torch.testing.assert_close(layer.running_mean, expected_mean.detach(), rtol=1e-5, atol=1e-5)
    assert layer.momentum == 0.1 and not net.training  # settings restored
    assert all(p.grad is None for p in net.parameters())  # weights untouched


def test_eval_outputs_match_train_outputs_after_recalibration() -> None:
    net = _net()
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.9)
    data = torch.rand(8, 1, 6, 6, 4)
    for _ in range(5):  # big steps: the running averages fall behind the weights
        optimizer.zero_grad()
        (net(data) - 3.0).pow(2).mean().backward()
        optimizer.step()
    with torch.no_grad():
        train_out = net.train()(data)
        stale = (net.eval()(data) - train_out).abs().mean()
        recalibrate_batchnorm(net, [data], 1, net)
        fresh = (net.eval()(data) - train_out).abs().mean()
    assert fresh < 1e-3 < stale


def test_networks_without_batch_norm_are_left_alone() -> None:
    net = nn.Sequential(nn.Conv3d(1, 2, 3), nn.InstanceNorm3d(2))
    assert batchnorm_layers(net) == []
    calls = []
    assert recalibrate_batchnorm(net, [torch.zeros(1, 1, 4, 4, 4)], 4, calls.append) == 0
    assert calls == []
