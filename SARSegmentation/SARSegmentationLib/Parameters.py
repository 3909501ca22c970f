"""The module's settings, stored in its parameter node so they travel with the scene.

Slicer's ``parameterNodeWrapper`` needs Qt, so this is a small explicit equivalent that
also works headless (PyPI ``slicer-core``): each setting is a typed descriptor over a
string parameter of the ``vtkMRMLScriptedModuleNode``; volumes and segmentations are
node references, so saving and reloading the scene keeps them.
"""

from __future__ import annotations

from typing import Any

MODULE_NAME = "SARSegmentation"
# no ":" or ";": the scene file stores references as "role:id;role:id"
SEQUENCE_ROLE = "sequenceVolume_"


def _parameterNames(node) -> set[str]:
    listed = node.GetParameterNamesAsCommaSeparatedList()
    return set(listed.split(",")) if listed else set()


class _Param:
    """A setting kept as text; unset (or unreadable) reads back as the default."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        if self.name not in _parameterNames(obj.node):
            return self.default
        try:
            return self.parse(obj.node.GetParameter(self.name))
        except ValueError:  # a hand-edited scene file: fall back rather than break the panel
            return self.default

    def __set__(self, obj: Any, value: Any) -> None:
        obj.node.SetParameter(self.name, self.format(value))

    def parse(self, text: str) -> Any:
        return text

    def format(self, value: Any) -> str:
        return str(value)


class _Int(_Param):
    def parse(self, text: str) -> int:
        return int(text)

    def format(self, value: Any) -> str:
        return str(int(value))


class _Float(_Param):
    def parse(self, text: str) -> float:
        return float(text)

    def format(self, value: Any) -> str:
        return repr(float(value))


class _Bool(_Param):
    def parse(self, text: str) -> bool:
        return text.strip().lower() in ("1", "true", "yes", "on")

    def format(self, value: Any) -> str:
        return "true" if value else "false"


class _NodeRef:
    """A node reference role holding one node (``None`` when unset)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.role = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else obj.node.GetNodeReference(self.role)

    def __set__(self, obj: Any, node: Any) -> None:
        obj.node.SetNodeReferenceID(self.role, node.GetID() if node is not None else None)


class _NodeList(_NodeRef):
    """A node reference role holding several nodes, in order."""

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        count = obj.node.GetNumberOfNodeReferences(self.role)
        return [obj.node.GetNthNodeReference(self.role, i) for i in range(count)]

    def __set__(self, obj: Any, nodes: Any) -> None:
        obj.node.RemoveNodeReferenceIDs(self.role)
        for item in nodes or []:
            if item is not None:
                obj.node.AddNodeReferenceID(self.role, item.GetID())


class SARParameters:
    """Typed view of the module's ``vtkMRMLScriptedModuleNode``: one attribute per setting."""

    # Data
    dataVolumes = _NodeList()
    dataFolder = _Param("")
    modality = _Param("CT")
    preset = _Param("ct")
    preprocessedFolder = _Param("")
    cubesFolder = _Param("")
    # Pre-train
    pretrainMethod = _Param("sar")
    pretrainEpochs = _Int(100)
    pretrainWidthDivisor = _Int(1)
    pretrainFolder = _Param("")
    pretrainResume = _Bool(False)
    # Fine-tune
    finetuneData = _Param("")
    finetuneInit = _Param("scratch")
    finetuneLabels = _Param("")  # the engine's --labels mapping; empty: whole tumor
    finetuneLabelFraction = _Float(1.0)
    finetuneEpochs = _Int(100)
    finetuneFolder = _Param("")
    finetuneResume = _Bool(False)
    finetuneFreshHead = _Bool(False)  # new output layer instead of the restoration head
    # Segment
    inputVolume = _NodeRef()
    modelPath = _Param("")
    fastMode = _Bool(False)
    uncertainty = _Bool(False)  # load probability overlay and list uncertain regions
    tta = _Bool(False)  # flip averaging; with uncertainty, also the flip disagreement
    outputSegmentation = _NodeRef()
    # Shared by the sections
    device = _Param("auto")
    modelsFolder = _Param("")
    trainingSetFolder = _Param("")

    def __init__(self, node) -> None:
        self.node = node

    # One node reference per sequence of a multi-sequence model (roles made on demand,
    # so a model with new sequence names needs no new setting).
    def sequenceVolume(self, sequence: str) -> Any:
        """The volume the user chose for ``sequence`` (``None``: not chosen, or deleted)."""
        return self.node.GetNodeReference(SEQUENCE_ROLE + sequence)

    def setSequenceVolume(self, sequence: str, volume: Any) -> None:
        self.node.SetNodeReferenceID(SEQUENCE_ROLE + sequence,
                                     volume.GetID() if volume is not None else None)

    @classmethod
    def settingNames(cls) -> list[str]:
        """Every text setting (not the node references), in declaration order."""
        return [name for name, value in vars(cls).items() if isinstance(value, _Param)]

    @classmethod
    def referenceRoles(cls) -> list[str]:
        return [name for name, value in vars(cls).items() if isinstance(value, _NodeRef)]


