"""SAR Segmentation: scale-aware self-supervised pre-training and 3D tumor segmentation.

A thin Slicer module over ``SARSegmentationLib`` (logic, jobs, MRML conversion) and the
``SARCore`` engine, which always runs in a separate process.
"""

import importlib
import logging
import sys
from pathlib import Path

import numpy as np
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from SARSegmentationLib.Logic import SARLogic
from SARSegmentationLib.Parameters import SARParameters


class SARSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SAR Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SARExtension contributors"]
        self.parent.helpText = (
            "Pre-train a 3D U-Net with Scale-Aware Restoration (SAR) on your own unlabeled "
            "CT/MRI, fine-tune it on labeled cases, segment tumors, correct the result in the "
            "Segment Editor and add it back to the training set. Long tasks run in a "
            "separate process with live progress and Cancel. See the "
            "<a href='https://github.com/sarextension/SlicerSAR'>documentation</a>.")
        self.parent.acknowledgementText = (
            "Implements 'SAR: Scale-Aware Restoration learning for 3D tumor segmentation' "
            "(MICCAI 2021) on the Models Genesis 3D U-Net.")


class SARSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.panel = None
        self._parameterNode = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        from SARSegmentationLib.Widget import SARPanel

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SARSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SARSegmentationLogic()
        self.panel = SARPanel(self.ui, self.logic)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
        self.panel.loadTerminology()
        self.panel.showDependencies()
        self.panel.refreshModels()
        self.panel.startDeviceProbe()  # in the background: the panel stays usable

    def cleanup(self):
        """Called when the module is reloaded or Slicer quits: end jobs, drop temp files."""
        self.removeObservers()
        if self.panel:
            self.panel.cleanup()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        """Hidden: stop following the parameter node (the template does the same)."""
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self.onParameterNodeModified)
            self._parameterNode = None

    def onSceneStartClose(self, caller, event):
        self.panel.onSceneClose()  # the logic's own observer cancels a running segmentation
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, node):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self.onParameterNodeModified)
        self._parameterNode = node
        if node is not None:
            self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self.panel.setParameters(SARParameters(node) if node is not None else None)

    def onParameterNodeModified(self, caller=None, event=None):
        self.panel.showParameters()

    def onReload(self):
        """Reload the library too (Python 3.12: importlib, not imp), then the module."""
        self.cleanup()
        for name in sorted(n for n in sys.modules if n.startswith("SARSegmentationLib.")):
            importlib.reload(sys.modules[name])
        ScriptedLoadableModuleWidget.onReload(self)


class SARSegmentationLogic(ScriptedLoadableModuleLogic, SARLogic):
    """Slicer's logic class: the GUI-free :class:`SARLogic` on ``slicer.mrmlScene``.

    Scripting: ``SARSegmentationLogic().process(volumeNode, "/models/brain.sarmodel")``
    returns the segmentation node (blocking, no dialogs).
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        SARLogic.__init__(self)


class SARSegmentationTest(ScriptedLoadableModuleTest):
    """Self-test: label map -> segments, and a real segmentation with an installed model."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        from SARSegmentationLib.Dependencies import engineSkipReason

        self.setUp()
        self.test_LabelmapBecomesNamedSegments()
        reason = engineSkipReason()
        if reason:  # e.g. the extensions build dashboard, which has no torch
            logging.warning("SARSegmentation self-test: engine part skipped: %s", reason)
            self.delayDisplay(f"Engine test skipped: {reason}")
            return
        self.setUp()
        self.test_SegmentSampleVolume()

    def test_LabelmapBecomesNamedSegments(self):
        from SARSegmentationLib.SegmentationLogic import (
            classesFromHeader,
            labelmapToSegmentation,
            prepareOutputNode,
            segmentInfo,
        )

        volume = slicer.util.addVolumeFromArray(np.zeros((20, 30, 40), np.int16))
        labels = np.zeros((20, 30, 40), np.uint8)
        labels[5:10, 5:10, 5:10] = 1
        labelNode = slicer.util.addVolumeFromArray(labels, nodeClassName="vtkMRMLLabelMapVolumeNode")
        header = {"classes": [{"name": "tumor", "label": 1, "color": [1, 0, 0]},
                              {"name": "edema", "label": 2, "color": [0, 1, 0]}]}
        node = prepareOutputNode(slicer.mrmlScene, volume)
        labelmapToSegmentation(labelNode, classesFromHeader(header), volume, node)
        info = segmentInfo(node)
        self.assertEqual([s["name"] for s in info], ["tumor", "edema"])
        self.assertEqual(info[0]["color"], (1.0, 0.0, 0.0))
        voxels = slicer.util.arrayFromSegmentBinaryLabelmap(node, info[0]["id"], volume)
        self.assertEqual(int(voxels.sum()), 125)
        self.delayDisplay("Label map -> segments: passed")

    def test_SegmentSampleVolume(self):
        """Segment MRHead with an installed model, or with a tiny one trained right here
        (MRBrainTumor1/2, their brightest voxels as 'tumor': about a minute on a CPU)."""
        import SampleData

        from SARSegmentationLib.ModelRegistry import readHeader
        from SARSegmentationLib.QuickModel import makeQuickModel

        logic = SARSegmentationLogic()
        params = logic.getParameters()
        models = [m.path for m in logic.modelRegistry(params.modelsFolder or None).models()
                  if m.task == "segmentation"]
        if not models:
            self.delayDisplay("No model installed: training a tiny one (about a minute)")
            volumes = [SampleData.downloadSample(n) for n in ("MRBrainTumor1", "MRBrainTumor2")]
            masks = [a > np.percentile(a, 99.5) for a in map(slicer.util.arrayFromVolume, volumes)]
            workDir = Path(slicer.app.temporaryPath) / "SARSegmentationSelfTest"
            models = [makeQuickModel(slicer.mrmlScene, volumes, masks, workDir)]
        volume = SampleData.downloadSample("MRHead")
        node = logic.process(volume, models[0], device="auto", fast=True)
        names = [node.GetSegmentation().GetNthSegment(i).GetName()
                 for i in range(node.GetSegmentation().GetNumberOfSegments())]
        expected = [c["name"] for c in readHeader(models[0])["classes"] if c["label"] > 0]
        self.assertEqual(names, expected)
        logging.info("segmented MRHead with %s: %s", models[0], names)
        self.delayDisplay("Segmentation of MRHead: passed")
