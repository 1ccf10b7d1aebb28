"""Install an npm peer (a package.json of ours) into a directory, once, and reuse it after.

The real npm packages some tests compare connect-devloop with (atlassian-connect-express in
tests/ace/, @forge/manifest in tests/forge_manifest/) are installed by ``npm install`` from a
package.json kept beside the test. The directory is reused while its package.json is still ours
and every pinned package is installed at its pinned version, so a session pays for npm once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NPM_TIMEOUT_S", "NpmUnavailable", "ensure_npm_peer"]

NPM_TIMEOUT_S = 300


class NpmUnavailable(Exception):
    """The peer cannot be installed here; the message says why."""


def ensure_npm_peer(directory: Path, package_json: Path, pins: Mapping[str, str]) -> Path:
    """``node_modules`` in ``directory`` installed from ``package_json``, where each package
    named in ``pins`` has its pinned version."""
    if not (shutil.which("node") and shutil.which("npm")):
        raise NpmUnavailable("node and npm are not installed")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = package_json.read_text(encoding="utf-8")
    with contextlib.suppress(OSError, ValueError, KeyError):
        if (directory / "package.json").read_text("utf-8") == manifest and _pinned(directory, pins):
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
        raise NpmUnavailable(f"npm install took over {NPM_TIMEOUT_S} s") from error
    if result.returncode != 0:
        raise NpmUnavailable(f"npm install failed:\n{result.stdout}\n{result.stderr}"[-2000:])
    with contextlib.suppress(OSError, ValueError, KeyError):
        if _pinned(directory, pins):
            return directory / "node_modules"
    wanted = ", ".join(f"{name} {version}" for name, version in pins.items())
    raise NpmUnavailable(f"npm installed no {wanted}")


def _pinned(directory: Path, pins: Mapping[str, str]) -> bool:
    for name, version in pins.items():
        installed = directory / "node_modules" / name / "package.json"
        if json.loads(installed.read_text("utf-8"))["version"] != version:
            return False
    return True
