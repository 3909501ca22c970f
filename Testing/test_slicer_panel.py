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
