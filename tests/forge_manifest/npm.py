"""Install the @forge/manifest peer (tests/forge_manifest/package.json) with npm, once, and run
tests/forge_manifest/forge.js against it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..npm_peer import NPM_TIMEOUT_S, NpmUnavailable, ensure_npm_peer

__all__ = [
    "FORGE_MANIFEST_VERSION",
    "NPM_TIMEOUT_S",
    "NpmUnavailable",
    "ensure_forge_manifest",
    "run_forge_js",
]

FORGE_MANIFEST_VERSION = "13.7.0"
HERE = Path(__file__).parent
SCRIPT = HERE / "forge.js"


def ensure_forge_manifest(directory: Path) -> Path:
    """``node_modules`` with @forge/manifest (and the tslib it needs) in ``directory``."""
    return ensure_npm_peer(
        directory, HERE / "package.json", {"@forge/manifest": FORGE_MANIFEST_VERSION}
    )


def run_forge_js(
    node_modules: Path,
    command: str,
    *arguments: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Any:
    """``node forge.js COMMAND ARGUMENTS...`` with ``node_modules`` and exactly ``env`` (plus
    PATH) as its environment: the validators read ``${VARIABLES}`` from it. Returns the JSON it
    prints."""
    environment = {"PATH": os.environ.get("PATH", ""), **(env or {})}
    result = subprocess.run(
        ["node", str(SCRIPT), str(node_modules), command, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"forge.js {command} failed:\n{result.stderr}")
    return json.loads(result.stdout)
