"""Host synchronisations in the hot loop: a SAR training step and a Models Genesis
corruption batch under ``torch.cuda.set_sync_debug_mode("error")``.

Every ``.item()``, ``.tolist()``, ``int()``/``bool()``/``float()`` of a CUDA tensor or
blocking copy to the host drains the GPU's queue; in the step loop they cost speed. Each
stage runs once to warm up, then once with sync debugging on; the first sync raises, and
its place (the innermost SARCore frame) is reported. One JSON line per stage, then
``sync_free: true|false``. Exit code 0 when the run completed (syncs are findings, not
failures), 1 on any other error.

    python bench/gpu_sync_check.py --device cuda    # on a GPU (called by the GPU script)
    python bench/gpu_sync_check.py --device cpu     # dry run: same code, no sync checks
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from SARCore.corruptions import ModelsGenesisCorruption  # noqa: E402
from SARCore.pretrain.config import config_from_mapping  # noqa: E402
from SARCore.pretrain.objectives import PretrainObjective  # noqa: E402
from SARCore.pretrain.runner import make_optimizer  # noqa: E402
from SARCore.training.meter import MeanMeter  # noqa: E402


def _where(exc: BaseException) -> str:
    """The innermost SARCore frame of ``exc`` (where the sync happened)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "SARCore" in f.filename]
    frame = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} {frame.line}"


def check(name: str, stage: Callable[[], None], device: torch.device) -> dict[str, object]:
    stage()  # warm-up: first-call allocations and algorithm searches may sync
    if device.type != "cuda":
        stage()
        return {"stage": name, "device": device.type, "checked": False, "syncs": None}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stage()
        result: dict[str, object] = {"stage": name, "device": "cuda", "checked": True,
                                     "syncs": 0}
    except RuntimeError as exc:
        result = {"stage": name, "device": "cuda", "checked": True, "syncs": 1,
                  "first_sync": _where(exc), "message": str(exc).splitlines()[0][:200]}
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width-divisor", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = config_from_mapping({"method": "sar", "width_divisor": args.width_divisor,
                                  "device": args.device})
    objective = PretrainObjective(config).to(device)
    optimizer = make_optimizer(objective, config)
    generator = torch.Generator(device=device).manual_seed(0)
    batch = {"cube": torch.rand(args.batch_size, 1, 64, 64, 32, device=device),
             "scale": torch.randint(0, 3, (args.batch_size,), device=device),
             "modality": torch.randint(0, 2, (args.batch_size,), device=device)}
    corruption = ModelsGenesisCorruption()
    meter = MeanMeter(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def corrupt() -> None:
        corruption(batch["cube"], generator)

    def train_step() -> None:
        with amp:
            terms = objective(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        meter.add(terms, args.batch_size)  # metrics stay on the device

    results = [check("corruption", corrupt, device), check("train_step", train_step, device)]
    for result in results:
        print(json.dumps(result))
    checked = all(r["checked"] for r in results)
    print(json.dumps({"sync_free": all(r["syncs"] == 0 for r in results) if checked else None,
                      "mean_loss": meter.mean("loss")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
