"""The core never imports textual: only ``connect_devloop.tui`` does, and only `up`/`demo` on a
terminal import that. Checked twice: by importing every other module in a fresh interpreter, and
by reading every source file outside ``tui/`` for an import of textual."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import connect_devloop

PACKAGE_DIR = Path(connect_devloop.__file__).parent


def core_modules() -> list[str]:
    names = [
        info.name
        for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="connect_devloop.")
        if not info.name.startswith("connect_devloop.tui")
        and not info.name.endswith("__main__")  # runs the CLI when imported
    ]
    return ["connect_devloop", *sorted(names)]


def test_every_core_module_imports_without_textual() -> None:
    modules = core_modules()
    assert "connect_devloop.cli" in modules
    assert "connect_devloop.supervisor" in modules
    assert "connect_devloop.render.text" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'connect_devloop'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert [m for m in loaded if m.split(".")[0] == "textual"] == []
    assert [m for m in loaded if m.startswith("connect_devloop.tui")] == []
    assert set(modules) <= set(loaded)


def textual_imports(path: Path) -> list[int]:
    """Line numbers of ``import textual…`` / ``from textual… import`` statements in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Import)
            and any(alias.name.split(".")[0] == "textual" for alias in node.names)
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "textual"
        ):
            lines.append(node.lineno)
    return lines


def test_no_file_outside_tui_imports_textual() -> None:
    sources = [
        p for p in PACKAGE_DIR.rglob("*.py") if "tui" not in p.relative_to(PACKAGE_DIR).parts
    ]
    assert len(sources) > 20
    offenders = {
        str(path.relative_to(PACKAGE_DIR)): lines
        for path in sources
        if (lines := textual_imports(path))
    }
    assert offenders == {}


def test_the_scan_finds_textual_imports(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        "import os\nimport textual.app\nfrom textual import on\nfrom .textual import x\n"
        "def f():\n    from textual.widgets import Static\n",
        encoding="utf-8",
    )
    assert textual_imports(source) == [2, 3, 6]


def test_the_dashboard_package_does_import_textual() -> None:
    assert textual_imports(PACKAGE_DIR / "tui" / "app.py")
