"""Only ui/ may import Qt: the core, the devices and the alarms must run without a display."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
