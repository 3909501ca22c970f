"""Fine-tuning for tumor segmentation: labeled cases, splits, patches, training runs.

:func:`finetune` runs every trial or fold of a :class:`FinetuneConfig` into one folder
(see :mod:`SARCore.finetune.runner` for its layout).
"""

from SARCore.finetune.config import FinetuneConfig
from SARCore.finetune.runner import FinetuneResult, SplitResult, finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "SplitResult", "finetune"]
