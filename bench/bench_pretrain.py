"""Throughput of a SAR pre-training step against a bare torch loop on the same U-Net.

SAR step (as ``SARCore.training.loop`` runs it): Models Genesis corruption of the batch,
U-Net forward, restoration MSE + scale CE (SA head) + adversarial BCE (discriminator on
reversed taps), backward, SGD step over the three parameter groups. Bare step: the same
U-Net, ``MSE(sigmoid(unet(x)), x)``, backward, SGD step. Both run on the same batch of
real CT and MRI crops (batch 6 of 64x64x32), with the same autocast and memory format.

Reported per width: samples/s of bare, SAR with corruption (the real step) and SAR
without (network cost alone; skipped at paper width on a CPU, where a step takes about a
minute: ``--no-corruption-variant all`` forces it), the ratios SAR/bare, and on CUDA the
bf16 MFU. Paper width (divisor 1) runs ``--paper-steps`` timed steps (default 2), the
other widths ``--steps`` (default 3), each after ``--warmup`` steps, so the defaults finish
in about 7 minutes on a quiet 2-core CPU (the figures at paper width then come from 2
steps per variant).

Then the data path (``--data-batches``, 0 to skip): batches of 6 cubes per second that a
real cube store (2 BraTS FLAIRs + 1 CT, preprocessed and cut by SARCore, 96 cubes) delivers
through the training loop's loader with 0 and with 2 DataLoader workers, each batch
corrupted in the main process as the objective does, next to the batches per second a
training step consumes at each width (the data path must never be the bottleneck). With
workers, the workers' share of the cores is not taken from a running training step here,
so on a CPU the figure is an upper bound. The last line is ``ratio: X`` = SAR (with
corruption) samples/s / bare samples/s at the first width.

    python bench/bench_pretrain.py                       # widths 1 and 4, fp32 on most CPUs
    python bench/bench_pretrain.py --device cuda --widths 1 4 8 --steps 20 --paper-steps 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from SARCore.io.modality import CT, MRI  # noqa: E402
from SARCore.models.unet3d import UNet3D  # noqa: E402
from SARCore.pretrain.config import PretrainConfig  # noqa: E402
from SARCore.pretrain.objectives import PretrainObjective  # noqa: E402
from SARCore.pretrain.runner import make_optimizer  # noqa: E402
from SARCore.training.device import bf16_is_native, resolve_device  # noqa: E402

DATA = REPO.parent / "shared" / "data"
FLOP_PER_SAMPLE = 0.73e12     # fwd+bwd at paper width for 1x64x64x32 (method-spec.md)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s


def real_batch(device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """3 CT crops ([-1000, 1000] HU -> [0, 1]) and 3 FLAIR crops (min-max), scale labels."""
    rng = np.random.default_rng(seed)
    sources = [(DATA / "ct" / "totalsegmentator_example" / "example_ct.nii.gz", CT,
                (-1000.0, 1000.0)),
               (DATA / "brats2015" / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz",
                MRI, None)]
    cubes, modalities = [], []
    for path, modality, clip in sources:
        volume = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)
        volume = volume.astype(np.float32)
        low, high = clip if clip else (float(volume.min()), float(volume.max()))
        volume = (np.clip(volume, low, high) - low) / (high - low)
        for _ in range(3):
            start = [rng.integers(0, s - c + 1) for s, c in zip(volume.shape, (64, 64, 32))]
            cubes.append(volume[start[0]:start[0] + 64, start[1]:start[1] + 64,
                                start[2]:start[2] + 32])
            modalities.append(modality)
    return {"cube": torch.from_numpy(np.stack(cubes)[:, None]).to(device),
            "scale": torch.tensor([0, 1, 2, 0, 1, 2], device=device),
            "modality": torch.tensor(modalities, device=device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_sar(width: int, device: torch.device, corrupt: bool, channels_last: bool):
    torch.manual_seed(0)
    config = PretrainConfig(method="sar", width_divisor=width)
    objective = PretrainObjective(config).to(device)
    if not corrupt:
        objective.corruption = lambda cubes, generator: (cubes, cubes)
    if channels_last:
        objective = objective.to(memory_format=torch.channels_last_3d)
    optimizer = make_optimizer(objective, config)
    generator = torch.Generator(device=device).manual_seed(0)

    def step(batch: dict[str, torch.Tensor], autocast: torch.autocast) -> None:
        with autocast:
            loss = objective(batch, generator)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def make_bare(width: int, device: torch.device, channels_last: bool):
    torch.manual_seed(0)
    unet = UNet3D(1, 1, width).to(device)
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(unet.parameters(), lr=1.0, momentum=0.9)

    def step(batch: dict[str, torch.Tensor], autocast: torch.autocast) -> None:
        x = batch["cube"]
        with autocast:
            loss = F.mse_loss(torch.sigmoid(unet(x).float()), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def measure(steps: dict, batch: dict, autocast: torch.autocast, device: torch.device,
            n_steps: int, warmup: int) -> dict[str, float]:
    """Median seconds per step of each variant, rounds interleaved against load drift.

    Every step's time also goes to stderr at once: a paper-width CPU step takes minutes.
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for round_ in range(warmup + n_steps):
        for name, step in steps.items():
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            step(batch, autocast)
            _sync(device)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            kind = "warm-up" if round_ < warmup else "timed"
            print(f"  {name} {kind} step: {seconds:.3f} s wall, {cpu:.3f} s CPU",
                  file=sys.stderr, flush=True)
            if round_ >= warmup:
                times[name].append((seconds, cpu))
    return {name: (statistics.median(v[0] for v in values),
                   statistics.median(v[1] for v in values)) for name, values in times.items()}


