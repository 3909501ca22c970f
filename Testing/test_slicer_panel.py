"""The Qt panel, checked without Qt: its sections are small files with one job each, and
everything one section calls on the panel exists in some section (the panel only runs
inside Slicer, so a name lost in a split would otherwise surface at the user's click).
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "SARSegmentation" / "SARSegmentationLib"
SECTIONS = ("PanelJobs.py", "PanelSegment.py", "PanelCorrection.py", "PanelModels.py",
            "PanelEnvironment.py")
QT_FILES = ("Widget.py", *SECTIONS, "SequencePicker.py", "WidgetBindings.py")


def _classes(name: str) -> list[ast.ClassDef]:
    tree = ast.parse((LIB / name).read_text())
    return [n for n in tree.body if isinstance(n, ast.ClassDef)]


def _defined(cls: ast.ClassDef) -> set[str]:
    """Methods and properties of ``cls`` plus every ``self.x = ...`` it makes."""
    names = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    for node in ast.walk(cls):
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            for item in ast.walk(target):
                if (isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name)
                        and item.value.id == "self"):
                    names.add(item.attr)
    return names


def _used(cls: ast.ClassDef) -> set[str]:
    return {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "self"}


def test_panel_is_the_sections_mixed_together() -> None:
    [panel] = _classes("Widget.py")
    bases = [b.id for b in panel.bases]
    mixins = {c.name: f for f in SECTIONS for c in _classes(f)}
    assert sorted(bases) == sorted(mixins), "every section is mixed into SARPanel"
    assert len(mixins) == len(SECTIONS), "one section class per file"


def test_every_name_a_section_uses_on_the_panel_exists() -> None:
    classes = [c for f in ("Widget.py", *SECTIONS) for c in _classes(f)]
    defined = set().union(*(_defined(c) for c in classes))
    for cls in classes:
        missing = sorted(_used(cls) - defined)
        assert not missing, f"{cls.name} uses self.{missing} that no part of the panel has"


def test_no_method_is_defined_twice_across_sections() -> None:
    seen: dict[str, str] = {}
    for name in ("Widget.py", *SECTIONS):
        for cls in _classes(name):
            for method in (n.name for n in cls.body if isinstance(n, ast.FunctionDef)):
                assert method not in seen, f"{method} in {seen.get(method)} and {cls.name}"
                seen[method] = cls.name


def test_qt_files_are_small() -> None:
    sizes = {name: len((LIB / name).read_text().splitlines()) for name in QT_FILES}
    assert sizes["Widget.py"] <= 200, sizes
    assert max(sizes.values()) <= 160, sizes


def test_picker_asks_the_logic_and_hands_picks_back() -> None:
    """The widget stays thin: the slots and the choice are the tested logic's."""
    source = (LIB / "SequencePicker.py").read_text()
    assert "self.logic.sequenceSlots(" in source
    assert "self.logic.chooseSequenceVolume(" in source
    models = (LIB / "PanelModels.py").read_text()
    assert "self.sequencePicker.show(" in models


def test_picker_follows_volumes_added_and_removed_and_lets_go_on_cleanup() -> None:
    """The guess is redone when volumes come or go (the events are exercised on real MRML
    in test_slicer_sequences), once per burst, and the observers end with the panel."""
    [picker] = _classes("SequencePicker.py")
    source = ast.unparse(picker)
    assert "scene.NodeAddedEvent" in source and "scene.NodeRemovedEvent" in source
    assert "qt.QTimer.singleShot(0, self._refresh)" in source
    assert "RemoveObserver(tag)" in source
    [panel] = _classes("Widget.py")
    cleanup = next(n for n in panel.body if isinstance(n, ast.FunctionDef)
                   and n.name == "cleanup")
    assert "self.sequencePicker.cleanup()" in ast.unparse(cleanup)


# -- issue #11 defects whose fix lives in Qt code: checked on the code itself ----------
class _Edit:
    """Stands in for a ctkPathLineEdit / QLineEdit (Qt is absent here): counts writes
    and records whether signals were blocked during each."""

    def __init__(self, value: str) -> None:
        self._value, self.writes, self.blocked, self.blockedWrites = value, 0, False, 0

    def _get(self) -> str:
        return self._value

    def _set(self, value: str) -> None:
        self._value, self.writes = value, self.writes + 1
        self.blockedWrites += self.blocked

    currentPath = text = property(_get, _set)

    def blockSignals(self, block: bool) -> bool:
        previous, self.blocked = self.blocked, block
        return previous


def test_path_and_text_fields_are_not_rewritten_while_typed() -> None:
    """Defect 5: writing back an unchanged value would move the cursor to the end."""
    import conftest_slicer  # noqa: F401  (module folder on sys.path)

    from SARSegmentationLib.WidgetBindings import writeWidget

    for kind in ("path", "text"):
        edit = _Edit("/data/sca")
        writeWidget(edit, kind, "/data/sca")
        assert edit.writes == 0
        writeWidget(edit, kind, "/data/scans")
        assert (edit.writes, edit.blockedWrites, edit.blocked) == (1, 1, False)


def test_models_folder_is_rescanned_when_typing_pauses() -> None:
    """Defect 5: a keystroke only (re)starts a single-shot timer; the timer rescans."""
    [panel] = _classes("Widget.py")
    source = ast.unparse(panel)
    assert "modelsFolderPathLineEdit.connect('currentPathChanged(QString)', " \
           "lambda _: self.folderTimer.start())" in source
    assert "self.folderTimer.setSingleShot(True)" in source
    assert "self.folderTimer.connect('timeout()', self.refreshModels)" in source


def _with_blocks(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            yield node, ast.unparse(node.items[0].context_expr)


def test_no_wait_cursor_over_a_question_and_no_dead_return() -> None:
    """Defect 8: dialogs asking the user never sit under a wait cursor, and nothing
    follows a ``tryWithErrorDisplay`` block as if it swallowed the error."""
    for name in ("Widget.py", *SECTIONS):
        tree = ast.parse((LIB / name).read_text())
        for block, context in _with_blocks(tree):
            waiting = "waitCursor=True" in context or "WaitCursor()" in context
            calls = {ast.unparse(c.func) for c in ast.walk(block) if isinstance(c, ast.Call)}
            asks = {c for c in calls if c.startswith("slicer.util.confirm")}
            assert not (waiting and asks), f"{name}: {sorted(asks)} under a wait cursor"
        for body in (n.body for n in ast.walk(tree) if hasattr(n, "body")
                     and isinstance(n.body, list)):
            for first, second in zip(body, body[1:]):
                if (isinstance(first, ast.With) and "tryWithErrorDisplay" in ast.unparse(
                        first.items[0].context_expr) and isinstance(second, ast.Return)):
                    assert ast.unparse(second) != "return False", f"{name}: dead return"


def test_module_widget_stops_observing_when_hidden() -> None:
    """Defect 9: ``exit()`` drops the parameter-node observer, as the template does."""
    tree = ast.parse((LIB.parent / "SARSegmentation.py").read_text())
    widget = next(n for n in tree.body if isinstance(n, ast.ClassDef)
                  and n.name == "SARSegmentationWidget")
    methods = {n.name: ast.unparse(n) for n in widget.body if isinstance(n, ast.FunctionDef)}
    assert {"setup", "enter", "exit", "cleanup"} <= set(methods)
    assert "self.removeObserver(self._parameterNode" in methods["exit"]
    editor = (LIB / "PanelCorrection.py").read_text()
    assert "since Slicer 5.2" in editor and "5.6" not in editor
