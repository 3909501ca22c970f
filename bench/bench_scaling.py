"""Cost curves: how time (and memory) grow with the work, each fitted as time ~ a * size^k.

Four curves, each drawn as a PNG in ``--out-dir`` (default ``bench/``) and summed up in one
line with its exponent ``k`` (1 is linear; the bench says "linear" for 0.85 <= k <= 1.15):

(a) ``scaling_segmentation.png``: ``Segmenter.segment`` (preprocess, streamed inference,
    label map on the scan's grid; no file I/O) and its peak resident memory for three
    volumes: a BraTS FLAIR (240x240x155), the chest CT resampled to 1 mm (about
    499x499x282) and a 512x512x300 CT at 1 mm resampled from the same chest CT. The model
    is the MG U-Net at ``--width-divisor`` (default 4: the whole bench then takes about 10
    minutes on 2 quiet cores; paper width would take about 16x longer) with random weights;
    its preset keeps each scan's grid, so the network sees exactly those sizes.
(b) ``scaling_preprocess.png``: ``preprocess_image`` with the ``ct`` preset (B-spline to
    1 mm, clip, min-max) on the chest CT cut to 1/8 ... all of its slices, against output
    voxels.
(c) ``scaling_cubes.png``: ``build_cubes`` (default counts, 32 cubes per volume) against the
    number of preprocessed volumes (BraTS FLAIR and T1c of the shipped cases, ``mri``
    preset; preprocessing not timed).
(d) ``scaling_ddp.png``: SAR pre-training throughput (samples/s over all processes, batch 6
    per process, as ``bench/bench_pretrain.py`` steps) with 1 and 2 DDP processes started by
    ``torchrun`` on gloo; the machine's cores are shared out between the processes.

The last line is ``ratio: X`` = global samples/s with 2 DDP processes / with 1 (2.0 would be
perfect scaling). ``--quick`` runs every part at tiny sizes (for the test; its figures mean
nothing). Peak memory is this process's VmHWM, reset before each volume through
``/proc/self/clear_refs``; it includes the interpreter and torch (about 0.4 GB).

    python bench/bench_scaling.py [--width-divisor 4] [--parts seg prep cubes ddp]
    python bench/bench_scaling.py --quick --out-dir /tmp/curves
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
DATA = Path(os.environ.get("SAR_DATA", REPO.parent / "shared" / "data"))
CHEST_CT = DATA / "ct" / "chest_ct" / "chest_ct_256x256x141.nii.gz"
#: Default width divisor: about 10 minutes for the whole bench on 2 quiet cores.
DEFAULT_DIVISOR = 4
QUICK_DIVISOR, QUICK_SHRINK = 16, 4  # --quick: width/16, every volume 4x smaller per axis
LINEAR_BAND = (0.85, 1.15)
DDP_BATCH = 6


# -- measuring ------------------------------------------------------------------------

def reset_peak_memory() -> None:
    """Restart this process's VmHWM from its current resident size (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_gb() -> float:
    """This process's peak resident memory since the last reset (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(function: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def fit_power(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(a, k)`` of ``seconds = a * sizes^k`` in log-log space."""
    k, log_a = np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(seconds, float)), 1)
    return float(math.exp(log_a)), float(k)


def growth(k: float) -> str:
    low, high = LINEAR_BAND
    return "linear" if low <= k <= high else ("sub-linear" if k < low else "super-linear")


def statement(name: str, unit: str, sizes: Sequence[float], seconds: Sequence[float]) -> str:
    a, k = fit_power(sizes, seconds)
    return f"fit {name}: time ~ {a:.3g} * {unit}^{k:.2f}: k = {k:.2f}, {growth(k)}"


