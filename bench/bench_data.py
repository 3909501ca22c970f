"""Real inputs the benches share: preprocessed volumes, a cube store, the data-path rate.

``prepare_volumes`` runs shipped scans through the real preprocessing (one folder per
volume, so callers can pick any number of them); ``cube_store`` builds a real cube store
from them; ``data_path_rate`` measures what the pre-training data path delivers: the
training loop's own loader (:class:`~SARCore.training.loaders.PassLoader`, float16 shards
-> float32 cubes, in ``workers`` processes) followed by the Models Genesis corruption of
each batch in the main process, where the objective runs it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAR_DATA", REPO.parent / "shared" / "data"))
BRATS = DATA / "brats2015"
CT = DATA / "ct" / "totalsegmentator_example" / "example_ct.nii.gz"


def brats_sources() -> list[tuple[Path, str]]:
    """FLAIR then T1c of each shipped BraTS 2013 case, with the ``mri`` preset."""
    cases = sorted(p for p in BRATS.glob("brats_2013_pat*") if p.is_dir())
    return [(c / name, "mri") for name in ("Flair_subtrMeanDivStd.nii.gz",
                                           "T1c_subtrMeanDivStd.nii.gz")
            for c in cases if (c / name).is_file()]


def prepare_volumes(sources: Sequence[tuple[Path, str]], folder: Path,
                    crop: Sequence[int] | None = None) -> list[Path]:
    """Each ``(scan, preset)`` preprocessed into its own folder (a central ``crop`` first)."""
    from SARCore.io.discovery import discover_cases
    from SARCore.preprocess import get_preset, preprocess_cases

    prepared = []
    for number, (source, preset) in enumerate(sources):
        image = sitk.ReadImage(str(source))
        if crop is not None:
            size = [min(c, n) for c, n in zip(crop, image.GetSize())]
            image = sitk.RegionOfInterest(image, size, [(n - c) // 2 for n, c in
                                                        zip(image.GetSize(), size)])
        copy = folder / "sources" / f"volume{number:02d}.nii.gz"
        copy.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(copy))
        out = folder / "prepared" / f"volume{number:02d}"
        report = preprocess_cases(discover_cases([copy]), out, get_preset(preset))
        if not report.ok:
            raise SystemExit(f"preprocessing {source} failed: {report.summary()}")
        prepared.append(out)
    return prepared


def cube_store(folder: Path, quick: bool = False) -> Path:
    """A real cube store from 2 BraTS FLAIRs and the TotalSegmentator CT (crops if quick)."""
    from SARCore.cubes.config import CubeConfig
    from SARCore.cubes.generator import build_cubes

    sources = [*brats_sources()[:2], (CT, "ct")]
    prepared = prepare_volumes(sources, folder, (96, 96, 48) if quick else None)
    config = CubeConfig(per_volume=(2, 2, 4)) if quick else CubeConfig()
    build_cubes(prepared, folder / "cubes", config)
    return folder / "cubes"


def data_path_rate(store: Path, workers: int, batches: int, batch_size: int = 6,
                   seed: int = 0) -> float:
    """Batches per second from the loader + corruption, the first batch (start-up) untimed."""
    import torch

    from SARCore.corruptions import ModelsGenesisCorruption
    from SARCore.cubes import CubeDataset
    from SARCore.training.loaders import PassLoader

    dataset = CubeDataset(store)
    loader = PassLoader(dataset, batch_size, workers, pin_memory=False, drop_last=True,
                        seed=seed)
    corruption = ModelsGenesisCorruption()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    needed = (batches + 1) * batch_size
    indices = order.repeat(needed // len(dataset) + 1)[:needed].tolist()
    start, done = 0.0, -1
    for batch in loader.iterate(indices, epoch=0):
        corruption(batch["cube"].float(), generator)
        done += 1
        if done == 0:
            start = time.perf_counter()
    seconds = time.perf_counter() - start
    del loader  # stops the persistent workers
    return done / seconds
