"""The experiment runner: one YAML file -> pre-training x methods -> fine-tuning x trials
x label fractions -> segmentation of the test cases -> evaluation -> ``report.md``."""

from SARCore.experiment.config import ExperimentConfig, load_experiment
from SARCore.experiment.runner import DEFAULT_DATA_ROOT, ExperimentResult, run_experiment

__all__ = ["DEFAULT_DATA_ROOT", "ExperimentConfig", "ExperimentResult", "load_experiment",
           "run_experiment"]
