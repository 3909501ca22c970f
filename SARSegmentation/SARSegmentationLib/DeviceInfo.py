"""Which compute device the engine can use, and how much GPU memory a model will need.

The probe runs in the engine's interpreter as a separate process: importing torch and
initialising CUDA inside Slicer would hold GPU memory for the whole session (and torch
may not be installed yet). It prints one JSON ``done`` event, so it runs through the same
:class:`~SARSegmentationLib.JobRunner.ProcessRunner` as every other job.

GPU memory estimate for segmentation (shown before a run; an estimate, not a measurement)::

    V  = voxels of one window: the model's patch size (header "patch_size", else
         "input_size"), the smallest window the engine uses
    k  = header "width_divisor" (1 = the paper's 3D U-Net, 64 channels at full resolution)
    activations = b x (64 / k) x V        (b: the engine's own measured peak bytes per window
                  voxel and level-0 channel, SARCore.inference.segment.BYTES_PER_VOXEL_CHANNEL,
                  32 B at the time of writing)
    weights     = 4 B x 19.07 M / k^2     (conv weights scale with channels^2)
    total       = 0.6 GiB (CUDA context, cuDNN/cuBLAS) + weights + activations

A 64x64x32 window at full width needs about 0.9-1.0 GiB. That is the least the engine
needs; by default it grows the window (and the batch) to use up to half of the free GPU
memory, because larger windows are faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from SARSegmentationLib.Engine import engineConstant, engineEnvironment, pythonExecutable
from SARSegmentationLib.JobRunner import ProcessRunner

GIB = 1024 ** 3
CONTEXT_BYTES = int(0.6 * GIB)
FULL_WIDTH_PARAMETERS = 19.07e6
FULL_WIDTH_CHANNELS = 64


def bytesPerVoxelChannel() -> float:
    """The engine's measured activation bytes per window voxel and level-0 channel, read
    from ``SARCore.inference.segment`` without importing it (that would import torch)."""
    return engineConstant("SARCore.inference.segment", "BYTES_PER_VOXEL_CHANNEL", 32)

PROBE_CODE = r"""
import json
report = {"event": "done", "torch": None, "cuda_build": None, "cuda_available": False,
          "devices": [], "problem": ""}
try:
    import torch
    report["torch"] = torch.__version__
    report["cuda_build"] = torch.version.cuda
    report["cuda_available"] = bool(torch.cuda.is_available())
    if report["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            report["devices"].append({"index": index, "name": torch.cuda.get_device_name(index),
                                      "total_bytes": total, "free_bytes": free})
    elif torch.version.cuda is None:
        report["problem"] = "this torch build has no CUDA support (a CPU-only build)"
    else:
        report["problem"] = "torch found no usable NVIDIA GPU or driver"
except Exception as exc:
    report["problem"] = f"torch cannot be imported ({type(exc).__name__}: {exc})"
print(json.dumps(report), flush=True)
"""


@dataclass(frozen=True)
class DeviceReport:
    """What the probe found."""

    torchVersion: str | None = None
    cudaBuild: str | None = None
    cudaAvailable: bool = False
    devices: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""

    @classmethod
    def fromSummary(cls, summary: dict[str, Any]) -> DeviceReport:
        return cls(summary.get("torch"), summary.get("cuda_build"),
                   bool(summary.get("cuda_available")), list(summary.get("devices") or []),
                   str(summary.get("problem") or ""))

    def describe(self) -> str:
        if self.cudaAvailable and self.devices:
            gpu = self.devices[0]
            return (f"GPU: {gpu['name']} ({gpu['free_bytes'] / GIB:.1f} of "
                    f"{gpu['total_bytes'] / GIB:.1f} GiB free)")
        if self.torchVersion is None:
            return f"PyTorch is not usable: {self.problem}"
        return (f"No usable CUDA GPU: {self.problem}. The CPU works but is slower; "
                "fast mode is recommended.")


def startProbe(python: str | None = None) -> ProcessRunner:
    """Start the device probe; poll the runner, then :meth:`DeviceReport.fromSummary`."""
    runner = ProcessRunner([python or pythonExecutable(), "-c", PROBE_CODE],
                           env=engineEnvironment())
    runner.start()
    return runner


def probeDevices(python: str | None = None, timeout: float = 120.0) -> DeviceReport:
    """Blocking probe (scripts, tests)."""
    result = startProbe(python).wait(timeout=timeout)
    if not result.ok:
        return DeviceReport(problem=f"the device probe failed: {result.message}")
    return DeviceReport.fromSummary(result.summary)


def resolveDevice(requested: str, report: DeviceReport) -> tuple[str, str]:
    """The device to pass to the engine and a plain sentence for the panel.

    ``auto`` runs on the GPU when one is usable, else on the CPU with a note saying so;
    ``cuda`` without a usable GPU falls back to the CPU only after saying why.
    """
    if requested == "cpu":
        return "cpu", "Running on the CPU (as chosen); fast mode shortens the wait."
    if requested == "mps":  # the engine checks MPS itself and says clearly if it cannot
        return "mps", "Running on the Apple GPU (MPS), as chosen."
    if report.cudaAvailable:
        return "cuda", report.describe()
    note = report.describe()
    if requested == "cuda":
        return "cpu", f"GPU was chosen, but {note[0].lower()}{note[1:]} Use the CPU instead?"
    return "cpu", note


def windowOf(header: dict[str, Any]) -> list[int]:
    window = header.get("patch_size") or header.get("input_size") or [64, 64, 32]
    return [int(v) for v in window]


def estimateGpuBytes(header: dict[str, Any]) -> int:
    """Least GPU memory a segmentation with this model needs (see the module docstring)."""
    k = max(1, int(header.get("width_divisor", 1) or 1))
    voxels = math.prod(windowOf(header))
    weights = 4 * FULL_WIDTH_PARAMETERS / k ** 2
    activations = bytesPerVoxelChannel() * (FULL_WIDTH_CHANNELS / k) * voxels
    return int(CONTEXT_BYTES + weights + activations)


def memoryText(header: dict[str, Any], report: DeviceReport | None = None) -> str:
    """"Needs at least 1.0 GiB of GPU memory (window 64x64x32)", plus a warning if short."""
    need = estimateGpuBytes(header)
    window = "x".join(str(v) for v in windowOf(header))
    text = (f"Needs at least {need / GIB:.1f} GiB of GPU memory (window {window}; more free "
            "memory is used for larger, faster windows)")
    if report and report.cudaAvailable and report.devices:
        free = report.devices[0]["free_bytes"]
        if free < need:
            text += (f"; only {free / GIB:.1f} GiB are free: close other GPU programs or "
                     "use the CPU")
    return text + "."
