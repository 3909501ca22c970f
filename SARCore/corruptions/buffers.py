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


def empty_like_batch(batch: Tensor) -> Tensor:
    """Uninitialised contiguous tensor with ``batch``'s shape, dtype and device."""
    if batch.device.type == "cpu" and batch.dtype in _NUMPY_DTYPES:
        return torch.from_numpy(np.empty(tuple(batch.shape), dtype=_NUMPY_DTYPES[batch.dtype]))
    return torch.empty(batch.shape, dtype=batch.dtype, device=batch.device)
