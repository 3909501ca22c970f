"""The module panel (Qt; runs inside Slicer only): its state, settings and buttons.

All work is delegated to :class:`~SARSegmentationLib.Logic.SARLogic`. The panel's
sections live in their own files and are mixed in here: running and watching jobs
(``PanelJobs``), segmenting (``PanelSegment``), correcting a result
(``PanelCorrection``), the model list (``PanelModels``, with ``SequencePicker``) and the
device/package checks (``PanelEnvironment``). This file holds what they share: the
widgets' connections, the parameter node, the buttons' state and the clean-up.
"""

from __future__ import annotations

from collections.abc import Callable

import qt

from SARSegmentationLib import DeviceInfo, MrmlIO
from SARSegmentationLib.Commands import PRESET_MODALITY
from SARSegmentationLib.JobWatcher import JobWatcher
from SARSegmentationLib.Logic import SARLogic, defaultModelsFolder
from SARSegmentationLib.ModelRegistry import ModelListing
from SARSegmentationLib.PanelCorrection import CorrectionMixin
from SARSegmentationLib.PanelEnvironment import EnvironmentMixin
from SARSegmentationLib.PanelJobs import JobsMixin
from SARSegmentationLib.PanelModels import ModelsMixin
from SARSegmentationLib.PanelSegment import SegmentMixin
from SARSegmentationLib.SequencePicker import SequencePicker
from SARSegmentationLib.WidgetBindings import ParameterBinder

POLL_MS = 250
FOLDER_SETTLE_MS = 800  # rescan the models folder once typing pauses, not per keystroke
START_BUTTONS = ("preprocessButton", "cubesButton", "pretrainButton", "finetuneButton",
                 "segmentButton")


