"""Pre-training: proxy-task batch builders, per-method objectives and the training loop.

Entry point: :func:`SARCore.pretrain.runner.pretrain` with a
:class:`SARCore.pretrain.config.PretrainConfig`; ``methods.py`` says which heads and
losses each of the 8 methods switches on, ``objectives.py`` computes them. Submodules
are imported explicitly so that the CLI's ``--help`` does not pay for torch.
"""
