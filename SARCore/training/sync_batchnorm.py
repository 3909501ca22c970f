"""Synchronised batch norm for DDP on any device (torch's own needs a GPU).

``nn.SyncBatchNorm`` refuses CPU tensors in training (torch 2.13: "SyncBatchNorm expected
input tensor to be on GPU"), because its kernels (``batch_norm_stats`` and friends) exist
only for CUDA. Without synchronisation, N CPU processes of batch B normalise with
per-process statistics and no longer train like one process of batch N*B.

:class:`AllReduceBatchNorm` computes the same global statistics with two differentiable
all-reduces (:func:`all_reduce`, whose backward all-reduces the gradient), so autograd
yields the exact gradient of the global-batch loss. It is slower than torch's fused CUDA
kernels, so :func:`convert_sync_batchnorm` keeps
``nn.SyncBatchNorm`` on GPUs and uses this one on CPU (gloo).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum) over the default process group."""
    return _AllReduceSum.apply(tensor)


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the batches of all processes.

    Same parameters and buffers as ``BatchNorm3d`` (state dicts are interchangeable);
    without an initialised process group, or in ``eval()``, it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        synced = (self.training and dist.is_available() and dist.is_initialized()
                  and dist.get_world_size() > 1)
        if not synced:
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        x = input.float()
        local_count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        summed = all_reduce(torch.cat([x.sum(dims), local_count]))
        count = summed[-1]
        mean = summed[:-1] / count
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count.detach())
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor,
                              count: torch.Tensor) -> None:
        # As F.batch_norm: running variance is unbiased, momentum None = cumulative mean.
        self.num_batches_tracked.add_(1)
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum)
        unbiased = var * count / torch.clamp(count - 1, min=1)
        self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype),
                                                 alpha=momentum)


def _convert_to_all_reduce(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
            module, AllReduceBatchNorm):
        converted = AllReduceBatchNorm(module.num_features, module.eps, module.momentum,
                                       module.affine, module.track_running_stats,
                                       device=module.weight.device if module.affine else None)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        if module.affine:
            converted.weight.requires_grad_(module.weight.requires_grad)
            converted.bias.requires_grad_(module.bias.requires_grad)
        return converted
    for name, child in module.named_children():
        module.add_module(name, _convert_to_all_reduce(child))
    return module


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every batch norm of ``module`` synchronised across processes, for ``device``'s type."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_to_all_reduce(module)

