"""Throughput of the batched Models Genesis corruptions against MG's per-sample NumPy loop.

Both run on the same real cubes (64x64x32 crops of the TotalSegmentator example CT and a
BRATS FLAIR, scaled to [0, 1]) with the same distributions (method-spec "Corruptions"):
``SARCore.corruptions.ModelsGenesisCorruption`` on whole batches, and
``bench/numpy_genesis_baseline.py`` one sample at a time like MG's ``generate_pair``.
Repetitions alternate between the two so that a busy machine slows both alike; the
medians are reported.

Printed: samples/s of the baseline and of ours at batch 6 and 32 (default settings: a
pool of 64 shuffling permutations per block shape, ``CorruptionConfig.shuffle_pool``),
ours at batch 32 with one permutation per block (``shuffle_pool=0``, MG's exact law), a
per-transform breakdown (ms per sample, sampling + applying) for both, and as the last
line ``ratio: X`` = ours at batch 32 (default settings) / baseline, in samples per second.

    python bench/bench_corruptions.py                    # CPU, 1 torch thread
    python bench/bench_corruptions.py --threads 2 --repeats 5
    python bench/bench_corruptions.py --device cuda

One torch thread by default: the baseline uses one core, and on a machine whose cores
are already busy (load average above the core count) torch's intra-op threads spin-wait
and lose far more than they gain; the first printed line gives the load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from numpy_genesis_baseline import generate_pair  # noqa: E402

from SARCore.corruptions import (  # noqa: E402
    CorruptionConfig,
    ModelsGenesisCorruption,
    RandomSource,
    apply_flip,
    apply_nonlinear,
    apply_paint,
    apply_shuffle,
    sample_flip_params,
    sample_nonlinear_params,
    sample_paint_params,
    sample_shuffle_params,
)

DATA = REPO.parent / "shared" / "data"
SCANS = [(DATA / "ct" / "totalsegmentator_example" / "example_ct.nii.gz", (-1000.0, 1000.0)),
         (DATA / "brats2015" / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz", None)]
TRANSFORMS = ("flip", "shuffle", "nonlinear", "paint")


def real_cubes(count: int, seed: int = 0) -> torch.Tensor:
    """``(count, 1, 64, 64, 32)`` crops in [0, 1], alternating CT and FLAIR."""
    rng = np.random.default_rng(seed)
    volumes = []
    for path, clip in SCANS:
        volume = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)
        volume = volume.astype(np.float32)
        low, high = clip if clip else np.percentile(volume, [0.5, 99.5])
        volumes.append((np.clip(volume, low, high) - low) / (high - low))
    cubes = []
    for index in range(count):
        volume = volumes[index % len(volumes)]
        start = [int(rng.integers(0, s - c + 1)) for s, c in zip(volume.shape, (64, 64, 32))]
        cubes.append(volume[start[0]:start[0] + 64, start[1]:start[1] + 64,
                            start[2]:start[2] + 32])
    # float32 like the cube store's batches (NumPy 2 would keep the FLAIR crops float64).
    return torch.from_numpy(np.ascontiguousarray(np.stack(cubes)[:, None], dtype=np.float32))


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def ours_breakdown(batch: torch.Tensor, generator: torch.Generator,
                   config: CorruptionConfig) -> dict[str, float]:
    """Seconds of each transform (sample + apply) over ``batch``, chained and in place
    exactly as the pipeline runs them."""
    device, seconds = batch.device, {}
    rng = RandomSource(generator, device)
    shape = tuple(batch.shape)
    state: dict[str, torch.Tensor] = {"x": batch}

    def step(name: str, sample: Callable[[], object], apply: Callable[..., torch.Tensor]) -> None:
        def run() -> None:
            params = sample()
            state["x"] = apply(state["x"], params)
        seconds[name] = timed(run, device)[0]

    step("flip", lambda: sample_flip_params(shape[0], config.flip_prob, config.max_flips, rng),
         apply_flip)
    step("shuffle", lambda: sample_shuffle_params(shape, config.shuffle_prob,
                                                  config.shuffle_blocks, rng,
                                                  config.shuffle_pool), apply_shuffle)
    step("nonlinear", lambda: sample_nonlinear_params(shape[0], config.nonlinear_prob,
                                                      config.invert_prob, rng),
         lambda x, p: apply_nonlinear(x, p, config.bezier_points, inplace=True))
    step("paint", lambda: sample_paint_params(shape, config.paint_prob, config.outer_paint_prob,
                                              config.inner_boxes_max, config.outer_boxes_max,
                                              config.box_continue_prob, rng),
         lambda x, p: apply_paint(x, p, inplace=True))
    return seconds


def run_rounds(corruption: ModelsGenesisCorruption, batch: torch.Tensor,
               generator: torch.Generator, rounds: int) -> None:
    for _ in range(rounds):
        corruption(batch, generator)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclasses.dataclass
class Measurements:
    """Per repetition: samples/s, CPU-ms per sample and per-transform wall ms per sample."""

    base_rate: list[float] = dataclasses.field(default_factory=list)
    base_cpu: list[float] = dataclasses.field(default_factory=list)
    base_parts: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: defaultdict(list))
    rate: dict[int, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    cpu: dict[int, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    exact_rate: list[float] = dataclasses.field(default_factory=list)
    exact_cpu: list[float] = dataclasses.field(default_factory=list)
    parts: dict[str, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))


def measure(args: argparse.Namespace, device: torch.device) -> Measurements:
    """Alternate baseline and ours ``args.repeats`` times on the same real cubes."""
    config = CorruptionConfig()
    corruption = ModelsGenesisCorruption(config)
    exact = ModelsGenesisCorruption(dataclasses.replace(config, shuffle_pool=0))
    cubes = real_cubes(32, args.seed)
    batches = {6: cubes[:6].to(device), 32: cubes.to(device)}
    generator = torch.Generator(device=device).manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    m = Measurements()
    corruption(batches[6], generator)  # warm-up (allocator, lazy imports)
    for _ in range(args.repeats):
        sample = cubes[:args.baseline_samples].numpy()
        parts: dict[str, float] = defaultdict(float)
        wall, cpu = timed(partial(generate_pair, sample, parts), torch.device("cpu"))
        m.base_rate.append(len(sample) / wall)
        m.base_cpu.append(1000 * cpu / len(sample))
        for name in TRANSFORMS:
            m.base_parts[name].append(1000 * parts[name] / len(sample))
        for size, batch in batches.items():
            rounds = max(1, 32 // size)
            wall, cpu = timed(partial(run_rounds, corruption, batch, generator, rounds), device)
            m.rate[size].append(rounds * size / wall)
            m.cpu[size].append(1000 * cpu / (rounds * size))
        wall, cpu = timed(partial(run_rounds, exact, batches[32], generator, 1), device)
        m.exact_rate.append(32 / wall)
        m.exact_cpu.append(1000 * cpu / 32)
        for name, value in ours_breakdown(batches[32], generator, config).items():
            m.parts[name].append(1000 * value / 32)
    return m


def report(m: Measurements, args: argparse.Namespace, device: torch.device) -> None:
    cpu_name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo")
                     .read_text().splitlines() if line.startswith("model name")), "unknown CPU")
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"device {device}, torch threads {args.threads}, {cpu_name}, "
          f"{len(os.sched_getaffinity(0))} cores, load average {load}, repeats {args.repeats}")
    baseline = median(m.base_rate)
    print(f"baseline NumPy per sample : {baseline:8.1f} samples/s   "
          f"{median(m.base_cpu):7.2f} CPU-ms/sample")
    for size in sorted(m.rate):
        rate = median(m.rate[size])
        print(f"ours, batch {size:2d}          : {rate:8.1f} samples/s   "
              f"{median(m.cpu[size]):7.2f} CPU-ms/sample  ({rate / baseline:.1f}x)")
    rate = median(m.exact_rate)
    print(f"ours, batch 32, exact perms: {rate:6.1f} samples/s   "
          f"{median(m.exact_cpu):7.2f} CPU-ms/sample  ({rate / baseline:.1f}x, shuffle_pool=0)")
    print("per transform, wall ms per sample (sample + apply):   baseline   ours@32")
    for name in TRANSFORMS:
        print(f"  {name:10s}                                      "
              f"{median(m.base_parts[name]):8.2f}  {median(m.parts[name]):8.2f}")
    print("ratio = ours at batch 32 / NumPy baseline, wall-clock samples per second")
    print(f"ratio: {median(m.rate[32]) / baseline:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repetitions")
    parser.add_argument("--baseline-samples", type=int, default=32,
                        help="samples the NumPy baseline corrupts per repetition (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    report(measure(args, device), args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