def plot(path: Path, title: str, xlabel: str, sizes: Sequence[float],
         series: dict[str, Sequence[float]], right: tuple[str, Sequence[float]] | None = None
         ) -> Path:
    """Log-log points + fitted power law per series; ``right``: a second y axis (memory)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=100)
    grid = np.geomspace(min(sizes), max(sizes), 50) if min(sizes) != max(sizes) else sizes
    for label, values in series.items():
        a, k = fit_power(sizes, values)
        axis.plot(sizes, values, "o", label=f"{label} (k = {k:.2f})")
        axis.plot(grid, a * np.asarray(grid, float) ** k, "--", linewidth=1)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("seconds" if "samples" not in next(iter(series)) else "samples/s")
    axis.set_title(title, fontsize=10)
    if right is not None:
        twin = axis.twinx()
        twin.plot(sizes, right[1], "s:", color="grey", label=right[0])
        twin.set_ylabel(right[0])
        twin.legend(loc="lower right", fontsize=8)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


# -- (a) segmentation -----------------------------------------------------------------

def resampled(image: sitk.Image, size: Sequence[int], spacing: Sequence[float]) -> sitk.Image:
    """``image`` linearly resampled onto a grid of ``size`` x ``spacing`` centred on it."""
    centre = image.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in image.GetSize()])
    direction = np.array(image.GetDirection()).reshape(3, 3)
    half = direction @ (np.array(spacing) * (np.array(size) - 1) / 2)
    origin = [float(c - h) for c, h in zip(centre, half)]
    return sitk.Resample(image, [int(n) for n in size], sitk.Transform(), sitk.sitkLinear,
                         origin, [float(s) for s in spacing], image.GetDirection(),
                         float(sitk.GetArrayViewFromImage(image).min()), sitk.sitkFloat32)


def segmentation_volumes(shrink: int) -> dict[str, sitk.Image]:
    """The three test volumes, every axis divided by ``shrink`` (1: full size)."""
    flair = sitk.ReadImage(str(DATA / "brats2015" / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz"))
    chest = sitk.ReadImage(str(CHEST_CT))
    extent = [n * s for n, s in zip(chest.GetSize(), chest.GetSpacing())]
    one_mm = [max(8, int(round(e / shrink))) for e in extent]
    volumes = {
        "BraTS FLAIR": flair if shrink == 1 else resampled(
            flair, [n // shrink for n in flair.GetSize()],
            [s * shrink for s in flair.GetSpacing()]),
        "chest CT at 1 mm": resampled(chest, one_mm, [float(shrink)] * 3),
        "CT 512x512x300": resampled(chest, [512 // shrink, 512 // shrink, 300 // shrink],
                                    [extent[0] / 512 * shrink, extent[1] / 512 * shrink,
                                     extent[2] / 300 * shrink]),
    }
    return volumes


def segmentation_model(width_divisor: int, folder: Path) -> Path:
    """MG U-Net with random weights whose preset keeps the scan's grid (z-score only)."""
    import torch

    from SARCore.models import UNet3D, make_header, save_model_file

    torch.manual_seed(0)
    net = UNet3D(1, 1, width_divisor).eval()
    preset = {"name": "scaling", "modality": "MRI", "target_spacing": None,
              "normalization": "zscore_nonzero", "min_shape": [8, 8, 8]}
    header = make_header(
        name="scaling", task="segmentation", architecture="mg_unet3d",
        width_divisor=width_divisor, in_channels=1, out_channels=1, input_size=[64, 64, 32],
        method="scratch", patch_size=[64, 64, 32], preprocess=preset,
        classes=[{"name": "region", "label": 1, "color": [1.0, 0.3, 0.2]}],
        sequences=["flair"], modalities=["MRI"], output_activation="sigmoid")
    return save_model_file(folder / "scaling.sarmodel", net.state_dict(), header)


