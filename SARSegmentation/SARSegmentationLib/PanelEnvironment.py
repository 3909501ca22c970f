"""The panel's environment checks (Qt; runs inside Slicer only).

The usable GPU (probed in a background process), the Python packages the engine needs,
and the module's terminology codes in Slicer's terminology list.
"""

from __future__ import annotations

import slicer

from SARSegmentationLib import Dependencies, DeviceInfo
from SARSegmentationLib.JobWatcher import JobWatcher


class EnvironmentMixin:
    """Part of :class:`~SARSegmentationLib.Widget.SARPanel`: device, packages, terms."""

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

    def loadTerminology(self) -> None:
        """Make the module's DICOM/SNOMED CT codes selectable in the Segment Editor too."""
        from SARSegmentationLib.Terminology import loadTerminologyFile

        try:
            loadTerminologyFile(slicer.modules.terminologies.logic())
        except Exception as exc:  # codes still go on the segments; only the list lacks them
            self.log(f"SAR terminology file not loaded: {exc}")
