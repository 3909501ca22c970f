"""Whole-batch output buffers: NumPy-backed on CPU (huge pages), plain torch otherwise."""

from __future__ import annotations

import pytest
import torch

from SARCore.corruptions.buffers import empty_like_batch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_cpu_float_batches_get_numpy_backed_contiguous_buffers(dtype):
    batch = torch.zeros(3, 1, 16, 16, 8, dtype=dtype)[:, :, :, ::2]
    out = empty_like_batch(batch)
    assert out.shape == batch.shape and out.dtype == dtype and out.is_contiguous()
    out.fill_(0.25)
    assert torch.from_numpy(out.numpy()).data_ptr() == out.data_ptr()  # shares NumPy memory
    assert float(out.float().mean()) == 0.25


def test_dtypes_numpy_lacks_fall_back_to_torch():
    out = empty_like_batch(torch.zeros(2, 1, 4, 4, 4, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (2, 1, 4, 4, 4)
