"""The panel's job runner glue (Qt; runs inside Slicer only).

Starts engine jobs from the logic, polls them from one ``qt.QTimer`` (the GUI never waits
on the engine), turns the clicked start button into Cancel while its job runs, shows
progress, and installs missing packages after asking.
"""

from __future__ import annotations

from collections.abc import Callable

import slicer

from SARSegmentationLib import Dependencies
from SARSegmentationLib.JobWatcher import JobWatcher


class JobsMixin:
    """Part of :class:`~SARSegmentationLib.Widget.SARPanel`: running and watching jobs."""

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
