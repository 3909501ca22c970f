"""Check every section of an experiment file before its first stage runs.

An experiment runs for hours; a typo in ``segmentation:`` or ``pretraining.options``
must not surface after pre-training. So each section is built once here, the way its
stage will build it, and any :class:`ConfigError` names the section.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

from SARCore.config import from_mapping
from SARCore.errors import ConfigError

_EVALUATION_KEYS = ("size_label", "size_thresholds", "welch")


def validate_experiment(config: Any) -> None:
    """Raise :class:`ConfigError` for the first invalid setting of ``config``
    (an :class:`~SARCore.experiment.config.ExperimentConfig`)."""
    from SARCore.cubes import CubeConfig
    from SARCore.inference import SegmentOptions
    from SARCore.pretrain.config import config_from_mapping

    spacing = tuple(config.pretraining.spacing)
    if spacing and (len(spacing) != 3 or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s)
            or s <= 0 for s in spacing)):
        raise ConfigError(f"pretraining.spacing must be 3 positive numbers (mm), not "
                          f"{list(spacing)!r}")
    if config.pretraining.methods:
        for name in config.pretraining.methods:  # methods and named variants alike
            method, options, cubes = config.pretraining.run_options(name)
            with _section("pretraining.cubes"):
                CubeConfig.from_dict({"seed": config.seed, **dict(config.pretraining.cubes),
                                      **cubes})
            with _section("pretraining.options"):
                config_from_mapping({"seed": config.seed, "device": config.device, **options},
                                    "pretraining.options", {"method": method})
    with _section("segmentation"):
        from_mapping(SegmentOptions, {"device": config.device, **dict(config.segmentation)},
                     "segmentation")
    _check_evaluation(config.evaluation)


@contextlib.contextmanager
def _section(name: str) -> Iterator[None]:
    """Name the section in the message; the experiment file becomes the error's path."""
    try:
        yield
    except ConfigError as exc:
        problem = exc.problem if exc.problem.startswith(name) else f"{name}: {exc.problem}"
        raise ConfigError(problem, hint=exc.hint) from exc


def _check_evaluation(options: Mapping[str, Any]) -> None:
    unknown = [k for k in options if k not in _EVALUATION_KEYS]
    if unknown:
        raise ConfigError(f"evaluation: unknown option(s) {', '.join(map(str, unknown))}",
                          hint=f"known: {', '.join(_EVALUATION_KEYS)}")
    thresholds = options.get("size_thresholds")
    if thresholds is not None and (not isinstance(thresholds, (list, tuple)) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0
            for t in thresholds)):
        raise ConfigError(f"evaluation.size_thresholds must be a list of positive numbers, "
                          f"not {thresholds!r}")
    welch = options.get("welch")
    if welch is not None and not isinstance(welch, bool):
        raise ConfigError(f"evaluation.welch must be true or false, not {welch!r}")
