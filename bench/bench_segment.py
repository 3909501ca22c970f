"""Whole-scan segmentation: SARCore's pipeline against MONAI's ``sliding_window_inference``.

One BraTS-size FLAIR volume (240 x 240 x 155) and the paper-width MG U-Net (width_divisor
1, about 19 M parameters) with random weights from a fixed seed. Which weights
(``--network``) decides whether the agreement check means anything:

* ``bright`` (default): the random network plus one hand-set path through it: channel 0
  of the four full-resolution convolutions (encoder level 0, decoder level 0) copies the
  input voxel, and the head reads that channel with gain 4 and a bias at the brightest
  1.5 % of the scan. The label is the FLAIR-hyperintense region (the script prints its
  Dice against the manual whole-tumor label), decided on local evidence as a trained
  network's would be mostly; every layer still runs at full cost, so the timing is that
  of any network of this size.
* ``random``: all weights random, the head scaled to a logit spread of 4 and its bias at
  the 70 % quantile of one window through the tumor. Near every window border the zero
  padding moves such a network's logits by as much as their whole spread, so two tilings
  compute different functions: MONAI's and ours disagree at Dice 0.92 even with equal
  64 x 64 x 32 windows placed differently (128 x 128 x 64 block, width 1/4). Agreement
  then measures the network, not the code (bench/RESULTS.md has the numbers).

Each pipeline runs in its own process (so peak memory is its own), end to end: read,
preprocess with the model's preset, infer, threshold, write the label map.

* MONAI: ``sliding_window_inference`` with window 64 x 64 x 32, overlap 0.25, Gaussian
  blending, ``sw_batch_size`` 1, fp32, the plain network (175 windows);
* SARCore: ``segment_cases`` with its defaults (window chosen from the memory budget,
  fused conv+BN, channels-last, batched windows; bf16 only where the CPU computes it),
  also writing the .seg.nrrd;
* SARCore ``--fast``: the same at 2 mm;
* SARCore ``whole`` (not run by default): ``--no-content-crop``, the network over the
  whole box like MONAI's, so the two ratios separate the work skipped (about two thirds
  of a skull-stripped BraTS box is constant fill, SARCore.inference.content) from the
  work done faster.

Reported: seconds, peak resident memory, number of windows, foreground fraction and the
Dice of each label map against MONAI's. The last line is ``ratio: X`` = MONAI seconds /
SARCore seconds. On a shared machine the times are noisy; run it alone for figures.

    python bench/bench_segment.py [--width-divisor 1] [--image FLAIR.nii.gz] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from SARCore.inference.model import load_segmentation_model  # noqa: E402
from SARCore.io.arrays import array_to_image, image_to_array  # noqa: E402
from SARCore.models import UNet3D, make_header, save_model_file  # noqa: E402
from SARCore.preprocess import get_preset, preprocess_image  # noqa: E402
from SARCore.training.device import resolve_device  # noqa: E402

DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "brats2015" / "brats_2013_pat0001_1" / \
    "Flair_subtrMeanDivStd.nii.gz"
WINDOW, OVERLAP = (64, 64, 32), 0.25
#: The careful CPU user's MONAI: BN folded, channels-last, 4 windows per batch, and the
#: fastest of these windows (``careful`` in ``--runs`` tries each).
CAREFUL_BATCH, CAREFUL_WINDOWS = 4, ("64x64x32", "96x96x64", "128x128x64")
#: Forward multiply-adds x 2 per voxel of the paper-width MG U-Net (1.86 MFLOP; a width
#: divisor k divides it by about k^2): the whole BraTS volume once is the issue's 17 TFLOP.
FLOP_PER_VOXEL = 1.86e6
#: ``random``: window (x, y, z start) through pat0001's tumor; 30 % of it becomes foreground.
CALIBRATION_START, FOREGROUND_QUANTILE = (52, 92, 50), 0.7
#: ``bright``: logit gain per z-score unit; share of the scan labelled foreground.
GAIN, BRIGHT_SHARE = 4.0, 0.015


def make_model(image_path: Path, width_divisor: int, folder: Path, network: str = "bright",
               seed: int = 0) -> Path:
    """Random paper-width U-Net set up as ``network`` (see the module docstring), saved."""
    torch.manual_seed(seed)
    net = UNet3D(1, 1, width_divisor).eval()
    preset = get_preset("brats")
    volume = image_to_array(preprocess_image(sitk.ReadImage(str(image_path)), preset)[0])
    with torch.no_grad():
        if network == "bright":
            _bright_path(net, volume)
        else:
            _calibrate_random(net, volume)
    header = make_header(
        name="bench", task="segmentation", architecture="mg_unet3d",
        width_divisor=width_divisor, in_channels=1, out_channels=1, input_size=list(WINDOW),
        method="scratch", patch_size=list(WINDOW), preprocess=preset.to_dict(),
        classes=[{"name": "tumor", "label": 1, "color": [1.0, 0.3, 0.2]}],
        sequences=["flair"], modalities=["MRI"], output_activation="sigmoid")
    return save_model_file(folder / "bench.sarmodel", net.state_dict(), header)


def _copy_channel(conv: torch.nn.Conv3d, source: int) -> None:
    """Output channel 0 of ``conv`` = input channel ``source`` at the same voxel."""
    conv.weight[0].zero_()
    conv.weight[0, source, 1, 1, 1] = 1.0
    conv.bias[0] = 0.0


def _bright_path(net: UNet3D, volume: np.ndarray) -> None:
    level0, up0 = net.encoder[0], net.decoder[-1]
    _copy_channel(level0[0][0], 0)
    _copy_channel(level0[1][0], 0)
    _copy_channel(up0.convs[0][0], up0.up.out_channels)  # skip channels follow the upsampled
    _copy_channel(up0.convs[1][0], 0)
    levels = np.unique(volume)
    cut = np.searchsorted(levels, np.quantile(volume, 1.0 - BRIGHT_SHARE))
    threshold = 0.5 * (levels[cut - 1] + levels[cut])  # between two grey levels: no ties
    net.head.weight[0, 0] = GAIN
    net.head.bias[0] = -GAIN * float(threshold)


def _calibrate_random(net: UNet3D, volume: np.ndarray) -> None:
    x, y, z = CALIBRATION_START
    window = np.ascontiguousarray(volume[x:x + WINDOW[0], y:y + WINDOW[1], z:z + WINDOW[2]])
    logits = net(torch.from_numpy(window)[None, None]).flatten()
    net.head.weight *= 4.0 / float(logits.std())
    net.head.bias *= 4.0 / float(logits.std())
    net.head.bias -= torch.quantile(net(torch.from_numpy(window)[None, None]).flatten(),
                                    FOREGROUND_QUANTILE)


def run_monai(image_path: Path, model_path: Path, out: Path, device: torch.device,
              window: tuple[int, int, int] = WINDOW, batch: int = 1,
              careful: bool = False) -> dict:
    """MONAI's default configuration, or (``careful``) what a careful CPU user would run:
    BN folded into the convolutions, channels-last, ``batch`` windows at once."""
    from monai.inferers import sliding_window_inference

    from SARCore.inference.runtime import prepare_network
    from SARCore.io.writers import write_image

    model = load_segmentation_model(model_path)
    net = (prepare_network(model.net, device) if careful else model.net.to(device).eval())
    start = time.perf_counter()
    image = sitk.ReadImage(str(image_path))
    prepared, _ = preprocess_image(image, model.preset)
    volume = torch.from_numpy(image_to_array(prepared, np.float32))[None, None].to(device)
    with torch.inference_mode():
        if careful:
            volume = volume.contiguous(memory_format=torch.channels_last_3d)
        logits = sliding_window_inference(volume, window, batch, net, overlap=OVERLAP,
                                          mode="gaussian")
    labels = (torch.sigmoid(logits)[0, 0] >= 0.5).cpu().numpy().astype(np.uint8)
    name = f"monai_{'x'.join(map(str, window))}_{batch}{'_careful' if careful else ''}"
    write_image(array_to_image(labels, image), out / f"{name}.nii.gz")
    seconds = time.perf_counter() - start
    steps = [math.ceil((n - w) / int(w * (1 - OVERLAP))) + 1 if n > w else 1
             for n, w in zip(volume.shape[2:], window)]  # MONAI's own window count
    return {"seconds": seconds, "label": str(out / f"{name}.nii.gz"),
            "windows": math.prod(steps), "window": list(window), "batch": batch,
            "precision": "fp32"}


def run_ours(image_path: Path, model_path: Path, out: Path, kind: str, device: str) -> dict:
    from SARCore.inference import Segmenter, SegmentOptions, segment_cases
    from SARCore.inference.content import box_fraction, content_box
    from SARCore.inference.sliding_window import WindowPlan

    options = SegmentOptions(fast=kind == "fast", overwrite=True, device=device,
                             crop_to_content=kind != "whole",
                             precision="fp32" if kind == "fp32" else "auto")
    start = time.perf_counter()
    report = segment_cases([image_path], model_path, out / kind, options)
    seconds = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"segmentation failed: {report.failed}")
    segmenter = Segmenter(load_segmentation_model(model_path), options)
    volume, _ = segmenter.prepare([sitk.ReadImage(str(image_path))])
    shape = volume.shape[1:]
    box = content_box(volume, segmenter.model.patch_size) if options.crop_to_content else None
    if box is not None:
        volume = volume[(slice(None), *box)]
    window, batch = segmenter.plan(volume.shape[1:])
    return {"seconds": seconds, "label": report.outputs[0]["label"], "window": list(window),
            "batch": batch, "windows": WindowPlan.make(volume.shape[1:], window, OVERLAP).count,
            "precision": "bf16" if segmenter.autocast else "fp32",
            "content": list(volume.shape[1:]), "content_fraction": box_fraction(box, shape)}


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    start_cpu = time.process_time()
    if args.only == "monai":
        result = run_monai(Path(args.image), Path(args.model), out, resolve_device(args.device))
    elif args.only.startswith("careful"):
        window = tuple(int(v) for v in args.only.split(":")[1].split("x"))
        result = run_monai(Path(args.image), Path(args.model), out,
                           resolve_device(args.device), window, CAREFUL_BATCH, careful=True)
    else:
        result = run_ours(Path(args.image), Path(args.model), out, args.only, args.device)
    result["cpu_seconds"] = time.process_time() - start_cpu
    result["load"] = os.getloadavg()[0]
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("RESULT " + json.dumps(result), flush=True)


def spawn(kind: str, args: argparse.Namespace, model: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--only", kind, "--model", str(model), "--out",
               str(out), "--image", str(args.image), "--threads", str(args.threads),
               "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _labels(path: str) -> np.ndarray:
    return image_to_array(sitk.ReadImage(path)) > 0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--width-divisor", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where both pipelines run (cuda: MONAI fp32, ours auto=bf16)")
    parser.add_argument("--network", choices=("bright", "random"), default="bright",
                        help="see the module docstring")
    parser.add_argument("--runs", nargs="+", default=["monai", "careful", "ours", "fast"],
                        choices=("monai", "careful", "ours", "whole", "fp32", "fast"),
                        help="careful: MONAI tuned for a CPU, each of --careful-windows; "
                             "whole: ours without the content crop (equal voxel work); "
                             "fp32: ours forced to float32 (equal precision with MONAI "
                             "where 'auto' picks bf16)")
    parser.add_argument("--careful-windows", nargs="+", default=list(CAREFUL_WINDOWS))
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-segment-") as tmp:
        folder = Path(tmp)
        model = make_model(Path(args.image), args.width_divisor, folder, args.network)
        kinds = [k for run in args.runs
                 for k in ([f"careful:{w}" for w in args.careful_windows]
                           if run == "careful" else [run])]
        results = {kind: spawn(kind, args, model, folder) for kind in kinds}
        report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    size = sitk.ReadImage(str(args.image)).GetSize()
    reference = _labels(results["monai"]["label"]) if "monai" in results else None
    manual_path = Path(args.image).parent / "OTMultiClass.nii.gz"
    manual = _labels(str(manual_path)) if manual_path.is_file() else None
    print(f"image {Path(args.image).name} {size}, width_divisor {args.width_divisor}, "
          f"{args.network} network, {args.device}, {args.threads} threads, torch {torch.__version__}")
    print(f"{'run':18s} {'seconds':>9s} {'CPU s':>8s} {'load':>5s} {'peak GB':>8s} {'windows':>8s} {'window':>14s} "
          f"{'batch':>5s} {'dtype':>5s} {'fg %':>6s} {'Dice vs MONAI':>14s} {'Dice vs ours':>13s} "
          f"{'Dice vs manual':>15s}")
    ours = _labels(results["ours"]["label"]) if "ours" in results else None
    for kind, result in results.items():
        labels = _labels(result["label"])
        agreement = f"{_dice(labels, reference):.4f}" if reference is not None else "-"
        truth = f"{_dice(labels, manual):.4f}" if manual is not None else "-"
        versus_ours = f"{_dice(labels, ours):.4f}" if ours is not None else "-"
        window = "x".join(str(w) for w in result["window"])
        print(f"{kind:18s} {result['seconds']:9.1f} {result['cpu_seconds']:8.1f} "
              f"{result['load']:5.1f} {result['peak_rss_gb']:8.2f} "
              f"{result['windows']:8d} {window:>14s} {result['batch']:5d} "
              f"{result['precision']:>5s} "
              f"{100 * labels.mean():6.2f} {agreement:>14s} {versus_ours:>13s} {truth:>15s}")
    if "ours" in results:
        voxels = math.prod(sitk.ReadImage(str(args.image)).GetSize())
        flop = FLOP_PER_VOXEL / args.width_divisor ** 2 * voxels
        ours = results["ours"]["seconds"]
        share = results["ours"].get("content_fraction", 1.0)
        content = "x".join(str(n) for n in results["ours"].get("content", size))
        print(f"one pass over the volume: {flop / 1e12:.2f} TFLOP; ours ran the network on "
              f"the content box {content} ({100 * share:.0f} % of the voxels, "
              f"{share * flop / 1e12:.2f} TFLOP): {share * flop / ours / 1e9:.1f} GFLOP/s of "
              f"network work end to end, {flop / ours / 1e9:.1f} GFLOP/s whole-volume "
              f"equivalent")
        careful = [(r["seconds"], k) for k, r in results.items() if k.startswith("careful")]
        if careful:
            best, kind = min(careful)
            print(f"careful MONAI best: {kind} {best:.1f} s; ratio against it {best / ours:.2f}")
        if "whole" in results and "monai" in results:
            print(f"at equal voxel work (whole, no content crop): "
                  f"{results['monai']['seconds'] / results['whole']['seconds']:.2f} x MONAI")
        if "fp32" in results and "monai" in results:
            print(f"at equal precision (fp32, content crop): "
                  f"{results['monai']['seconds'] / results['fp32']['seconds']:.2f} x MONAI")
    if "monai" in results and "ours" in results:
        print(f"ratio: {results['monai']['seconds'] / results['ours']['seconds']:.2f}")


if __name__ == "__main__":
    main()
