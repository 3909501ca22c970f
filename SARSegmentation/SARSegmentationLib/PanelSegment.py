"""The panel's Segment button (Qt; runs inside Slicer only).

Asks what the logic leaves to the user (replace existing segments? run on the CPU when
no GPU is usable?), starts the segmentation job, and shows the result with its
confidence overlay.
"""

from __future__ import annotations

import slicer

from SARSegmentationLib import DeviceInfo
from SARSegmentationLib.JobRunner import JobStatus


class SegmentMixin:
    """Part of :class:`~SARSegmentationLib.Widget.SARPanel`: segmenting the input."""

    def onSegment(self) -> None:
        if self.cancelIfRunning("segmentButton") or not self.ready() or not self.deviceOk():
            return
        overwrite = False
        target = self.params.outputSegmentation
        if target is not None and target.GetSegmentation().GetNumberOfSegments():
            if not slicer.util.confirmYesNoDisplay(
                    f"Segmentation {target.GetName()!r} already has segments.\n\n"
                    "Replace them with the new result?"):
                return
            overwrite = True
        with slicer.util.tryWithErrorDisplay("Segmentation could not start.", waitCursor=True):
            job = self.logic.prepareSegment(self.params, overwrite=overwrite)
            runner = self.logic.startSegment(job)
            self.stopWatchingScene = self.logic.cancelOnSceneClose(runner)
            self.cleanupJob = lambda: self.logic.discardSegment(job)
            self.watch("segmentButton", runner, "segment",
                       lambda result: self.segmentDone(job, result))

    def segmentDone(self, job, result) -> None:
        if self.stopWatchingScene is not None:
            self.stopWatchingScene()
        self.stopWatchingScene = self.cleanupJob = None
        case = self.logic.finishSegment(job, result)[0]
        if case.segmentation is None:
            if result.status is not JobStatus.CANCELLED:
                slicer.util.errorDisplay(f"Segmentation failed: {case.error}")
            return
        self.params.outputSegmentation = case.segmentation
        overlay = case.confidence.get("disagreement") or case.confidence.get("probability")
        slicer.util.setSliceViewerLayers(background=case.volume, foreground=overlay,
                                         foregroundOpacity=0.4 if overlay else None, fit=True)
        self.showUncertainRegions(overlay)
        self.showParameters()

    def deviceOk(self) -> bool:
        """When no GPU is usable, say so and offer the CPU with fast mode (asked once)."""
        params, report = self.params, self.deviceReport
        if params.device in ("cpu", "mps") or report is None or report.cudaAvailable:
            return True  # unknown yet: the engine's "auto" falls back to the CPU by itself
        if params.device == "auto" and (params.fastMode or self.askedAboutCpu):
            return True
        self.askedAboutCpu = True
        _, note = DeviceInfo.resolveDevice(params.device, report)
        answer = slicer.util.confirmYesNoDisplay(
            f"{note}\n\nRun on the CPU with fast mode (segmentation at 2 mm, several times "
            "faster)?")
        if answer:
            params.device, params.fastMode = "cpu", True
            self.showParameters()
        return answer or params.device == "auto"
