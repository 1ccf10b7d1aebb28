"""Install the ACE peer (tests/ace/package.json) with npm into a directory, once.

Shared by tests/test_ace.py (into the pytest cache) and benchmarks/vs_ace.py (into the user's
cache): the directory is reused while its package.json is ours and the installed ACE has the
pinned version.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

__all__ = ["ACE_VERSION", "NPM_TIMEOUT_S", "AceUnavailable", "ensure_ace"]

ACE_VERSION = "11.5.3"
NPM_TIMEOUT_S = 300
MANIFEST = Path(__file__).with_name("package.json")


class AceUnavailable(Exception):
    """ACE cannot be installed here; the message says why."""


def ensure_ace(directory: Path) -> Path:
    """``node_modules`` with atlassian-connect-express and express in ``directory``."""
    if not (shutil.which("node") and shutil.which("npm")):
        raise AceUnavailable("node and npm are not installed")
    directory.mkdir(parents=True, exist_ok=True)
    installed = directory / "node_modules" / "atlassian-connect-express" / "package.json"
    manifest = MANIFEST.read_text(encoding="utf-8")
    with contextlib.suppress(OSError, ValueError, KeyError):
        if (directory / "package.json").read_text("utf-8") == manifest and (
            json.loads(installed.read_text("utf-8"))["version"] == ACE_VERSION
        ):
            return directory / "node_modules"
    (directory / "package.json").write_text(manifest, encoding="utf-8")
    try:
        result = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--no-progress", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AceUnavailable(f"npm install took over {NPM_TIMEOUT_S} s") from error
    if result.returncode != 0:
        raise AceUnavailable(f"npm install failed:\n{result.stdout}\n{result.stderr}"[-2000:])
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(installed.read_text("utf-8"))["version"] == ACE_VERSION:
            return directory / "node_modules"
    raise AceUnavailable(f"npm installed no atlassian-connect-express {ACE_VERSION}")
