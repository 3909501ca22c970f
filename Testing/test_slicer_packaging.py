"""The extension's packaging: CMake lists, .ui file, .s4ext, catalog entry, icon, licence.

These are the files Slicer's build and the Extensions Index read; a mistake in them only
shows when someone builds the extension, so they are checked here.
"""

from __future__ import annotations

import ast
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import conftest_slicer  # noqa: F401  (puts the module folder on sys.path)
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "SARSegmentation"
sys.path.insert(0, str(MODULE))
import update_cmake_sources as cmake_lists  # noqa: E402

from SARSegmentationLib import Commands, Dependencies  # noqa: E402
from SARSegmentationLib.Parameters import WIDGET_BINDINGS, SARParameters  # noqa: E402

S4EXT_FIELDS = ("scm", "scmurl", "scmrevision", "depends", "build_subdirectory", "homepage",
                "contributors", "category", "iconurl", "status", "description",
                "screenshoturls", "enabled")
WIDGET_CLASS = {"path": "ctkPathLineEdit", "text": "QLineEdit", "combo": "QComboBox", "int": "QSpinBox",
                "float": "QDoubleSpinBox", "bool": "QCheckBox", "node": "qMRMLNodeComboBox",
                "nodes": "qMRMLCheckableNodeComboBox"}


def _cmake_set(text: str, name: str) -> str:
    match = re.search(rf'set\({name}\s+"([^"]*)"\)', text)
    assert match, f"{name} is not set"
    return match.group(1)


def _ui_widgets() -> dict[str, str]:
    root = ET.parse(MODULE / "Resources" / "UI" / "SARSegmentation.ui").getroot()
    names = [(w.get("name"), w.get("class")) for w in root.iter("widget")]
    assert len({n for n, _ in names}) == len(names), "widget names must be unique"
    return dict(names)


def test_every_shipped_file_is_listed_in_the_module_cmake() -> None:
    text = (MODULE / "CMakeLists.txt").read_text()
    listed = cmake_lists.listedBlocks(text)
    module_py = sorted(p.relative_to(MODULE).as_posix() for p in MODULE.rglob("*.py")
                       if "__pycache__" not in p.parts and p.name != "update_cmake_sources.py")
    engine_py = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "SARCore").rglob("*.py")
                       if "__pycache__" not in p.parts)
    hint = "run: python SARSegmentation/update_cmake_sources.py"
    assert listed["MODULE_PYTHON_SCRIPTS"] == module_py, hint
    assert listed["SARCORE_PYTHON_SCRIPTS"] == engine_py, hint
    assert listed == cmake_lists.expectedBlocks(), hint
    assert "Resources/UI/SARSegmentation.ui" in listed["MODULE_PYTHON_RESOURCES"]
    assert "Resources/Icons/SARSegmentation.png" in listed["MODULE_PYTHON_RESOURCES"]
    for name in listed["MODULE_PYTHON_SCRIPTS"] + listed["MODULE_PYTHON_RESOURCES"]:
        assert (MODULE / name).is_file(), f"listed but missing (fails the build): {name}"
    for name in listed["SARCORE_PYTHON_SCRIPTS"] + listed["SARCORE_RESOURCES"]:
        assert (REPO / name).is_file(), f"listed but missing (fails the build): {name}"


def test_module_cmake_builds_the_module_and_installs_the_engine_beside_it() -> None:
    text = (MODULE / "CMakeLists.txt").read_text()
    assert re.search(r"slicerMacroBuildScriptedModule\(\s*NAME \$\{MODULE_NAME\}\s*"
                     r"SCRIPTS \$\{MODULE_PYTHON_SCRIPTS\}\s*RESOURCES "
                     r"\$\{MODULE_PYTHON_RESOURCES\}\s*WITH_GENERIC_TESTS", text)
    engine = text[text.index("ctkMacroCompilePythonScript("):]
    assert 'SCRIPTS "${SARCORE_PYTHON_SCRIPTS}"' in engine
    assert "SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/.." in engine  # the one SARCore/, no copy
    assert "DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}" in engine
    assert "INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}" in engine
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert not (MODULE / "SARCore").exists(), "SARCore must not be copied into the module"


