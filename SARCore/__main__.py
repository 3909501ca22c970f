"""``python -m SARCore <verb>`` (also ``torchrun -m SARCore pretrain ...``)."""

import sys

from SARCore.cli import main

if __name__ == "__main__":
    sys.exit(main())
