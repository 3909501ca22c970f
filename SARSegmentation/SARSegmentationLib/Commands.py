"""Panel settings -> SARCore command lines, in one place.

Each builder checks its options (clear :class:`~SARCore.errors.ConfigError` messages
before any process starts) and returns the full command (interpreter, ``-m SARCore``,
verb, arguments, ``--progress json``) plus the folders the job writes to, so a cancel can
clean them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from SARSegmentationLib.Engine import engineCommand, ensureEngineImportable

ensureEngineImportable()
from SARCore.errors import ConfigError  # noqa: E402

PRESETS = ("ct", "mri", "brats", "pancreas")
PRESET_MODALITY = {"ct": "CT", "pancreas": "CT", "mri": "MRI", "brats": "MRI"}
METHODS = ("sar", "genesis", "sa", "mial", "rotation", "rpl", "jigsaw", "cpc")
DEVICES = ("auto", "cpu", "cuda", "mps")
MODEL_FILE = "model.sarmodel"


@dataclass
class EngineJob:
    """A command ready to run, the folders it writes, and the model it will produce."""

    verb: str
    command: list[str]
    outputDirs: list[Path]
    modelFile: Path | None = None
    cleanup: list[Path] = field(default_factory=list)  # temporary inputs to delete after


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _folder(name: str, value: str | Path | None, mustExist: bool = False) -> Path:
    if not value or not str(value).strip():
        raise ConfigError(f"choose a folder for {name}")
    path = Path(value).expanduser()
    if mustExist and not path.is_dir():
        raise ConfigError(f"{name} folder not found: {path}")
    return path


def _positive(name: str, value: int) -> int:
    if int(value) <= 0:
        raise ConfigError(f"{name} must be a positive whole number, not {value!r}")
    return int(value)


def preprocessJob(inputs: list[str | Path], outDir: str | Path, preset: str,
                  modality: str | None = None, python: str | None = None) -> EngineJob:
    if not inputs:
        raise ConfigError("choose volumes or a folder of scans to preprocess")
    out = _folder("the preprocessed output", outDir)
    arguments = [*(str(p) for p in inputs), "--out", str(out), "--preset",
                 _choice("preset", preset, PRESETS)]
    if modality:
        arguments += ["--modality", _choice("modality", modality, ("CT", "MRI"))]
    return EngineJob("preprocess", engineCommand("preprocess", arguments, python), [out])


def cubesJob(preprocessedDir: str | Path, outDir: str | Path,
             python: str | None = None) -> EngineJob:
    source = _folder("the preprocessed data", preprocessedDir, mustExist=True)
    out = _folder("the cubes output", outDir)
    return EngineJob("cubes", engineCommand("cubes", [str(source), "--out", str(out)], python),
                     [out])


def pretrainJob(cubesDir: str | Path, method: str, outDir: str | Path, epochs: int,
                device: str = "auto", widthDivisor: int = 1, resume: bool = False,
                python: str | None = None) -> EngineJob:
    cubes = _folder("the cubes", cubesDir, mustExist=True)
    out = _folder("the pre-training output", outDir)
    arguments = ["--cubes", str(cubes), "--method", _choice("method", method, METHODS),
                 "--out", str(out), "--epochs", str(_positive("epochs", epochs)),
                 "--device", _choice("device", device, DEVICES),
                 "--width-divisor", str(_positive("width divisor", widthDivisor))]
    if resume:
        arguments.append("--resume")
    return EngineJob("pretrain", engineCommand("pretrain", arguments, python), [out],
                     out / MODEL_FILE)


def finetuneJob(data: str | Path, init: str, outDir: str | Path, epochs: int,
                device: str = "auto", labelFraction: float = 1.0, resume: bool = False,
                labels: str = "", python: str | None = None,
                freshHead: bool = False) -> EngineJob:
    spec = Path(data).expanduser() if data else None
    if spec is None or not spec.exists():
        raise ConfigError(f"labeled data not found: {data or '(none chosen)'}",
                          hint="a folder with dataset.json (MSD layout) or BraTS case folders")
    if init != "scratch" and not Path(init).expanduser().is_file():
        raise ConfigError(f"pre-trained model not found: {init}",
                          hint="pick a .sarmodel file, or 'scratch'")
    if not 0.0 < float(labelFraction) <= 1.0:
        raise ConfigError(f"label fraction must be in (0, 1], not {labelFraction!r}")
    out = _folder("the fine-tuning output", outDir)
    arguments = ["--data", str(spec), "--init", str(init), "--out", str(out),
                 "--epochs", str(_positive("epochs", epochs)),
                 "--device", _choice("device", device, DEVICES),
                 "--label-fraction", repr(float(labelFraction))]
    if labels.strip():
        arguments += ["--labels", labels.strip()]
    if freshHead and init != "scratch":
        arguments.append("--fresh-head")
    if resume:
        arguments.append("--resume")
    return EngineJob("finetune", engineCommand("finetune", arguments, python), [out],
                     out / MODEL_FILE)


def labelsFromDataset(folder: str | Path) -> str:
    """The engine's ``--labels`` mapping for an MSD folder: one class per dataset label.

    ``{"0": "background", "1": "tumor", "2": "edema"}`` -> ``"tumor:1,edema:2"``, so a
    model fine-tuned on corrected cases learns the user's segments by their names.
    """
    import json

    path = Path(folder) / "dataset.json"
    try:
        labels = json.loads(path.read_text(encoding="utf-8")).get("labels") or {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the dataset's labels ({exc})", path) from exc
    pairs = sorted((int(value), re.sub(r"[^A-Za-z0-9_ .-]+", "_", str(name)).strip())
                   for value, name in labels.items() if str(value).isdigit() and int(value))
    return ",".join(f"{name}:{value}" for value, name in pairs)
