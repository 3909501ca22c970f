"""The panel's correction tools (Qt; runs inside Slicer only).

Uncertain regions of the last result one click apart, the Segment Editor on the result,
and the corrected case back into the training set.
"""

from __future__ import annotations

import qt
import slicer

from SARSegmentationLib.DatasetExport import CaseExistsError


class CorrectionMixin:
    """Part of :class:`~SARSegmentationLib.Widget.SARPanel`: correcting a result."""

    def showUncertainRegions(self, overlay) -> None:
        """List the largest uncertain regions in the log; Next jumps to them in turn."""
        from SARSegmentationLib.Uncertainty import RegionNavigator, uncertainRegions

        regions = uncertainRegions(overlay) if overlay is not None else []
        self.navigator = RegionNavigator(self.logic.scene, regions)
        self.ui.nextUncertainRegionButton.enabled = bool(regions)
        for number, region in enumerate(regions, start=1):
            self.log(f"uncertain region {number}: {region.describe()}")

    def onNextUncertainRegion(self) -> None:
        region = self.navigator.next() if self.navigator is not None else None
        if region is not None:
            self.ui.statusLabel.text = (f"Uncertain region {self.navigator.index + 1}/"
                                        f"{len(self.navigator.regions)}: {region.describe()}")

    def onEdit(self) -> None:
        segmentation, volume = self.params.outputSegmentation, self.params.inputVolume
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentation)
        if hasattr(editor, "setSourceVolumeNode"):  # since Slicer 5.2 ("master" before)
            editor.setSourceVolumeNode(volume)
        else:
            editor.setMasterVolumeNode(volume)

    def onAddToTrainingSet(self) -> None:
        params = self.params
        folder = params.trainingSetFolder or qt.QFileDialog.getExistingDirectory(
            None, "Training set folder (MSD layout)")
        if not folder:
            return

        entry = self.models.get(params.modelPath)
        modalities = entry.header.get("modalities") if entry is not None else None
        modality = str(modalities[0]) if modalities else params.modality

        def export(replace: bool):
            return self.logic.addToTrainingSet(params.outputSegmentation, params.inputVolume,
                                               folder, replace=replace, modality=modality,
                                               params=params)

        with slicer.util.tryWithErrorDisplay("Adding to the training set failed."):
            try:
                with slicer.util.WaitCursor():
                    result = export(False)
            except CaseExistsError as exc:
                if not slicer.util.confirmYesNoDisplay(f"{exc}.\n\nReplace that case?"):
                    return
                with slicer.util.WaitCursor():
                    result = export(True)
            self.showParameters()
            self.log(f"added {result.caseId} to {result.datasetPath} (labels {result.labels})")
            slicer.util.infoDisplay(f"Case {result.caseId} added to {folder}.\nThe Fine-tune "
                                    "section now trains on this folder.")