def test_update_script_detects_a_stale_list(tmp_path, monkeypatch) -> None:
    stale = tmp_path / "CMakeLists.txt"
    stale.write_text((MODULE / "CMakeLists.txt").read_text().replace(
        "  SARSegmentationLib/Engine.py\n", ""))
    monkeypatch.setattr(cmake_lists, "CMAKE_FILE", stale)
    assert cmake_lists.main(["--check"]) == 1
    assert cmake_lists.main([]) == 0
    assert cmake_lists.main(["--check"]) == 0
    assert cmake_lists.listedBlocks(stale.read_text()) == cmake_lists.expectedBlocks()


def test_top_level_cmake_follows_the_extension_template() -> None:
    text = (REPO / "CMakeLists.txt").read_text()
    for name in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS",
                 "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert _cmake_set(text, name).strip(), name
    assert _cmake_set(text, "EXTENSION_DEPENDS") == "PyTorch"
    order = ["cmake_minimum_required(", "project(SARExtension)", "find_package(Slicer REQUIRED)",
             "include(${Slicer_USE_FILE})", "add_subdirectory(SARSegmentation)",
             "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert _cmake_set(text, "EXTENSION_ICONURL").endswith("/SARExtension.png")


def _s4ext() -> dict[str, str]:
    fields = {}
    for line in (REPO / "SARExtension.s4ext").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            fields[key] = value.strip()
    return fields


def test_s4ext_has_every_field_and_agrees_with_cmake() -> None:
    fields = _s4ext()
    assert set(fields) == set(S4EXT_FIELDS)
    assert all(fields[key] for key in S4EXT_FIELDS)
    text = (REPO / "CMakeLists.txt").read_text()
    assert fields["homepage"] == _cmake_set(text, "EXTENSION_HOMEPAGE")
    assert fields["category"] == _cmake_set(text, "EXTENSION_CATEGORY")
    assert fields["iconurl"] == _cmake_set(text, "EXTENSION_ICONURL")
    assert fields["screenshoturls"] == _cmake_set(text, "EXTENSION_SCREENSHOTURLS")
    assert fields["depends"] == _cmake_set(text, "EXTENSION_DEPENDS")
    assert fields["scm"] == "git" and fields["enabled"] in ("0", "1")


def test_catalog_entry_fits_the_extensions_index_schema() -> None:
    entry = json.loads((REPO / "SARExtension.json").read_text())
    allowed = {"$schema", "build_dependencies", "build_subdirectory", "category", "enabled",
               "scm_revision", "scm_type", "scm_url", "tier"}
    assert set(entry) <= allowed  # the schema forbids any other key
    assert {"$schema", "category", "scm_url"} <= set(entry)
    assert re.search(r"slicer-extension-catalog-entry-schema-v1\.0\.\d\.json#$", entry["$schema"])
    fields = _s4ext()
    assert entry["scm_url"] == fields["scmurl"] and entry["category"] == fields["category"]
    assert entry["build_dependencies"] == fields["depends"].split()
    assert entry["tier"] in range(1, 6)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("icon", ["SARExtension.png",
                                  "SARSegmentation/Resources/Icons/SARSegmentation.png"])
def test_icons_are_128_pixel_pngs(icon: str) -> None:
    assert _png_size(REPO / icon) == (128, 128)


def test_licence_is_the_full_apache_2_text() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 150


def _code_widget_names() -> set[str]:
    names = set()
    for path in (MODULE / "SARSegmentation.py", *(MODULE / "SARSegmentationLib").glob("*.py")):
        text = path.read_text()
        names |= set(re.findall(r"\b(?:self\.)?ui\.(\w+)", text))
        names |= set(re.findall(r'getattr\((?:self\.)?ui, "(\w+)"\)', text))
        names |= set(re.findall(r'"(\w+(?:Button|Selector|Label|ComboBox|CheckBox|SpinBox|'
                                r'PathLineEdit|LineEdit|TextEdit|ProgressBar))"', text))
    return names


def test_ui_is_designer_xml_with_every_widget_the_code_uses() -> None:
    root = ET.parse(MODULE / "Resources" / "UI" / "SARSegmentation.ui").getroot()
    assert root.tag == "ui" and root.get("version") == "4.0"
    top = root.find("widget")
    assert (top.get("class"), top.get("name")) == ("qMRMLWidget", "SARSegmentation")
    widgets = _ui_widgets()
    used = _code_widget_names() - {"setMRMLScene"}
    missing = sorted(used - set(widgets))
    assert not missing, f"the code uses widgets the .ui lacks: {missing}"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    custom = {cls for cls in widgets.values() if not cls.startswith("Q")}
    assert custom <= declared, f"undeclared custom widgets: {custom - declared}"
    for source in ("dataVolumesSelector", "inputVolumeSelector", "outputSegmentationSelector"):
        assert any(c.findtext("receiver") == source and "setMRMLScene" in c.findtext("slot")
                   for c in root.iter("connection")), f"{source} never gets the scene"


def test_every_setting_has_a_widget_of_the_right_kind() -> None:
    widgets = _ui_widgets()
    bound = {name for name, _, _ in WIDGET_BINDINGS}
    special = {"finetuneInit", "modelPath"}  # scratch check box + path; the model list
    assert bound | special == set(SARParameters.settingNames()) | set(
        SARParameters.referenceRoles())
    for _, widget, kind in WIDGET_BINDINGS:
        assert widgets.get(widget) == WIDGET_CLASS[kind], f"{widget} is not a {kind} widget"


def _combo_items(name: str) -> list[str]:
    root = ET.parse(MODULE / "Resources" / "UI" / "SARSegmentation.ui").getroot()
    combo = next(w for w in root.iter("widget") if w.get("name") == name)
    return [i.findtext("property/string") for i in combo.findall("item")]


def test_combo_boxes_offer_exactly_what_the_engine_accepts() -> None:
    assert _combo_items("pretrainMethodComboBox") == list(Commands.METHODS)
    assert sorted(_combo_items("presetComboBox")) == sorted(Commands.PRESETS)
    assert sorted(_combo_items("deviceComboBox")) == sorted(Commands.DEVICES)
    assert sorted(_combo_items("modalityComboBox")) == sorted(set(
        Commands.PRESET_MODALITY.values()))


def test_module_file_is_thin_and_has_the_four_slicer_classes() -> None:
    source = (MODULE / "SARSegmentation.py").read_text()
    classes = {n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}
    assert classes == {"SARSegmentation", "SARSegmentationWidget", "SARSegmentationLogic",
                       "SARSegmentationTest"}
    assert len(source.splitlines()) <= 200


def test_library_neither_prints_nor_uses_imp() -> None:
    for path in [*(MODULE / "SARSegmentationLib").glob("*.py"), MODULE / "SARSegmentation.py"]:
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", "") == "print"]
        imports = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not calls, f"{path.name} prints; use logging or the log box"
        assert "imp" not in imports, f"{path.name} imports imp (gone in Python 3.12)"


def test_dependency_list_matches_the_engine_package() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ ]", r)[0].lower(): r.replace(" ", "")
                for r in project["dependencies"]}
    ours = {Dependencies.splitRequirement(r)[0].lower(): r for r in Dependencies.REQUIREMENTS}
    assert ours == declared


