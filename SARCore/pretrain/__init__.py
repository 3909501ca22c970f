"""Pre-training: proxy-task batch builders, per-method objectives and the training loop."""
