"""The module panel's behaviour (Qt; runs inside Slicer only).

All work is delegated to :class:`~SARSegmentationLib.Logic.SARLogic`; this class turns
clicks into logic calls, shows progress from a ``qt.QTimer`` that polls the running job
(the GUI never waits on the engine), turns the clicked start button into Cancel while
its job runs, and asks the questions the logic leaves to the user (install packages,
overwrite a segmentation, run on the CPU when no GPU is usable).
"""

from __future__ import annotations

from collections.abc import Callable

import qt
import slicer

from SARSegmentationLib import Dependencies, DeviceInfo, MrmlIO
from SARSegmentationLib.Commands import PRESET_MODALITY
from SARSegmentationLib.DatasetExport import CaseExistsError
from SARSegmentationLib.JobRunner import JobStatus
from SARSegmentationLib.JobWatcher import JobWatcher
from SARSegmentationLib.Logic import SARLogic, defaultModelsFolder
from SARSegmentationLib.ModelRegistry import ModelListing, describeHeader
from SARSegmentationLib.WidgetBindings import ParameterBinder

POLL_MS = 250
FOLDER_SETTLE_MS = 800  # rescan the models folder once typing pauses, not per keystroke
START_BUTTONS = ("preprocessButton", "cubesButton", "pretrainButton", "finetuneButton",
                 "segmentButton")


class SARPanel:
    """Behaviour of the SAR Segmentation panel over its Designer-made ``ui``."""

    def __init__(self, ui, logic: SARLogic) -> None:
        self.ui, self.logic = ui, logic
        self.binder = ParameterBinder(ui, onChanged=self.updateButtons)
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

    # -- parameter node ------------------------------------------------------------------
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

    # -- running jobs ------------------------------------------------------------------
    def log(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)

    def showProgress(self, state) -> None:
        if state.percent < 0:
            self.ui.progressBar.setRange(0, 0)
        else:
            self.ui.progressBar.setRange(0, 100)
            self.ui.progressBar.setValue(state.percent)
        self.ui.statusLabel.text = state.statusText()

    def watch(self, buttonName: str, runner, name: str, onDone: Callable) -> None:
        self.jobButton = getattr(self.ui, buttonName)
        self.jobButton.text = "Cancel"
        self.ui.progressBar.setRange(0, 0)
        self.ui.statusLabel.text = f"{name}: starting..."
        self.log(f"$ {' '.join(runner.command)}")

        def finished(result) -> None:
            self.watcher = None
            self.jobButton.text = self.buttonTexts[buttonName]
            self.jobButton = None
            self.ui.progressBar.setRange(0, 100)
            self.ui.progressBar.setValue(100 if result.ok else 0)
            self.ui.statusLabel.text = f"{name}: {result.message}"
            self.log(f"{name}: {result.message}")
            try:
                onDone(result)
            except Exception as exc:  # shown to the user; the panel must stay usable
                import traceback

                slicer.util.errorDisplay(f"{name} finished, but its result could not be "
                                         f"used: {exc}", detailedText=traceback.format_exc())
            finally:
                self.updateButtons()

        self.watcher = JobWatcher(runner, name, self.showProgress, self.log, finished)
        self.updateButtons()
        self.timer.start()

    def onTimer(self) -> None:
        for watcher in (self.watcher, self.probe):
            if watcher is not None:
                watcher.poll()
        if self.listing is not None and self.listing.poll():
            self.refreshModels()
        listing = self.listing is not None and self.listing.busy
        if self.watcher is None and self.probe is None and not listing:
            self.timer.stop()

    def cancelIfRunning(self, buttonName: str) -> bool:
        """A click on the running job's button cancels it (without freezing the GUI)."""
        if self.watcher is None or self.jobButton is not getattr(self.ui, buttonName):
            return False
        self.ui.statusLabel.text = "Cancelling..."
        self.jobButton.enabled = False
        self.watcher.cancel()
        return True

    def ready(self) -> bool:
        """Packages present (installing them after asking); ``False`` to abort."""
        if not Dependencies.unmetRequirements():
            return True
        # no wait cursor here: installMissing asks for confirmation first; the error
        # display re-raises after its dialog, so there is nothing to return on failure
        with slicer.util.tryWithErrorDisplay("Installing Python packages failed."):
            done = Dependencies.installMissing(
                lambda question: slicer.util.confirmOkCancelDisplay(question))
            self.showDependencies()
        return done

    def runEngineJob(self, buttonName: str, makeJob: Callable) -> None:
        if self.cancelIfRunning(buttonName) or not self.ready():
            return
        with slicer.util.tryWithErrorDisplay("The job could not start.", waitCursor=True):
            job = makeJob(self.params)
            runner = self.logic.startJob(job)
            self.cleanupJob = lambda: self.logic.discardJob(job)

            def done(result) -> None:
                self.cleanupJob = None
                self.log(self.logic.finishJob(job, result, self.params))
                self.showParameters()
                if job.verb == "finetune" and result.ok:
                    self.refreshModels()

            self.watch(buttonName, runner, job.verb, done)

    # -- segmentation and correction ---------------------------------------------------
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

    # -- models, devices, packages -------------------------------------------------------
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
        if entry is None:
            self.ui.modelInfoLabel.text = ("No segmentation model in the models folder: "
                                           "fine-tune one or import a .sarmodel file.")
            return
        sequences = entry.header.get("sequences") or []
        hint = f"\nTrained on: {', '.join(map(str, sequences))}" if sequences else ""
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

    def startDeviceProbe(self) -> None:
        if self.probe is not None:
            return
        self.ui.deviceInfoLabel.text = "Looking for a usable GPU..."

        def found(result) -> None:
            self.probe = None
            self.deviceReport = (DeviceInfo.DeviceReport.fromSummary(result.summary)
                                 if result.ok else DeviceInfo.DeviceReport(problem=result.message))
            self.showDevice()

        self.probe = JobWatcher(DeviceInfo.startProbe(), "device check", onFinished=found)
        self.timer.start()

    def showDevice(self) -> None:
        report = self.deviceReport
        if report is not None:
            self.ui.deviceInfoLabel.text = report.describe()
            self.onModelChosen()

    def showDependencies(self) -> None:
        unmet = Dependencies.unmetRequirements()
        self.ui.dependenciesLabel.text = ("all installed" if not unmet else
                                          "missing: " + ", ".join(u.spec for u in unmet))
        self.ui.installDependenciesButton.enabled = bool(unmet)

    def onInstallDependencies(self) -> None:
        self.ready()

    def onSceneClose(self) -> None:
        """The scene is closing: a running segmentation is cancelled by the logic's scene
        observer; say so in the status line."""
        if self.watcher is not None and self.stopWatchingScene is not None:
            self.ui.statusLabel.text = "Cancelling: the scene was closed..."

    def loadTerminology(self) -> None:
        """Make the module's DICOM/SNOMED CT codes selectable in the Segment Editor too."""
        from SARSegmentationLib.Terminology import loadTerminologyFile

        try:
            loadTerminologyFile(slicer.modules.terminologies.logic())
        except Exception as exc:  # codes still go on the segments; only the list lacks them
            self.log(f"SAR terminology file not loaded: {exc}")

    def cleanup(self) -> None:
        """Module closed, reloaded or Slicer quitting: stop polling, end a running job and
        remove its temporary files."""
        self.timer.stop()
        self.folderTimer.stop()
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
