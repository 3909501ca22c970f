"""The panel's model list (Qt; runs inside Slicer only).

Lists the models folder from its index at once and fills in headers read in the
background; the chosen model's summary and its per-sequence volume pickers follow it.
"""

from __future__ import annotations

import qt
import slicer

from SARSegmentationLib import DeviceInfo
from SARSegmentationLib.ModelRegistry import ModelListing, describeHeader


class ModelsMixin:
    """Part of :class:`~SARSegmentationLib.Widget.SARPanel`: picking a model."""

    def registry(self):
        return self.logic.modelRegistry(self.params.modelsFolder if self.params else None)

    def refreshModels(self, retryFailed: bool = False) -> None:
        """List the models folder from its index at once; headers not known yet are read
        in a background thread and the list fills in when they arrive (see onTimer)."""
        if self.params is None:
            return
        registry = self.registry()
        if self.listing is None or self.listing.registry.folder != registry.folder:
            self.listing = ModelListing(registry)
        if retryFailed:
            self.listing.forget()
        entries, errors = self.listing.list()
        entries = [e for e in entries if e.task == "segmentation"]
        if self.listing.busy:
            self.ui.modelInfoLabel.text = "Reading model headers in the background..."
            self.timer.start()
        self.models = {str(e.path): e for e in entries}
        combo = self.ui.modelComboBox
        blocked = combo.blockSignals(True)
        combo.clear()
        for entry in entries:
            combo.addItem(entry.name, str(entry.path))
        combo.blockSignals(blocked)
        for error in errors:
            self.log(f"skipped model: {error}")
        self.selectModel(self.params.modelPath)

    def selectModel(self, path: str) -> None:
        combo = self.ui.modelComboBox
        index = combo.findData(path) if path else -1
        if index < 0 and combo.count:
            index = 0
        blocked = combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(blocked)
        self.onModelChosen()

    def onModelChosen(self, *_) -> None:
        path = self.ui.modelComboBox.currentData
        entry = self.models.get(path) if path else None
        if self.params is not None and path and self.params.modelPath != path:
            self.params.modelPath = path
        self.sequencePicker.show(self.params, entry.header if entry is not None else None)
        if entry is None:
            self.ui.modelInfoLabel.text = ("No segmentation model in the models folder: "
                                           "fine-tune one or import a .sarmodel file.")
            return
        sequences = entry.header.get("sequences") or []
        hint = (f"\nTakes {', '.join(map(str, sequences))}: choose a volume for each below"
                if len(sequences) > 1 else
                f"\nTrained on: {sequences[0]}" if sequences else "")
        self.ui.modelInfoLabel.text = (entry.summary() + hint + "\n"
                                       + DeviceInfo.memoryText(entry.header, self.deviceReport))

    def onImportModel(self) -> None:
        source = qt.QFileDialog.getOpenFileName(None, "Import a SAR model", "",
                                                "SAR models (*.sarmodel)")
        if not source:
            return
        with slicer.util.tryWithErrorDisplay("This file cannot be imported.", waitCursor=True):
            entry = self.registry().importModel(source)
            self.params.modelPath = str(entry.path)
            self.refreshModels()
            self.log(f"imported {entry.summary()}")

    def onShowHeader(self) -> None:
        entry = self.models.get(self.ui.modelComboBox.currentData)
        if entry is not None:
            slicer.util.infoDisplay(entry.summary(), windowTitle=f"Model {entry.name}",
                                    detailedText=describeHeader(entry.header))