def segmentation_curve(width_divisor: int, shrink: int, folder: Path) -> dict:
    from SARCore.inference import Segmenter, SegmentOptions
    from SARCore.inference.model import load_segmentation_model

    # The whole volume: these curves measure how the network's work grows with voxels, not
    # how much of each scan is constant fill (which the default content crop skips).
    segmenter = Segmenter(load_segmentation_model(segmentation_model(width_divisor, folder)),
                          SegmentOptions(device="cpu", crop_to_content=False))
    volumes = segmentation_volumes(shrink)
    first = next(iter(volumes.values()))  # warm-up (oneDNN primitives, allocator), untimed
    size = [min(64, n) for n in first.GetSize()]  # from the centre: a corner is all background,
    centre = [(n - s) // 2 for n, s in zip(first.GetSize(), size)]  # which a z-score refuses
    segmenter.segment([sitk.RegionOfInterest(first, size, centre)])
    rows = []
    for name, image in volumes.items():
        reset_peak_memory()
        seconds = timed(lambda image=image: segmenter.segment([image]))
        rows.append({"volume": name, "size": list(image.GetSize()),
                     "voxels": math.prod(image.GetSize()), "seconds": seconds,
                     "peak_gb": peak_memory_gb(), "window": list(segmenter.last_window or ())})
        print(f"  segment {name} {'x'.join(map(str, image.GetSize()))}: {seconds:.2f} s, "
              f"peak {rows[-1]['peak_gb']:.2f} GB, window "
              f"{'x'.join(map(str, rows[-1]['window']))}", flush=True)
    return {"rows": rows}


# -- (b) preprocessing ----------------------------------------------------------------

def preprocess_curve(quick: bool) -> dict:
    from SARCore.preprocess import get_preset, preprocess_image

    chest = sitk.ReadImage(str(CHEST_CT))
    preset = get_preset("ct")
    nx, ny, nz = chest.GetSize()
    if quick:  # a 64 x 64 in-plane patch: outputs of about 125 x 125 x 32 ... 128
        cuts = [(64, 64, z) for z in (16, 32, 64)]
    else:
        cuts = [(nx, ny, max(16, nz * f // 8)) for f in (1, 2, 4, 8)]
    rows = []
    for cut in cuts:
        start = [(n - c) // 2 for n, c in zip(chest.GetSize(), cut)]
        part = sitk.RegionOfInterest(chest, list(cut), start)
        start = time.perf_counter()
        size = preprocess_image(part, preset)[0].GetSize()
        seconds = time.perf_counter() - start
        rows.append({"input": list(cut), "output": list(size), "voxels": math.prod(size),
                     "seconds": seconds})
        print(f"  preprocess {'x'.join(map(str, cut))} -> {'x'.join(map(str, size))}: "
              f"{seconds:.2f} s", flush=True)
    return {"rows": rows}


# -- (c) cube generation --------------------------------------------------------------

def cubes_curve(quick: bool, folder: Path) -> dict:
    from bench_data import brats_sources, prepare_volumes

    from SARCore.cubes.config import CubeConfig
    from SARCore.cubes.generator import build_cubes

    sources = brats_sources()[:3] if quick else brats_sources()  # 8 volumes (3 crops if quick)
    prepared = prepare_volumes(sources, folder, (96, 96, 48) if quick else None)
    config = CubeConfig(per_volume=(2, 2, 4)) if quick else CubeConfig()
    counts = [1, 2, 3] if quick else [1, 2, 4, 8]
    rows = []
    for count in (c for c in counts if c <= len(prepared)):
        store = folder / f"cubes{count}"
        seconds = timed(lambda count=count, store=store: build_cubes(prepared[:count], store,
                                                                     config))
        rows.append({"volumes": count, "cubes": count * sum(config.per_volume),
                     "seconds": seconds})
        print(f"  cubes from {count} volume(s): {seconds:.2f} s", flush=True)
        shutil.rmtree(store, ignore_errors=True)
    return {"rows": rows}


# -- (d) DDP pre-training throughput --------------------------------------------------

def ddp_worker(width_divisor: int, steps: int, warmup: int) -> None:
    """One torchrun process: SAR steps on its own batch; rank 0 prints global samples/s."""
    import torch
    import torch.distributed as dist
    from bench_pretrain import real_batch
    from torch.nn.parallel import DistributedDataParallel

    from SARCore.pretrain.config import PretrainConfig
    from SARCore.pretrain.objectives import PretrainObjective
    from SARCore.pretrain.runner import make_optimizer
    from SARCore.training.distributed import cleanup, init_distributed

    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    info, device = init_distributed(torch.device("cpu"))
    torch.manual_seed(0)
    config = PretrainConfig(method="sar", width_divisor=width_divisor)
    objective = PretrainObjective(config)
    model = (DistributedDataParallel(objective, find_unused_parameters=bool(
        objective.find_unused_parameters)) if info.enabled else objective)
    optimizer = make_optimizer(objective, config)
    generator = torch.Generator().manual_seed(info.rank)
    batch = real_batch(device, seed=info.rank)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if info.enabled:
                dist.barrier()
            start = time.perf_counter()
        loss = model(batch, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if info.enabled:
        dist.barrier()
    seconds = time.perf_counter() - start
    if info.is_main:
        print("DDP " + json.dumps({"processes": world, "threads": torch.get_num_threads(),
                                   "samples_per_s": world * DDP_BATCH * steps / seconds}),
              flush=True)
    cleanup(info)


def ddp_curve(width_divisor: int, steps: int, warmup: int) -> dict:
    rows = []
    for processes in (1, 2):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={processes}", __file__, "--ddp-worker",
                   "--width-divisor", str(width_divisor), "--ddp-steps", str(steps),
                   "--ddp-warmup", str(warmup)]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        lines = [line for line in done.stdout.splitlines() if line.startswith("DDP ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"torchrun with {processes} process(es) failed:\n"
                             f"{done.stdout[-2000:]}{done.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][4:]))
        print(f"  DDP {processes} process(es) x {rows[-1]['threads']} thread(s): "
              f"{rows[-1]['samples_per_s']:.3f} samples/s", flush=True)
    return {"rows": rows}


# -- the whole bench ------------------------------------------------------------------

def report(results: dict, out_dir: Path, width_divisor: int) -> float | None:
    """Draw each curve, print its fit; returns the DDP 2-process speed-up (or None)."""
    if "seg" in results:
        rows = results["seg"]["rows"]
        sizes = [r["voxels"] for r in rows]
        plot(out_dir / "scaling_segmentation.png",
             f"segmentation, MG U-Net width/{width_divisor}, CPU", "voxels", sizes,
             {"segment": [r["seconds"] for r in rows]},
             ("peak GB", [r["peak_gb"] for r in rows]))
        print(statement("segmentation", "voxels", sizes, [r["seconds"] for r in rows]))
        a, k = fit_power(sizes, [r["peak_gb"] for r in rows])
        print(f"fit segmentation peak memory: GB ~ {a:.3g} * voxels^{k:.2f}: k = {k:.2f}, "
              f"{growth(k)}")
    if "prep" in results:
        rows = results["prep"]["rows"]
        sizes = [r["voxels"] for r in rows]
        plot(out_dir / "scaling_preprocess.png", "preprocessing (ct preset: B-spline to 1 mm)",
             "output voxels", sizes, {"preprocess": [r["seconds"] for r in rows]})
        print(statement("preprocessing", "voxels", sizes, [r["seconds"] for r in rows]))
    if "cubes" in results:
        rows = results["cubes"]["rows"]
        sizes = [r["volumes"] for r in rows]
        plot(out_dir / "scaling_cubes.png", "cube generation (build_cubes)", "volumes", sizes,
             {"build_cubes": [r["seconds"] for r in rows]})
        print(statement("cube generation", "volumes", sizes, [r["seconds"] for r in rows]))
    speedup = None
    if "ddp" in results:
        rows = results["ddp"]["rows"]
        sizes = [r["processes"] for r in rows]
        rates = [r["samples_per_s"] for r in rows]
        plot(out_dir / "scaling_ddp.png", f"SAR pre-training, width/{width_divisor}, gloo",
             "DDP processes", sizes, {"samples/s": rates})
        speedup = rates[-1] / rates[0]
        k = math.log(speedup) / math.log(sizes[-1] / sizes[0])
        print(f"fit DDP throughput: samples/s ~ processes^{k:.2f}: k = {k:.2f}, "
              f"{growth(k)} (2 processes give {speedup:.2f}x the samples/s of 1)")
    return speedup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny sizes (width/{QUICK_DIVISOR}, volumes / {QUICK_SHRINK})")
    parser.add_argument("--width-divisor", type=int, default=None,
                        help=f"U-Net width divisor (default {DEFAULT_DIVISOR}, "
                             f"{QUICK_DIVISOR} with --quick)")
    parser.add_argument("--parts", nargs="+", default=["seg", "prep", "cubes", "ddp"],
                        choices=("seg", "prep", "cubes", "ddp"))
    parser.add_argument("--out-dir", default=str(REPO / "bench"), help="where the PNGs go")
    parser.add_argument("--ddp-steps", type=int, default=None, help="timed steps (default 3)")
    parser.add_argument("--ddp-warmup", type=int, default=1)
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    divisor = args.width_divisor or (QUICK_DIVISOR if args.quick else DEFAULT_DIVISOR)
    steps = args.ddp_steps or (1 if args.quick else 3)
    if args.ddp_worker:
        ddp_worker(divisor, steps, args.ddp_warmup)
        return 0
    import torch

    out_dir = Path(args.out_dir)
    print(f"bench_scaling: width/{divisor} (default {DEFAULT_DIVISOR}: about 10 minutes on 2 "
          f"quiet cores){', quick sizes' if args.quick else ''}; {os.cpu_count()} cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        if "seg" in args.parts:
            results["seg"] = segmentation_curve(divisor, QUICK_SHRINK if args.quick else 1,
                                                Path(tmp))
        if "prep" in args.parts:
            results["prep"] = preprocess_curve(args.quick)
        if "cubes" in args.parts:
            results["cubes"] = cubes_curve(args.quick, Path(tmp))
        if "ddp" in args.parts:
            results["ddp"] = ddp_curve(divisor, steps, args.ddp_warmup)
    speedup = report(results, out_dir, divisor)
    print(f"plots in {out_dir}; load at the end {os.getloadavg()[0]:.1f}")
    if speedup is not None:
        print("(ratio: global SAR samples/s with 2 DDP processes / with 1 process)")
        print(f"ratio: {speedup:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
