"""``segment``: whole-scan segmentation with a model file -> label map + Slicer .seg.nrrd."""

from __future__ import annotations

import argparse

from SARCore.cli.options import add_allow_outside_paths, add_device, add_out
from SARCore.progress import Reporter

HELP = ("segment scans (files, folders, BraTS case folders, DICOM series) with a segmentation "
        "model file; writes <case>_label.nii.gz and <case>.seg.nrrd per case")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders of them, BraTS case folders (the model's "
                             "sequences pick the files) or DICOM series folders")
    parser.add_argument("--model", required=True, help="segmentation model file (.sarmodel)")
    add_out(parser, "output folder")
    add_device(parser)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="bf16 autocast; auto uses it where the hardware computes bf16")
    parser.add_argument("--fast", action="store_true",
                        help="run at a coarser spacing (--fast-spacing, 2 mm) for machines "
                             "without a GPU; the label map is still on the scan's grid")
    parser.add_argument("--fast-spacing", type=float, default=2.0, metavar="MM",
                        help="spacing of --fast in mm")
    parser.add_argument("--window", nargs=3, type=int, metavar=("X", "Y", "Z"),
                        help="window size in voxels, multiples of 8 (default: the largest "
                             "that fits --memory-gb, at least the model's patch size)")
    parser.add_argument("--overlap", type=float, default=0.25,
                        help="overlap of neighbouring windows, fraction of the side")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="windows per forward pass (default: what the budget holds)")
    parser.add_argument("--memory-gb", type=float, metavar="GB",
                        help="memory for the network's activations (default: a quarter of "
                             "available RAM up to 3 GB, or half the free GPU memory)")
    parser.add_argument("--no-content-crop", dest="crop_to_content", action="store_false",
                        help="run the network on the whole scan; by default it runs on the "
                             "box around everything that differs from the scan's corner "
                             "value (skull-stripped brains: about a third of the voxels), "
                             "and the constant fill outside is background")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average the 8 axis-flip combinations")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write <case>_probability.nii.gz (foreground probability) "
                             "and, with --tta, <case>_disagreement.nii.gz (spread over flips)")
    parser.add_argument("--label-format", default="nii.gz", choices=("nii.gz", "nrrd"),
                        help="file format of the label map")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs; without it a case whose outputs came "
                             "from the same model and input is skipped, and one whose "
                             "outputs came from another model or input is refused")
    add_allow_outside_paths(parser)


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.inference.batch import segment_cases
    from SARCore.inference.segment import SegmentOptions

    options = SegmentOptions(
        device=args.device, precision=args.precision, fast=args.fast,
        fast_spacing=args.fast_spacing, window=tuple(args.window) if args.window else None,
        overlap=args.overlap, batch_size=args.batch_size, tta=args.tta,
        label_format=args.label_format, overwrite=args.overwrite, memory_gb=args.memory_gb,
        probabilities=args.probabilities, allow_outside_paths=args.allow_outside_paths,
        crop_to_content=args.crop_to_content)
    report = segment_cases(args.inputs, args.model, args.out, options, reporter)
    lines = [f"  {o['case']}: {o['label']} ({o['seconds']} s)" for o in report.outputs]
    lines += [f"  {k['case']}: skipped, {k['label']} is from this model and input"
              for k in report.skipped]
    lines += [f"  {f['case']}: FAILED: {f['error']}" for f in report.failed]
    reporter.log(f"{len(report.outputs)} segmented, {len(report.skipped)} skipped (already "
                 f"done), {len(report.failed)} failed\n" + "\n".join(lines))
    summary = {"outputs": report.outputs, "skipped": report.skipped, "failed": report.failed,
               "out": str(report.out_dir)}
    if report.failed:
        reporter.error(f"{len(report.failed)} case(s) failed:\n"
                       + "\n".join(f"  {f['case']}: {f['error']}" for f in report.failed),
                       kind="DataError", file=report.failed[0]["file"], exit_code=1, **summary)
        return 1
    wrote = (f"{len(report.outputs)} label map(s) and .seg.nrrd file(s)"
             + (f" ({len(report.skipped)} case(s) already done, skipped)"
                if report.skipped else ""))
    reporter.done(wrote=wrote, **summary)
    return 0
