"""Turn a running job's events into panel updates: progress, log lines, the end.

The widget's ``qt.QTimer`` calls :meth:`JobWatcher.poll` every few hundred
milliseconds; scripts and tests call it in a loop. Callbacks are plain Python callables
(custom Qt signals are fragile under PythonQt).
"""

from __future__ import annotations

from collections.abc import Callable

from SARSegmentationLib.JobRunner import JobResult, ProcessRunner
from SARSegmentationLib.Progress import DONE, ERROR, PROGRESS, STDERR, ProgressState


class JobWatcher:
    """Polls one :class:`ProcessRunner` and calls back with what changed."""

    def __init__(self, runner: ProcessRunner, name: str = "",
                 onProgress: Callable[[ProgressState], None] | None = None,
                 onLog: Callable[[str], None] | None = None,
                 onFinished: Callable[[JobResult], None] | None = None) -> None:
        self.runner = runner
        self.name = name
        self.progress = ProgressState()
        self.onProgress = onProgress
        self.onLog = onLog
        self.onFinished = onFinished
        self.finished = False

    def poll(self) -> bool:
        """Dispatch what arrived; ``True`` while the job is still running."""
        if self.finished:
            return False
        for event in self.runner.poll():
            if event.kind == PROGRESS:
                if self.progress.update(event) and self.onProgress:
                    self.onProgress(self.progress)
            elif self.onLog:
                prefix = {ERROR: "ERROR: ", STDERR: "  "}.get(event.kind, "")
                if event.kind == DONE:
                    self.onLog(f"{self.name or 'job'} finished")
                elif event.message:
                    self.onLog(prefix + event.message)
        if self.runner.running:
            return True
        self.finished = True
        if self.onFinished and self.runner.result is not None:
            self.onFinished(self.runner.result)
        return False

    def cancel(self) -> None:
        """Ask the job to stop without blocking (the next polls finish it)."""
        self.runner.cancel(block=False)
