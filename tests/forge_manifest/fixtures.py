"""The real @forge/manifest for tests: ``forge_node_modules`` installs it once per session (into
the pytest cache when there is one), ``needs_node`` skips a test where node or npm is missing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .npm import FORGE_MANIFEST_VERSION, NPM_TIMEOUT_S, NpmUnavailable, ensure_forge_manifest

__all__ = ["forge_node_modules", "needs_node"]

_skip_without_node = pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run the real @forge/manifest (CI has them)",
)
# The first test to ask for the package waits for npm install; the others find it installed.
_time_for_npm = pytest.mark.timeout(NPM_TIMEOUT_S + 120)

_Test = TypeVar("_Test", bound=Callable[..., Any])


def needs_node(test: _Test) -> _Test:
    """Skip ``test`` where node or npm is missing; give it time for the one npm install."""
    marked: _Test = _skip_without_node(_time_for_npm(test))
    return marked


@pytest.fixture(scope="session")
def forge_node_modules(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """node_modules with @forge/manifest and tslib, installed from the npm registry once."""
    name = f"forge-manifest-{FORGE_MANIFEST_VERSION}"
    cache = getattr(request.config, "cache", None)
    # One directory per session even when two test modules ask: the second finds it installed.
    directory = cache.mkdir(name) if cache is not None else tmp_path_factory.getbasetemp() / name
    try:
        return ensure_forge_manifest(directory)
    except NpmUnavailable as exc:
        pytest.fail(str(exc))
