"""Seconds and peak memory to preprocess real scans: our pipeline against a plain baseline.

Cases: the chest CT (256x256x141 at 1.95x1.95x2 mm, preset ``ct``: resample to 1 mm with
a cubic B-spline, clip to [-1000, 1000] HU, min-max to [0, 1]) and a BraTS FLAIR
(240x240x155 at 1 mm, preset ``brats``: z-score over the non-zero voxels).

* ours:     ``SARCore.preprocess.preprocess_cases`` on the case: read with validation
  (NIfTI truncation and NaN scan), separable B-spline, normalise, atomic ``.nii.gz``
  write, source and output SHA-256, ``manifest.json``.
* baseline: the same spec written the obvious way (:func:`baseline_preprocess`):
  ``sitk.ReadImage``, ``sitk.Resample`` with ``sitkBSpline`` onto the 1 mm grid,
  numpy clip and normalise, ``sitk.WriteImage``. No checks, no manifest.

Every run is a fresh child process and reports its own peak resident memory, VmHWM from
``/proc/self/status`` (tracemalloc does not see SimpleITK's buffers, and ``ru_maxrss``
is inherited across fork+exec on Linux: a child would report at least its parent's
size). The parent imports only the standard library. The two outputs are compared
voxel by voxel in another child (away from the border, where ITK writes its default
value past the last voxel centre). The last line is ``ratio: X`` = total baseline
seconds / total our seconds.

    python bench/bench_preprocess.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAR_DATA", REPO.parent / "shared" / "data"))
CASES = {
    "chest CT (ct)": (DATA / "ct" / "chest_ct" / "chest_ct_256x256x141.nii.gz", "ct"),
    "BraTS FLAIR (brats)": (DATA / "brats2015" / "brats_2013_pat0001_1" /
                            "Flair_subtrMeanDivStd.nii.gz", "brats"),
}


def baseline_preprocess(source: Path, preset: str, out: Path) -> None:
    """The spec done plainly: sitk.Resample (B-spline) + numpy clip/normalise + write."""
    import numpy as np
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    spacing = (1.0, 1.0, 1.0)
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(),
                                                     spacing)]
    resampled = sitk.Resample(image, size, sitk.Transform(), sitk.sitkBSpline,
                              image.GetOrigin(), spacing, image.GetDirection(), 0.0,
                              sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(resampled)
    if preset == "ct":
        values = np.clip(values, -1000.0, 1000.0)
        values = (values - values.min()) / (values.max() - values.min())
    else:
        brain = values != 0
        values = np.where(brain, (values - values[brain].mean()) / values[brain].std(), 0.0)
    result = sitk.GetImageFromArray(values.astype(np.float32))
    result.CopyInformation(resampled)
    sitk.WriteImage(result, str(out), True)


def ours_preprocess(source: Path, preset: str, out: Path) -> None:
    from SARCore.io.discovery import discover_cases
    from SARCore.preprocess import get_preset, preprocess_cases

    report = preprocess_cases(discover_cases([source]), out.parent, get_preset(preset))
    if not report.ok:
        raise RuntimeError(report.summary())
    Path(out.parent / f"{report.done[0]}.nii.gz").rename(out)


def child(method: str, case: str, out: str) -> None:
    """Run one method on one case in this process; print seconds and peak RSS as JSON."""
    source, preset = CASES[case]
    run = ours_preprocess if method == "ours" else baseline_preprocess
    sys.path.insert(0, str(REPO))
    import numpy  # noqa: F401  imports outside the timed region, for both methods
    import SimpleITK  # noqa: F401

    import SARCore.preprocess  # noqa: F401

    start = time.perf_counter()
    run(source, preset, Path(out))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mib": peak_resident_mib()}))


def peak_resident_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss where there is no /proc)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method: str, case: str, folder: Path) -> tuple[dict, Path]:
    out = folder / "out.nii.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, __file__, "--child", method, case, str(out)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1]), out


def max_interior_difference(a: Path, b: Path) -> float:
    """Largest voxel difference away from the border (run in a child: the parent stays small)."""
    code = ("import sys, numpy as np, SimpleITK as s; a, b = (s.GetArrayFromImage(s.ReadImage(p))"
            " for p in sys.argv[1:]); i = tuple(slice(2, n - 3) for n in a.shape);"
            " print(float(np.abs(a[i] - b[i]).max()))")
    result = subprocess.run([sys.executable, "-c", code, str(a), str(b)], capture_output=True,
                            text=True, check=True)
    return float(result.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per method and case")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "CASE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    totals = {"baseline": 0.0, "ours": 0.0}
    print(f"{'case':<22} {'method':<9} {'seconds':>8} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for number, case in enumerate(CASES):
            outputs = {}
            for method in ("baseline", "ours"):
                runs = []
                for repeat in range(args.repeats):
                    figures, outputs[method] = measure(
                        method, case, Path(tmp) / f"{number}-{method}-{repeat}")
                    runs.append(figures)
                seconds = statistics.median(r["seconds"] for r in runs)
                totals[method] += seconds
                print(f"{case:<22} {method:<9} {seconds:>8.2f} "
                      f"{max(r['peak_mib'] for r in runs):>9.0f}")
            difference = max_interior_difference(outputs["baseline"], outputs["ours"])
            print(f"{case:<22} max |ours - baseline| inside the volume: {difference:.2e}")
    print(f"ratio: {totals['baseline'] / totals['ours']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