def peak_flops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--paper-steps", type=int, default=2,
                        help="timed steps per variant at paper width (divisor 1)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-corruption-variant", choices=("auto", "all", "none"),
                        default="auto", help="auto: at every width but paper width on a CPU")
    parser.add_argument("--data-batches", type=int, default=30,
                        help="timed batches per data-path measurement (0: skip it)")
    parser.add_argument("--data-workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--data-quick", action="store_true",
                        help="cube store from small crops (32 cubes; for the dry run)")
    parser.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto",
                        help="auto: bf16 on CUDA or on a CPU with native bf16, else fp32")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--peak-tflops", type=float, help="bf16 peak for the MFU (CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    channels_last = not args.no_channels_last
    amp = args.amp if args.amp != "auto" else ("bf16" if bf16_is_native(device) else "off")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")
    batch = real_batch(device)
    if channels_last:
        batch["cube"] = batch["cube"].contiguous(memory_format=torch.channels_last_3d)
    n = batch["cube"].shape[0]
    peak = peak_flops(device, args.peak_tflops)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
          f", {torch.get_num_threads()} threads), amp {amp}, channels_last "
          f"{channels_last}, batch {n} of 64x64x32, {args.steps} timed steps")
    first_ratio = None
    step_rates: dict[int, float] = {}  # batches per second a SAR training step consumes
    for width in args.widths:
        steps = {"bare": make_bare(width, device, channels_last),
                 "sar": make_sar(width, device, True, channels_last)}
        if with_no_corruption(args.no_corruption_variant, width, device):
            steps["sar_no_corruption"] = make_sar(width, device, False, channels_last)
        if args.compile:
            steps = {k: torch.compile(v) for k, v in steps.items()}
        n_steps = args.paper_steps if width == 1 else args.steps
        seconds = measure(steps, batch, autocast, device, n_steps, args.warmup)
        rate = {k: n / wall for k, (wall, _) in seconds.items()}
        step_rates[width] = rate["sar"] / n
        ratio = rate["sar"] / rate["bare"]
        first_ratio = ratio if first_ratio is None else first_ratio
        print(width_line(width, n_steps, rate, seconds, n, device.type == "cpu", peak),
              flush=True)
    if args.data_batches > 0:
        report_data_path(args.data_batches, args.data_workers, n, step_rates, args.data_quick)
    print(f"ratio: {first_ratio:.3f}")
    return 0


def with_no_corruption(choice: str, width: int, device: torch.device) -> bool:
    """Whether to time "SAR without corruption" (skipped by default at CPU paper width)."""
    return choice == "all" or (choice == "auto" and (width != 1 or device.type != "cpu"))


def width_line(width: int, n_steps: int, rate: dict[str, float], seconds: dict,
               n: int, cpu_time: bool, peak: float | None) -> str:
    """One width's samples/s, SAR/bare ratios, CPU seconds per sample and MFU."""
    line = (f"width/{width} ({n_steps} timed steps): bare {rate['bare']:.3f} samples/s, SAR "
            f"{rate['sar']:.3f} (SAR/bare ratio {rate['sar'] / rate['bare']:.3f})")
    if "sar_no_corruption" in rate:
        line += (f", SAR without corruption {rate['sar_no_corruption']:.3f} "
                 f"(ratio {rate['sar_no_corruption'] / rate['bare']:.3f})")
    if cpu_time:  # process CPU time: steadier than wall time on a shared CPU
        cpu = {k: v[1] / n for k, v in seconds.items()}
        line += f"; CPU-s/sample bare {cpu['bare']:.3f}" + "".join(
            f", {k} {v:.3f} (bare/{k} {cpu['bare'] / v:.3f})" for k, v in cpu.items()
            if k != "bare")
    if peak:
        flop = FLOP_PER_SAMPLE / width ** 2  # conv FLOPs scale with width squared
        line += (f", MFU bare {rate['bare'] * flop / peak:.1%}, "
                 f"SAR {rate['sar'] * flop / peak:.1%}")
    return line


def report_data_path(batches: int, workers: list[int], batch_size: int,
                     step_rates: dict[int, float], quick: bool = False) -> None:
    """Batches/s the loader + corruption deliver against what the training step consumes."""
    from bench_data import cube_store, data_path_rate

    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        store = cube_store(Path(tmp), quick)
        for count in workers:
            delivered = data_path_rate(store, count, batches, batch_size)
            needs = ", ".join(f"width/{w} {r:.3f} ({delivered / r:.0f}x headroom)"
                              for w, r in step_rates.items())
            print(f"data path, {count} DataLoader worker(s): {delivered:.2f} batches/s of "
                  f"{batch_size} cubes (loading + corruption); a SAR step consumes {needs}"
                  f"{'' if all(delivered > r for r in step_rates.values()) else ' - THE DATA PATH IS THE BOTTLENECK'}",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
