"""The real @forge/cli for tests: ``forge_cli`` installs it with npm once per session (into the
pytest cache when there is one) and skips the test where node or npm is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .argv import FORGE_CLI_VERSION, ForgeCliUnavailable, ensure_forge_cli

__all__ = ["forge_cli"]


@pytest.fixture(scope="session")
def forge_cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node_modules with the real @forge/cli, installed once and reused after."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for the real @forge/cli peer (CI has them)")
    cache = getattr(request.config, "cache", None)
    name = f"forge-cli-{FORGE_CLI_VERSION}"
    # One directory per session even when two test modules ask: the second finds it installed.
    directory = cache.mkdir(name) if cache is not None else tmp_path_factory.getbasetemp() / name
    try:
        return ensure_forge_cli(directory)
    except ForgeCliUnavailable as exc:
        pytest.fail(str(exc))
