"""Fresh whole-batch output tensors that are cheap to fill on CPU.

PyTorch's CPU allocator maps new memory in 4 KB pages (unless ``THP_MEM_ALLOC_ENABLE=1``
is set before the process starts), so the first write to a fresh 16 MB batch takes
4,096 page faults; on a virtual machine that is several milliseconds, more than some
corruptions cost. NumPy asks the kernel for transparent huge pages for arrays of 4 MB
and more (``madvise``), one fault per 2 MB. Outputs the corruptions return are therefore
NumPy-backed on CPU; they are ordinary contiguous tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64,
                 torch.float16: np.float16}


def empty_batch(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Uninitialised contiguous tensor; NumPy-backed for CPU float dtypes."""
    if device.type == "cpu" and dtype in _NUMPY_DTYPES:
        return torch.from_numpy(np.empty(shape, dtype=_NUMPY_DTYPES[dtype]))
    return torch.empty(shape, dtype=dtype, device=device)


def empty_like_batch(batch: Tensor) -> Tensor:
    """Uninitialised contiguous tensor with ``batch``'s shape, dtype and device."""
    return empty_batch(tuple(batch.shape), batch.dtype, batch.device)