class SARPanel(JobsMixin, SegmentMixin, CorrectionMixin, ModelsMixin, EnvironmentMixin):
    """Behaviour of the SAR Segmentation panel over its Designer-made ``ui``."""

    def __init__(self, ui, logic: SARLogic) -> None:
        self.ui, self.logic = ui, logic
        self.binder = ParameterBinder(ui, onChanged=self.updateButtons)
        self.sequencePicker = SequencePicker(ui.sequenceVolumesWidget, logic)
        self.watcher: JobWatcher | None = None
        self.jobButton = None
        self.probe: JobWatcher | None = None
        self.deviceReport: DeviceInfo.DeviceReport | None = None
        self.askedAboutCpu = False
        self.models: dict[str, object] = {}
        self.listing: ModelListing | None = None
        self.navigator = None  # Uncertainty.RegionNavigator of the last result
        self.stopWatchingScene: Callable[[], None] | None = None
        self.cleanupJob: Callable[[], None] | None = None
        self.buttonTexts = {name: getattr(ui, name).text for name in START_BUTTONS}
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.onTimer)
        self.folderTimer = qt.QTimer()
        self.folderTimer.setSingleShot(True)
        self.folderTimer.setInterval(FOLDER_SETTLE_MS)
        self.folderTimer.connect("timeout()", self.refreshModels)
        actions: dict[str, Callable[[], None]] = {
            "preprocessButton": lambda: self.runEngineJob("preprocessButton",
                                                          self.logic.preprocessJob),
            "cubesButton": lambda: self.runEngineJob("cubesButton", self.logic.cubesJob),
            "pretrainButton": lambda: self.runEngineJob("pretrainButton",
                                                        self.logic.pretrainJob),
            "finetuneButton": lambda: self.runEngineJob("finetuneButton",
                                                        self.logic.finetuneJob),
            "segmentButton": self.onSegment, "editInSegmentEditorButton": self.onEdit,
            "addToTrainingSetButton": self.onAddToTrainingSet,
            "nextUncertainRegionButton": self.onNextUncertainRegion,
            "refreshModelsButton": lambda: self.refreshModels(retryFailed=True),
            "importModelButton": self.onImportModel,
            "showHeaderButton": self.onShowHeader, "checkDeviceButton": self.startDeviceProbe,
            "installDependenciesButton": self.onInstallDependencies,
            "clearLogButton": lambda: self.ui.logTextEdit.clear()}
        for name, action in actions.items():
            getattr(ui, name).connect("clicked(bool)", lambda _=False, a=action: a())
        ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChosen)
        ui.finetuneFromScratchCheckBox.connect("toggled(bool)", self.onInitChanged)
        ui.finetuneInitPathLineEdit.connect("currentPathChanged(QString)", self.onInitChanged)
        ui.modalityComboBox.connect("currentIndexChanged(int)", self.onModalityChanged)
        ui.modelsFolderPathLineEdit.connect("currentPathChanged(QString)",
                                            lambda _: self.folderTimer.start())

    def setParameters(self, params) -> None:
        self.binder.params = params
        self.showParameters()

    @property
    def params(self):
        return self.binder.params

    def showParameters(self) -> None:
        params = self.params
        if params is None:
            return
        self.binder.showParameters()
        if not params.modelsFolder:
            params.modelsFolder = str(defaultModelsFolder())
        scratch = params.finetuneInit == "scratch"
        for widget in (self.ui.finetuneFromScratchCheckBox, self.ui.finetuneInitPathLineEdit):
            blocked = widget.blockSignals(True)
            if widget is self.ui.finetuneFromScratchCheckBox:
                widget.checked = scratch
            elif not scratch and widget.currentPath != params.finetuneInit:
                widget.currentPath = params.finetuneInit  # only when it differs: the cursor
            widget.blockSignals(blocked)
        self.ui.finetuneInitPathLineEdit.enabled = not scratch
        self.selectModel(params.modelPath)
        self.updateButtons()

    def onInitChanged(self, *_) -> None:
        if self.params is not None:
            scratch = self.ui.finetuneFromScratchCheckBox.checked
            self.params.finetuneInit = ("scratch" if scratch
                                        else self.ui.finetuneInitPathLineEdit.currentPath)
            self.ui.finetuneInitPathLineEdit.enabled = not scratch

    def onModalityChanged(self, *_) -> None:
        modality = self.ui.modalityComboBox.currentText
        if PRESET_MODALITY.get(self.ui.presetComboBox.currentText) != modality:
            first = next(p for p, m in PRESET_MODALITY.items() if m == modality)
            self.ui.presetComboBox.setCurrentIndex(self.ui.presetComboBox.findText(first))

    def updateButtons(self) -> None:
        running = self.watcher is not None
        params = self.params
        for name in START_BUTTONS:
            button = getattr(self.ui, name)
            button.enabled = (button is self.jobButton) or not running
        if params is not None:
            hasResult = params.outputSegmentation is not None and params.inputVolume is not None
            self.ui.editInSegmentEditorButton.enabled = hasResult
            self.ui.addToTrainingSetButton.enabled = hasResult and not running
            if not running:
                self.ui.segmentButton.enabled = bool(params.inputVolume and params.modelPath)

    def onSceneClose(self) -> None:
        """The scene is closing: a running segmentation is cancelled by the logic's scene
        observer; say so in the status line."""
        if self.watcher is not None and self.stopWatchingScene is not None:
            self.ui.statusLabel.text = "Cancelling: the scene was closed..."

    def cleanup(self) -> None:
        """Module closed, reloaded or Slicer quitting: stop polling, end a running job and
        remove its temporary files."""
        self.timer.stop()
        self.folderTimer.stop()
        self.sequencePicker.cleanup()
        for watcher in (self.watcher, self.probe):
            if watcher is not None:
                watcher.runner.cancel(block=True)
        if self.stopWatchingScene is not None:
            self.stopWatchingScene()
        if self.cleanupJob is not None:
            self.cleanupJob()
        self.watcher = self.probe = None
        self.stopWatchingScene = self.cleanupJob = None
        MrmlIO.removeAllWorkFolders()
