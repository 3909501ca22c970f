"""Two-way binding between panel widgets and the parameter node (Qt; Slicer only).

One small adapter per widget kind of :data:`~SARSegmentationLib.Parameters.WIDGET_BINDINGS`
reads a widget, writes it without emitting signals, and names its change signal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SARSegmentationLib.Parameters import WIDGET_BINDINGS, SARParameters

_SIGNALS = {"path": "currentPathChanged(QString)", "text": "textChanged(QString)",
            "combo": "currentIndexChanged(int)",
            "int": "valueChanged(int)", "float": "valueChanged(double)",
            "bool": "toggled(bool)", "node": "currentNodeChanged(vtkMRMLNode*)",
            "nodes": "checkedNodesChanged()"}


def readWidget(widget, kind: str) -> Any:
    if kind == "path":
        return widget.currentPath
    if kind == "text":
        return widget.text
    if kind == "combo":
        return widget.currentText
    if kind in ("int", "float"):
        return widget.value
    if kind == "bool":
        return widget.checked
    if kind == "node":
        return widget.currentNode()
    return list(widget.checkedNodes())


def writeWidget(widget, kind: str, value: Any) -> None:
    blocked = widget.blockSignals(True)
    try:
        if kind == "path":
            if widget.currentPath != (value or ""):  # writing back moves the cursor
                widget.currentPath = value or ""
        elif kind == "text":
            if widget.text != value:  # keep the cursor while the user types
                widget.text = value or ""
        elif kind == "combo":
            index = widget.findText(str(value))
            if index >= 0:
                widget.setCurrentIndex(index)
        elif kind in ("int", "float"):
            widget.value = value
        elif kind == "bool":
            widget.checked = bool(value)
        elif kind == "node":
            widget.setCurrentNode(value)
        else:
            import qt  # here, not at the top: the rest is checked headless, without Qt

            wanted = {n.GetID() for n in value if n is not None}
            for index in range(widget.nodeCount()):
                node = widget.nodeFromIndex(index)
                state = qt.Qt.Checked if node.GetID() in wanted else qt.Qt.Unchecked
                widget.setCheckState(node, state)
    finally:
        widget.blockSignals(blocked)


class ParameterBinder:
    """Keeps the bound widgets and a :class:`SARParameters` in step."""

    def __init__(self, ui, onChanged: Callable[[], None] | None = None) -> None:
        self.ui = ui
        self.params: SARParameters | None = None
        self.onChanged = onChanged
        for name, widgetName, kind in WIDGET_BINDINGS:
            getattr(ui, widgetName).connect(_SIGNALS[kind], self._guiChanged(name, widgetName,
                                                                                kind))

    def _guiChanged(self, name: str, widgetName: str, kind: str) -> Callable[..., None]:
        def changed(*_: Any) -> None:
            if self.params is None:
                return
            setattr(self.params, name, readWidget(getattr(self.ui, widgetName), kind))
            if self.onChanged:
                self.onChanged()
        return changed

    def showParameters(self) -> None:
        """Parameter node -> widgets (signals blocked, so nothing writes back)."""
        if self.params is None:
            return
        for name, widgetName, kind in WIDGET_BINDINGS:
            writeWidget(getattr(self.ui, widgetName), kind, getattr(self.params, name))
