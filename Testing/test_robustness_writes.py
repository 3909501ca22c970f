"""Robustness: every output is written completely or not at all (atomic, verified writes).

Faults are real: an exception or a SIGKILL in the middle of a write, and short writes in
a child process whose file size is capped (what a full disk does to ITK's writers, which
report success after writing part of a file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from robustness_faults import REPO, assert_no_traceback, errors, run_limited, sar

from SARCore import atomic
from SARCore.atomic import (
    atomic_path,
    remove_stale_temporaries,
    torch_save_atomic,
    write_bytes_atomic,
    write_json_atomic,
)
from SARCore.errors import WriteError
from SARCore.io.writers import write_image

OLD = b"the previous, complete file\n"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def test_error_inside_the_block_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(OLD)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("writer failed half-way")
    assert target.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_failed_verification_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(OLD)

    def refuse(path: Path) -> None:
        raise OSError(0, "only 3 of 9 bytes")

    with pytest.raises(WriteError, match="incomplete or unreadable") as caught:
        with atomic_path(target, verify=refuse) as tmp:
            tmp.write_bytes(b"new")
    assert caught.value.path == str(target)
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []


def test_an_empty_write_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(WriteError, match="empty"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"")
    assert not target.exists() and _leftovers(tmp_path) == []


def test_nothing_written_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="nothing was written"):
        with atomic_path(tmp_path / "out.bin"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_the_data_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    """A spy around the real ``os.fsync``: the temporary file is synced, then renamed."""
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        order.append("fsync:" + os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])
        real_fsync(fd)

    def replace(src, dst) -> None:
        order.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    write_bytes_atomic(tmp_path / "data.bin", b"payload")
    first_sync = next(i for i, step in enumerate(order) if step.endswith("-data.bin"))
    assert order[first_sync].startswith("fsync:.tmp-")
    assert first_sync < order.index("replace")
    assert (tmp_path / "data.bin").read_bytes() == b"payload"


def test_sigkill_in_the_middle_of_a_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(OLD)
    code = textwrap.dedent(f"""
        import sys, time
        from SARCore.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"x" * 1_000_000)
                handle.flush()
                print("writing", flush=True)
                time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        child.kill()
        child.stdout.close()
    assert target.read_bytes() == OLD  # the old file, whole
    [partial] = _leftovers(tmp_path)  # the killed writer's temporary, never the target
    assert remove_stale_temporaries(tmp_path) == [tmp_path / partial]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


@pytest.mark.parametrize("suffix", ["nii.gz", "nii", "nrrd", "mha"])
def test_short_image_write_is_an_error_and_leaves_nothing(tmp_path: Path, mri_tcga: Path,
                                                          suffix: str) -> None:
    target = tmp_path / f"out.{suffix}"
    code = textwrap.dedent(f"""
        import SimpleITK as sitk
        from SARCore.errors import WriteError
        from SARCore.io.writers import write_image
        image = sitk.ReadImage({str(mri_tcga)!r})
        try:
            write_image(image, {str(target)!r})
        except WriteError as exc:
            print("WriteError:", exc)
        else:
            print("written")
    """)
    result = run_limited(code, max_bytes=100_000)
    assert "WriteError: " + str(target) in result.stdout, result.stdout + result.stderr
    assert not target.exists() and _leftovers(tmp_path) == []


def test_short_write_keeps_the_previous_image(tmp_path: Path, mri_tcga: Path) -> None:
    target = tmp_path / "out.nii.gz"
    previous = sitk.RegionOfInterest(sitk.ReadImage(str(mri_tcga)), [16, 16, 4], [0, 0, 0])
    write_image(previous, target)
    before = target.read_bytes()
    code = textwrap.dedent(f"""
        import SimpleITK as sitk
        from SARCore.io.writers import write_image
        write_image(sitk.ReadImage({str(mri_tcga)!r}), {str(target)!r})
    """)
    result = run_limited(code, max_bytes=100_000)
    assert result.returncode != 0 and "WriteError" in result.stderr
    assert target.read_bytes() == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["json", "torch"])
def test_short_python_writes_are_errors(tmp_path: Path, kind: str) -> None:
    target = tmp_path / f"out.{kind}"
    write = ("write_json_atomic(target, {'x': 'y' * 300000})" if kind == "json"
             else "torch_save_atomic({'w': torch.zeros(100000)}, target)")
    code = textwrap.dedent(f"""
        {"import torch" if kind == "torch" else ""}
        from SARCore.atomic import torch_save_atomic, write_json_atomic
        from SARCore.errors import WriteError
        target = {str(target)!r}
        try:
            {write}
        except WriteError as exc:
            print("WriteError:", exc)
    """)
    result = run_limited(code, max_bytes=50_000)
    assert f"WriteError: {target}: cannot write" in result.stdout, result.stdout + result.stderr
    assert not target.exists() and _leftovers(tmp_path) == []


def test_complete_writes_round_trip(tmp_path: Path, mri_tcga: Path) -> None:
    import torch

    image = sitk.ReadImage(str(mri_tcga))
    write_image(image, tmp_path / "a.nii.gz")
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.nii.gz"))),
                          sitk.GetArrayFromImage(image))
    write_json_atomic(tmp_path / "b.json", {"k": [1, 2]})
    torch_save_atomic({"w": torch.arange(5)}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["w"].tolist() == [0, 1, 2, 3, 4]
    assert _leftovers(tmp_path) == []


def test_preprocess_on_a_full_disk_fails_cleanly(tmp_path: Path, data_dir: Path) -> None:
    """The issue's reproduction: a short write must not be renamed into place and trusted."""
    ct = data_dir / "ct" / "totalsegmentator_example" / "example_ct.nii.gz"
    out = tmp_path / "pre"
    code, events, stderr = sar("preprocess", str(ct), "--out", str(out), "--preset", "ct",
                               "--spacing", "3", "3", "3", max_bytes=400_000)
    assert code == 1, stderr
    assert_no_traceback(stderr)
    [message] = errors(events)
    assert str(out / "example_ct.nii.gz") in message and "incomplete" in message
    assert not out.exists() or (not (out / "example_ct.nii.gz").exists()
                                and _leftovers(out) == [])
    manifest = out / "manifest.json"
    assert not manifest.exists() or "example_ct" not in manifest.read_text()


def test_segment_on_a_full_disk_fails_cleanly(tmp_path: Path, mri_tcga: Path) -> None:
    from inference_models import calibrated_model

    model = calibrated_model(tmp_path / "m.sarmodel", preset="mri", spacing=(2.0, 2.0, 6.5))
    out = tmp_path / "seg"
    code, events, stderr = sar("segment", str(mri_tcga), "--model", str(model), "--out",
                               str(out), "--device", "cpu", max_bytes=4_000)
    assert code == 1, stderr
    assert_no_traceback(stderr)
    case_errors = [e for e in events if e["event"] == "log" and e.get("level") == "error"]
    assert len(case_errors) == 1 and case_errors[0]["kind"] == "WriteError"
    assert "file too large" in case_errors[0]["message"]
    # The label map fitted, the .seg.nrrd did not: the case keeps neither (a unit).
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []
