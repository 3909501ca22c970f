"""Run one SARCore command in a separate process tree without ever blocking the caller.

Two reader threads move the process's stdout (JSON events) and stderr (logging,
tracebacks) into a queue; :meth:`ProcessRunner.poll` drains it from the caller's thread
(a ``qt.QTimer`` in the widget, a sleep loop in scripts), so the GUI never waits on a
pipe. The process starts in its own session (POSIX) or process group (Windows), so
:meth:`ProcessRunner.cancel` reaches the launcher, the interpreter and any worker it
spawned: SIGINT first (the engine then exits 130 and its atomic writers drop their
temporary files), SIGKILL to the group after a grace period (and a SIGKILL sweep of
the group whenever the engine ends, so no worker outlives it); ``taskkill /T /F`` on
Windows. Works on every Slicer version: it needs no
``slicer.util.launchConsoleProcess`` callbacks.
"""

from __future__ import annotations

import collections
import enum
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SARSegmentationLib.Progress import DONE, ERROR, STDERR, Event, parseLine

#: Seconds a cancelled engine gets to stop by itself before it is terminated.
CANCEL_GRACE_SECONDS = 3.0
#: Seconds to wait for the pipes to close once the main process has exited.
PIPE_DRAIN_SECONDS = 2.0


class JobStatus(enum.Enum):
    NOT_STARTED = "not started"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class JobResult:
    """How a job ended, in words a user can act on, plus the engine's own summary."""

    status: JobStatus
    exitCode: int | None
    message: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    stderrTail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is JobStatus.SUCCEEDED


def describeExit(code: int, error: dict[str, Any] | None, stderrTail: list[str]) -> str:
    """A clear sentence for an engine exit code (0 ok, 1 failure, 2 usage, 130 interrupted)."""
    said = str(error.get("message", "")) if error else ""
    if code == 0:
        return "Finished."
    if code == 2:
        return f"Invalid settings: {said}" if said else "Invalid settings (see the log)."
    if code == 130:
        return "Interrupted before it finished."
    if code == 1:
        if said:
            return said
        last = next((line for line in reversed(stderrTail) if line.strip()), "")
        return f"Failed: {last}" if last else "Failed (see the log for details)."
    if code in (-getattr(signal, "SIGKILL", 9), 137):
        return (f"The engine was killed by the system (exit {code}); it most likely ran out "
                "of memory: try the CPU, fast mode or a smaller input.")
    if code < 0:
        return f"The engine stopped on signal {-code}."
    return f"The engine crashed (exit code {code}); see the log for details."


