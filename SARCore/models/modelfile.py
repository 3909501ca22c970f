"""Model files: weights plus a JSON header that says what the model is.

On disk (``*.sarmodel``)::

    torch.save({"format": "sar-model", "format_version": 1,
                "header_json": "<JSON text>", "file_sha256": "<hex>",
                "state_dict": {name: tensor}})

Only tensors, strings and ints are stored, so ``torch.load(..., weights_only=True)``
reads it and a model file cannot run code. ``header["weights_sha256"]`` guards against
tampering or truncation of the weights, and ``"file_sha256"`` (beside ``header_json``)
covers the header text and the weights together, so an edited header (normalization,
class names) is refused like edited weights. Weights that are NaN or infinite (a diverged
training) are never written and refused on loading.

Header fields (all JSON): ``name``, ``task`` ("pretrain" | "segmentation"),
``architecture`` ("mg_unet3d"), ``width_divisor``, ``in_channels``, ``out_channels``,
``input_size``, ``method``, ``modalities``, ``preprocess`` (a preset dict with "name" and
"spacing"), ``n_cubes``, ``epochs``, ``software_version``, ``created``; segmentation models
add ``classes`` ([{"name", "label", "color": [r, g, b] in 0..1}]), ``patch_size``,
``training_cases``, ``sequences``; free-form extras are kept.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from SARCore.atomic import torch_save_atomic
from SARCore.errors import ModelFileError
from SARCore.version import SUPPORTED_MODEL_FORMATS, __version__

FORMAT = "sar-model"
FORMAT_VERSION = 1
SUFFIX = ".sarmodel"
TASKS = ("pretrain", "segmentation")
REQUIRED_FIELDS = ("name", "task", "architecture", "width_divisor", "in_channels",
                   "out_channels", "input_size", "method")


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over names, shapes, dtypes and bytes of every tensor, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def file_digest(header_json: str, weights_sha256: str) -> str:
    """sha256 over the exact header text and the weights' digest: the whole file's content."""
    digest = hashlib.sha256(b"sar-model-file\0")
    digest.update(header_json.encode("utf-8"))
    digest.update(b"\0" + weights_sha256.encode("ascii"))
    return digest.hexdigest()


def non_finite_tensors(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding a NaN or an infinity."""
    return [name for name, tensor in state_dict.items()
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
            and not bool(torch.isfinite(tensor).all())]


def make_header(**fields: Any) -> dict[str, Any]:
    """A header with the standard fields filled in; ``fields`` must include REQUIRED_FIELDS."""
    header = {"software_version": __version__,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              **fields}
    missing = [key for key in REQUIRED_FIELDS if key not in header]
    if missing:
        raise ValueError(f"model header lacks {', '.join(missing)}")
    json.dumps(header)  # must be JSON-serialisable; fail at save time, not load time
    return header


def save_model_file(path: str | Path, state_dict: dict[str, torch.Tensor],
                    header: dict[str, Any]) -> Path:
    """Write weights + header atomically; returns the path written."""
    weights = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    bad = non_finite_tensors(weights)
    if bad:
        raise ModelFileError(f"refusing to save a model whose weights are NaN or infinite "
                             f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})", path,
                             "the training diverged; lower the learning rate")
    header = {**header, "weights_sha256": weights_digest(weights)}
    header_json = json.dumps(header)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "header_json": header_json,
               "file_sha256": file_digest(header_json, header["weights_sha256"]),
               "state_dict": weights}
    torch_save_atomic(payload, path)
    return Path(path)


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelFileError("model file not found", path)
    if path.stat().st_size == 0:
        raise ModelFileError("not a readable SAR model file (it is empty: 0 bytes)", path,
                             "the copy or download was cut short; get the file again")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusal, truncation, zip errors: all mean "unusable"
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ModelFileError(f"not a readable SAR model file ({type(exc).__name__}: "
                             f"{first})", path,
                             "model files are loaded without running code; re-export it "
                             "with SARCore") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError("not a SAR model file (no 'sar-model' format tag)", path)
    version = payload.get("format_version")
    if version not in SUPPORTED_MODEL_FORMATS:
        raise ModelFileError(f"model file format version {version!r} is not supported by "
                             f"SARCore {__version__}", path, "update SARExtension")
    return payload


def _parse_header(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        header = json.loads(payload.get("header_json", ""))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ModelFileError("model header is not valid JSON", path) from exc
    if not isinstance(header, dict):
        raise ModelFileError("model header is not a JSON object", path)
    missing = [key for key in REQUIRED_FIELDS if key not in header]
    if missing:
        raise ModelFileError(f"model header lacks {', '.join(missing)}", path)
    if header["task"] not in TASKS:
        raise ModelFileError(f"unknown model task {header['task']!r}", path)
    for key in ("in_channels", "out_channels", "width_divisor"):
        value = header[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelFileError(f"header {key} must be a positive integer, not {value!r}",
                                 path)
    if 32 % header["width_divisor"]:
        raise ModelFileError(f"header width_divisor must divide 32, not "
                             f"{header['width_divisor']!r}", path)
    return header


#: The one message for a model file whose content no longer matches its checksums.
TAMPERED = "weights do not match the header's checksum (file altered or damaged)"


def _header_intact(payload: dict[str, Any], weights_sha256: str) -> bool:
    text = payload.get("header_json")
    stored = payload.get("file_sha256")
    return isinstance(text, str) and isinstance(stored, str) \
        and stored == file_digest(text, weights_sha256)


def read_header(path: str | Path) -> dict[str, Any]:
    """The header alone, after every check :func:`load_model_file` makes (a header is only
    worth showing when the file is intact)."""
    return load_model_file(path)[0]


def load_model_file(path: str | Path, *, task: str | None = None,
                    architecture: str | None = None, in_channels: int | None = None,
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Header and weights, checked against what the caller expects."""
    path = Path(path)
    payload = _read_payload(path)
    header = _parse_header(payload, path)
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError("model weights are missing or malformed", path)
    digest = weights_digest(state)
    if header.get("weights_sha256") != digest or not _header_intact(payload, digest):
        raise ModelFileError(TAMPERED, path)
    bad = non_finite_tensors(state)
    if bad:
        raise ModelFileError(f"model weights are NaN or infinite ({', '.join(bad[:3])}"
                             f"{', ...' if len(bad) > 3 else ''}): the training that made it "
                             "diverged", path,
                             "use another model file; this one cannot segment anything")
    expected = {"task": task, "architecture": architecture, "in_channels": in_channels}
    for key, want in expected.items():
        if want is not None and header.get(key) != want:
            raise ModelFileError(f"model has {key}={header.get(key)!r} but {want!r} is needed",
                                 path)
    return header, state


def build_unet(header: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None,
               path: str | Path | None = None) -> torch.nn.Module:
    """The U-Net a header describes, with ``state_dict``'s U-Net weights loaded strictly."""
    from SARCore.models.unet3d import UNet3D

    if header.get("architecture") != UNet3D.architecture:
        raise ModelFileError(f"unknown architecture {header.get('architecture')!r}", path)
    net = UNet3D(int(header["in_channels"]), int(header["out_channels"]),
                 int(header["width_divisor"]))
    if state_dict is not None:
        unet_state = {k[len("unet."):]: v for k, v in state_dict.items() if k.startswith("unet.")}
        try:
            net.load_state_dict(unet_state or state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelFileError("weights do not fit the architecture in the header: "
                                 f"{str(exc).splitlines()[0]}", path) from exc
    return net
