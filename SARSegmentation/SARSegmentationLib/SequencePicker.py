"""Per-sequence volume pickers for multi-sequence models (Qt; runs inside Slicer only).

The logic (:meth:`~SARSegmentationLib.Logic.SARLogic.sequenceSlots`) says which
sequences the chosen model takes and which volume best fits each; this builds one
``qMRMLNodeComboBox`` per sequence in the Segment section and hands a user's pick back
to the logic. A one-channel model hides the box: the input volume is all it takes.
Volumes loaded or removed while the panel is open re-run the guess (once per burst of
scene events, so loading a whole scene costs one refresh).
"""

from __future__ import annotations

from typing import Any

import qt
import slicer


class SequencePicker:
    """One volume selector per sequence of the chosen model, rebuilt when they change."""

    def __init__(self, container, logic) -> None:
        self.container, self.logic = container, logic
        self.layout = qt.QFormLayout(container)
        self.combos: dict[str, Any] = {}
        self.params = None
        self.header: dict[str, Any] | None = None
        self.refreshPending = False
        container.visible = False
        scene = slicer.mrmlScene
        self.observers = [scene.AddObserver(event, self._sceneChanged)
                          for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent)]

    def cleanup(self) -> None:
        """Stop watching the scene (the module is closing or reloading)."""
        for tag in self.observers:
            slicer.mrmlScene.RemoveObserver(tag)
        self.observers = []

    def _sceneChanged(self, *_) -> None:
        """A node came or went: guess again once the current burst of events is over
        (a new volume's name is set only after it is added)."""
        if self.combos and not self.refreshPending:
            self.refreshPending = True
            qt.QTimer.singleShot(0, self._refresh)

    def _refresh(self) -> None:
        self.refreshPending = False
        if self.combos:
            self.show(self.params, self.header)

    def show(self, params, header: dict[str, Any] | None) -> None:
        """Selectors for ``header``'s sequences, each showing the user's pick or a guess.

        Only a different list of sequences rebuilds the selectors, so a pick (which
        modifies the parameter node and so comes back here) never deletes its own combo.
        """
        self.params, self.header = params, header
        try:
            slots = self.logic.sequenceSlots(params, header) if params and header else []
        except Exception as exc:  # a bad header: the model line already says why
            slots = []
            self.container.toolTip = str(exc)
        if [s.sequence for s in slots] != list(self.combos):
            self._rebuild([s.sequence for s in slots])
        for slot in slots:
            combo = self.combos[slot.sequence]
            blocked = combo.blockSignals(True)
            combo.setCurrentNode(slot.volume)
            combo.blockSignals(blocked)
            combo.toolTip = (f"The volume fed to the model as {slot.sequence} "
                             f"({'your choice' if slot.chosen else 'guessed from its name'})")
        self.container.visible = bool(slots)

    def _rebuild(self, sequences: list[str]) -> None:
        while self.layout.count():
            item = self.layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.combos = {}
        for sequence in sequences:
            combo = slicer.qMRMLNodeComboBox()
            combo.nodeTypes = ["vtkMRMLScalarVolumeNode"]
            combo.showChildNodeTypes = False  # no label maps
            combo.addEnabled = combo.removeEnabled = combo.renameEnabled = False
            combo.noneEnabled = True  # "None" until a volume fits: never a silent guess
            combo.setMRMLScene(slicer.mrmlScene)
            combo.connect("currentNodeChanged(vtkMRMLNode*)",
                          lambda node, s=sequence: self._picked(s, node))
            self.layout.addRow(f"{sequence.upper()} volume:", combo)
            self.combos[sequence] = combo

    def _picked(self, sequence: str, node) -> None:
        if self.params is not None:
            self.logic.chooseSequenceVolume(self.params, sequence, node)
            self.show(self.params, self.header)  # the other slots' guesses may change