def getParameterNode(scene, moduleName: str = MODULE_NAME):
    """The module's singleton parameter node in ``scene``, created on first use.

    Same convention as ``ScriptedLoadableModuleLogic.getParameterNode`` (attribute
    ``ModuleName``, singleton tag = module name), so Slicer and headless code share it.
    """
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLScriptedModuleNode")
        if node.GetAttribute("ModuleName") == moduleName:
            return node
    node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
    node.UnRegister(None)  # the Python variable owns it now
    node.SetSingletonTag(moduleName)
    node.SetName(scene.GenerateUniqueName(moduleName))
    node.SetAttribute("ModuleName", moduleName)
    return scene.AddNode(node)


#: Which panel widget shows which setting, and how (``path``: ctkPathLineEdit, ``text``:
#: QLineEdit, ``combo``:
#: QComboBox text, ``int``/``float``: spin boxes, ``bool``: QCheckBox, ``node``:
#: qMRMLNodeComboBox, ``nodes``: qMRMLCheckableNodeComboBox). ``finetuneInit`` and
#: ``modelPath`` have their own widgets logic (scratch check box, model list).
WIDGET_BINDINGS: tuple[tuple[str, str, str], ...] = (
    ("dataVolumes", "dataVolumesSelector", "nodes"),
    ("dataFolder", "dataFolderPathLineEdit", "path"),
    ("modality", "modalityComboBox", "combo"),
    ("preset", "presetComboBox", "combo"),
    ("preprocessedFolder", "preprocessedFolderPathLineEdit", "path"),
    ("cubesFolder", "cubesFolderPathLineEdit", "path"),
    ("pretrainMethod", "pretrainMethodComboBox", "combo"),
    ("pretrainEpochs", "pretrainEpochsSpinBox", "int"),
    ("pretrainWidthDivisor", "pretrainWidthDivisorSpinBox", "int"),
    ("pretrainFolder", "pretrainFolderPathLineEdit", "path"),
    ("pretrainResume", "pretrainResumeCheckBox", "bool"),
    ("finetuneData", "finetuneDataPathLineEdit", "path"),
    ("finetuneLabels", "finetuneLabelsLineEdit", "text"),
    ("finetuneLabelFraction", "finetuneLabelFractionSpinBox", "float"),
    ("finetuneEpochs", "finetuneEpochsSpinBox", "int"),
    ("finetuneFolder", "finetuneFolderPathLineEdit", "path"),
    ("finetuneResume", "finetuneResumeCheckBox", "bool"),
    ("finetuneFreshHead", "finetuneFreshHeadCheckBox", "bool"),
    ("inputVolume", "inputVolumeSelector", "node"),
    ("fastMode", "fastModeCheckBox", "bool"),
    ("uncertainty", "uncertaintyCheckBox", "bool"),
    ("tta", "ttaCheckBox", "bool"),
    ("outputSegmentation", "outputSegmentationSelector", "node"),
    ("device", "deviceComboBox", "combo"),
    ("modelsFolder", "modelsFolderPathLineEdit", "path"),
    ("trainingSetFolder", "trainingSetFolderPathLineEdit", "path"),
)
