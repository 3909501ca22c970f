"""Multi-sequence models from a single-channel SAR encoder: the first convolution is
inflated, and a FLAIR + T1c model with BraTS sub-region classes trains on the shipped
BRATS 2015 cases (its header naming the sequences and coding the classes) and segments
through the module's logic on real MRML with named, coded segments."""

from __future__ import annotations

from pathlib import Path

import conftest_slicer  # noqa: F401  (module folder on sys.path)
import pytest
import torch
from finetune_data import coarse_config
from pretrain_data import one_torch_thread

from SARCore.finetune.init import Pretrained, build_network, check_fits
from SARCore.finetune.runner import finetune
from SARCore.models.modelfile import load_model_file
from SARCore.models.unet3d import UNet3D


def test_inflated_first_conv_keeps_the_features_of_equal_sequences() -> None:
    torch.manual_seed(0)
    single = UNet3D(1, 1, 8).eval()
    model = Pretrained(Path("p.sarmodel"), {"in_channels": 1, "width_divisor": 8,
                                            "method": "sar"},
                       {f"unet.{k}": v for k, v in single.state_dict().items()})
    check_fits(model, 2, None, ("flair", "t1c"))  # 1 -> 2 channels: allowed (inflated)
    net, info = build_network(2, 1, 8, model)
    assert info["init_model"]["inflated_input_channels"] == 2
    first = next(k for k, v in net.state_dict().items() if v.ndim == 5)
    assert net.state_dict()[first].shape[1] == 2
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net.eval()(torch.cat([x, x], 1)), single(x), atol=1e-5)


@pytest.mark.slow
def test_multisequence_model_segments_through_the_module_logic(
        data_dir: Path, small_pretrained_model: Path, brats2015_cases, tmp_path: Path,
        headless_scene) -> None:
    """Volumes matched to the header's sequences by name; named, coded segments back."""
    import slicer
    import vtk

    from SARSegmentationLib import MrmlIO
    from SARSegmentationLib.Logic import SARLogic
    from SARSegmentationLib.SegmentRun import prepareSegmentJob, startSegmentJob
    from SARSegmentationLib.SequenceInputs import matchVolumes

    config = coarse_config(data_dir, init=str(small_pretrained_model), width_divisor=0,
                           sequences=("flair", "t1c"),
                           labels="necrosis:1,edema:2,enhancing tumor:4", max_steps=1, epochs=1)
    with one_torch_thread():
        model = finetune(config, tmp_path / "ft").model_path
    header, state = load_model_file(model, task="segmentation")
    assert header["in_channels"] == 2 and header["sequences"] == ["flair", "t1c"]
    assert header["init_model"]["inflated_input_channels"] == 2
    assert state["unet.encoder.0.0.0.weight"].shape[1] == 2
    codes = {c["name"]: c["terminology"]["type"]["value"] for c in header["classes"]
             if "terminology" in c}
    assert codes == {"necrosis": "6574001", "edema": "79654002", "enhancing tumor": "ET"}
    folder = brats2015_cases[0]
    t1c = MrmlIO.loadVolume(headless_scene, folder / "T1c_subtrMeanDivStd.nii.gz")
    flair = MrmlIO.loadVolume(headless_scene, folder / "Flair_subtrMeanDivStd.nii.gz")
    assert matchVolumes(["flair", "t1c"], [t1c, flair]) == [flair, t1c]
    logic = SARLogic(headless_scene)
    params = logic.getParameters()  # the panel's path: the input volume, others by name
    params.inputVolume, params.modelPath = t1c, str(model)
    panelJob = logic.prepareSegment(params)
    assert [c.volume for c in panelJob.cases] == [flair]  # the first sequence gives the grid
    logic.discardSegment(panelJob)
    job = prepareSegmentJob(headless_scene, [[flair, t1c]], model, device="cpu")
    assert sorted(p.name for p in job.cases[0].inputFile.iterdir()) == ["flair.nrrd",
                                                                       "t1c.nrrd"]
    result = startSegmentJob(job).wait(timeout=300)
    assert result.ok, result.message
    [case] = SARLogic(headless_scene).finishSegment(job, result, show3D=False)
    segmentation = case.segmentation.GetSegmentation()
    segments = [segmentation.GetNthSegment(i) for i in range(segmentation.GetNumberOfSegments())]
    assert [s.GetName() for s in segments] == ["necrosis", "edema", "enhancing tumor"]
    tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    texts = [vtk.reference("") for _ in segments]
    assert all(s.GetTag(tag, t) for s, t in zip(segments, texts))
    assert "6574001" in str(texts[0]) and "79654002" in str(texts[1])