# The Extensions Index's own checks (scripts/check_description_files.py of
# Slicer/ExtensionsIndex) need network access to clone and download; these are the same
# rules, applied to this repository's files.
INDEX_CATEGORIES = ("Segmentation", "Quantification", "Utilities", "Informatics")


def test_extensions_index_rules_hold() -> None:
    entry = json.loads((REPO / "SARExtension.json").read_text())
    assert entry.get("$schema"), "$schema must be set"
    assert entry.get("category") in INDEX_CATEGORIES
    url = entry["scm_url"]
    assert "://" in url and urlsplit(url).scheme in ("git", "https")
    repository = Path(urlsplit(url).path).name
    repository = repository[:-4] if repository.endswith(".git") else repository
    assert repository.startswith("Slicer"), f"repository {repository!r} must start with Slicer"
    cmake = (REPO / "CMakeLists.txt").read_text()
    project = re.search(r"project\s*\(\s*([^\s)]+)", cmake, re.IGNORECASE)
    assert project and project.group(1) == "SARExtension" == Path("SARExtension.json").stem
    icon = re.search(r'set\s*\(EXTENSION_ICONURL\s*"([^"]+)"\s*\)', cmake, re.IGNORECASE)
    assert icon and icon.group(1).startswith("http") and icon.group(1).endswith(".png")
    shots = re.search(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"([^"]+)"\)', cmake, re.IGNORECASE)
    assert shots and all(u.startswith("http") for u in shots.group(1).split())
    assert (REPO / "LICENSE").is_file()
    assert all(dep for dep in entry.get("build_dependencies", []))
    for text in (cmake, (REPO / "SARExtension.s4ext").read_text()):
        for found in re.findall(r"github(?:usercontent)?\.com/[^/\s\"]+/([^/\s\".]+)", text):
            assert found.startswith("Slicer"), f"URL names repository {found!r}"