class ProcessRunner:
    """One engine process: start, poll for events, cancel, wait."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None,
                 cwd: str | Path | None = None,
                 outputDirs: list[str | Path] | tuple[str | Path, ...] = ()) -> None:
        self.command = [str(part) for part in command]
        self.env = env
        self.cwd = str(cwd) if cwd else None
        self.outputDirs = [Path(p) for p in outputDirs]
        self.status = JobStatus.NOT_STARTED
        self.result: JobResult | None = None
        self._proc: subprocess.Popen | None = None
        self._queue: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._openStreams = 0
        self._exitSeenAt: float | None = None
        self._cancelRequested = False
        self._cancelReason = ""
        self._killAt: float | None = None
        self._done: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._stderrTail: collections.deque[str] = collections.deque(maxlen=40)

    # -- starting ----------------------------------------------------------------
    def start(self) -> None:
        if self.status is not JobStatus.NOT_STARTED:
            raise RuntimeError("a ProcessRunner runs once; make a new one")
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP
                                       | getattr(subprocess, "CREATE_NO_WINDOW", 0))
        else:
            kwargs["start_new_session"] = True
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
            bufsize=1, env=self.env, cwd=self.cwd, **kwargs)
        self.status = JobStatus.RUNNING
        for source, stream in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr)):
            self._openStreams += 1
            threading.Thread(target=self._pump, args=(source, stream), daemon=True,
                             name=f"SAR-{source}-reader").start()

    def _pump(self, source: str, stream) -> None:
        try:
            for line in stream:
                self._queue.put((source, line))
        except (OSError, ValueError):  # pipe closed under us by a kill
            pass
        finally:
            self._queue.put((source, None))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self.status is JobStatus.RUNNING

    # -- polling -----------------------------------------------------------------
    def poll(self) -> list[Event]:
        """Events that arrived since the last call; finishes the job once it has ended."""
        events: list[Event] = []
        if self.status is not JobStatus.RUNNING:
            return events
        while True:
            try:
                source, line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._openStreams -= 1
                continue
            event = parseLine(line, source)
            if event is not None:
                self._remember(event)
                events.append(event)
        if self._killAt is not None and time.monotonic() > self._killAt:
            self._escalate()  # a cancelled engine that did not stop in its grace period
        if self._proc.poll() is not None:
            now = time.monotonic()
            self._exitSeenAt = self._exitSeenAt or now
            if self._openStreams <= 0 or now - self._exitSeenAt > PIPE_DRAIN_SECONDS:
                self._finish()
        return events

    def _remember(self, event: Event) -> None:
        if event.kind == DONE:
            self._done = event.data
        elif event.kind == ERROR:
            self._error = event.data
        elif event.kind == STDERR:
            self._stderrTail.append(event.message)

    def _finish(self) -> None:
        code = self._proc.returncode
        if os.name != "nt":
            self._signalGroup(signal.SIGKILL)  # sweep workers the engine left behind
        if self._cancelRequested and not (code == 0 and self._done is not None):
            status, message = JobStatus.CANCELLED, self._cancelReason
        elif code == 0:
            status, message = JobStatus.SUCCEEDED, describeExit(0, None, [])
        else:
            status = JobStatus.FAILED
            message = describeExit(code, self._error, list(self._stderrTail))
        if status is not JobStatus.SUCCEEDED:
            self._removeTemporaries()
        self.status = status
        # A batch that ends in an error event carries its summary there (outputs, failed;
        # docs/progress-protocol.md), so the finished cases are still imported.
        self.result = JobResult(status, code, message, dict(self._done or self._error or {}),
                                self._error, list(self._stderrTail))

    def _removeTemporaries(self) -> None:
        """Drop ``.tmp-*`` files a killed writer may have left in the output folders."""
        from SARSegmentationLib.Engine import ensureEngineImportable

        ensureEngineImportable()
        from SARCore.atomic import remove_stale_temporaries

        for folder in self.outputDirs:
            if folder.is_dir():
                for sub in (folder, *[p for p in folder.rglob("*") if p.is_dir()]):
                    remove_stale_temporaries(sub)

    # -- stopping ----------------------------------------------------------------
    def cancel(self, graceSeconds: float = CANCEL_GRACE_SECONDS, block: bool = True,
               reason: str = "Cancelled by the user.") -> None:
        """End the whole process tree.

        POSIX: SIGINT to the group (the engine exits 130 and its atomic writers drop
        their temporary files), then SIGKILL to the group after ``graceSeconds``. With
        ``block=False`` (the GUI) this returns at once and :meth:`poll` escalates.
        """
        if self.status is not JobStatus.RUNNING or self._proc is None:
            return
        if self._cancelRequested:
            if block:
                self._escalate()
            return
        self._cancelRequested, self._cancelReason = True, reason
        if os.name == "nt":
            self._killTreeWindows()
        else:
            self._signalGroup(signal.SIGINT)
        self._killAt = time.monotonic() + graceSeconds
        if block:
            if not self._waitExit(graceSeconds):
                self._escalate()
            self._waitExit(2.0)

    def _escalate(self) -> None:
        self._killAt = None
        if os.name == "nt":
            self._killTreeWindows()
        else:
            self._signalGroup(signal.SIGKILL)

    def _waitExit(self, seconds: float) -> bool:
        try:
            self._proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _signalGroup(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _killTreeWindows(self) -> None:
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(self._proc.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))

    # -- blocking use (scripts, tests) -----------------------------------------------
    def wait(self, timeout: float | None = None, interval: float = 0.1,
             onEvent: Callable[[Event], None] | None = None) -> JobResult:
        """Poll until the job ends (cancelling it after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status is JobStatus.RUNNING:
            for event in self.poll():
                if onEvent:
                    onEvent(event)
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(reason=f"Stopped: it ran longer than {timeout:g} s.")
                deadline = None
            time.sleep(interval)
        return self.result  # type: ignore[return-value]  # set by _finish
