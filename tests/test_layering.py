"""Only ui/ may import Qt: the core, the devices and the alarms must run without a display."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

QT_MODULES = {"PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6"}
PLAIN_PACKAGES = ("kapmonitor", "devices", "alarms")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_plain_package_imports_qt_or_ui_anywhere_in_its_source():
    offenders = []
    for package in PLAIN_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = _imported_roots(path) & (QT_MODULES | {"ui"})
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_core_imports_in_a_process_where_qt_cannot_be_imported():
    # A meta-path hook makes any Qt import fail; importing every plain module must still work.
    code = f"""
import sys, importlib, pkgutil
class NoQt:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {sorted(QT_MODULES)!r}:
            raise ImportError('Qt is forbidden here: ' + name)
sys.meta_path.insert(0, NoQt())
for pkg in {PLAIN_PACKAGES!r}:
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):
        importlib.import_module(info.name)
print('ok')
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def _layers_contract() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["type"] == "layers")


def _layer_modules() -> list[str]:
    return [
        name.strip()
        for layer in _layers_contract()["layers"]
        for name in str(layer).replace(":", "|").split("|")
    ]


def test_every_module_of_kapmonitor_sits_in_a_layer():
    # A module left out of the contract is checked by nothing: a new one must be given a floor.
    layers = _layer_modules()
    unplaced = []
    for path in sorted((ROOT / "kapmonitor").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        if module == "kapmonitor":
            continue
        if not any(module == layer or module.startswith(layer + ".") for layer in layers):
            unplaced.append(module)
    assert not unplaced, f"modules in no layer of the contract: {unplaced}"


def test_the_ground_floor_is_the_bottom_layer_and_the_screen_the_top():
    layers = _layers_contract()["layers"]
    assert layers[0] == "ui"
    assert layers[-1] == "kapmonitor.core"


@pytest.mark.parametrize(
    ("module", "climbing_import"),
    [
        ("kapmonitor/core/codes.py", "import kapmonitor.record.db"),
        ("devices/base.py", "import kapmonitor.runner"),
        ("alarms/model.py", "import devices.base"),
        ("kapmonitor/record/session.py", "import kapmonitor.review.summary"),
        ("kapmonitor/review/summary.py", "import kapmonitor.runner"),
        ("kapmonitor/review/summary.py", "import kapmonitor.export"),
        ("kapmonitor/station/model.py", "import kapmonitor.runner"),
        ("kapmonitor/station/publisher.py", "import kapmonitor.record.store"),
    ],
)
def test_an_import_that_climbs_breaks_the_layers_contract(tmp_path, module, climbing_import):
    # The same tree with one import added against the flow: lint-imports must refuse it.
    for package in ("kapmonitor", "devices", "alarms", "ui"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{climbing_import}  # noqa\n")
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode != 0, result.stdout
    assert "Contracts: 2 kept, 1 broken." in result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {climbing_import.split()[1]}" in result.stdout
