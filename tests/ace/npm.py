"""Install the ACE peer (tests/ace/package.json) with npm into a directory, once.

Shared by tests/test_ace.py (into the pytest cache) and benchmarks/vs_ace.py (into the user's
cache): the directory is reused while its package.json is ours and the installed ACE has the
pinned version (tests/npm_peer.py does the work).
"""

from __future__ import annotations

from pathlib import Path

from ..npm_peer import NPM_TIMEOUT_S, NpmUnavailable, ensure_npm_peer

__all__ = ["ACE_VERSION", "NPM_TIMEOUT_S", "AceUnavailable", "ensure_ace"]

ACE_VERSION = "11.5.3"
MANIFEST = Path(__file__).with_name("package.json")


class AceUnavailable(NpmUnavailable):
    """ACE cannot be installed here; the message says why."""


def ensure_ace(directory: Path) -> Path:
    """``node_modules`` with atlassian-connect-express and express in ``directory``."""
    try:
        return ensure_npm_peer(directory, MANIFEST, {"atlassian-connect-express": ACE_VERSION})
    except AceUnavailable:
        raise
    except NpmUnavailable as error:
        raise AceUnavailable(str(error)) from error
