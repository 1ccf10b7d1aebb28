"""The real ``@forge/cli`` 13.3.0 as a test peer: its option parser (``parse-argv.js``) and, for
the refusals it makes offline, the CLI itself (``run-cli.js``).

``ensure_forge_cli`` installs tests/forge_cli/package.json with npm once (its install scripts
off: they download keytar's prebuild and cloudflared, which the parser needs neither of, and
fail where GitHub is blocked) and remembers where; ``forge_cli_parses`` then answers whether the
real CLI accepts an argv. Node runs with a temporary HOME, so the user's Forge settings are
neither read nor written.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..npm_peer import NpmUnavailable, ensure_npm_peer

__all__ = [
    "FORGE_CLI_VERSION",
    "ForgeCliUnavailable",
    "ParseResult",
    "ensure_forge_cli",
    "forge_cli_parse",
    "forge_cli_parses",
    "run_forge_cli",
]

FORGE_CLI_VERSION = "13.3.0"
HERE = Path(__file__).parent
NODE_TIMEOUT_S = 120

_installed: Path | None = None


class ForgeCliUnavailable(NpmUnavailable):
    """The real CLI cannot be installed or found here; the message says why."""


@dataclass(frozen=True)
class ParseResult:
    """The real CLI's verdict on one argv. ``stage`` is ``"parser"`` (commander refused it),
    ``"argv-check"`` (a check the CLI makes on the argv alone before it logs in: --non-interactive
    without its options, a bad -e/--site/--product/--upgrade/--major-version value) or ``None``."""

    argv: list[str]
    ok: bool
    error: str | None
    stage: str | None
    command: str | None
    options: dict[str, Any] | None


def ensure_forge_cli(directory: Path) -> Path:
    """``node_modules`` with @forge/cli in ``directory``, installed once and reused after."""
    global _installed
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".npmrc").write_text("ignore-scripts=true\n", encoding="utf-8")
    try:
        _installed = ensure_npm_peer(
            directory, HERE / "package.json", {"@forge/cli": FORGE_CLI_VERSION}
        )
    except NpmUnavailable as error:
        raise ForgeCliUnavailable(str(error)) from error
    return _installed


def forge_cli_parse(argvs: Sequence[Sequence[str]]) -> list[ParseResult]:
    """The real CLI's verdict on each argv (without the leading ``forge``), in one Node process."""
    result = _node(
        "parse-argv.js", [], stdin=json.dumps([list(argv) for argv in argvs]), env=None, cwd=None
    )
    if result.returncode != 0:
        raise AssertionError(f"parse-argv.js failed:\n{result.stderr}")
    return [ParseResult(**item) for item in json.loads(result.stdout)]


def forge_cli_parses(argv: list[str]) -> str | None:
    """``None`` when the real CLI accepts ``argv``, else the message it refuses it with."""
    (verdict,) = forge_cli_parse([argv])
    return None if verdict.ok else verdict.error


def run_forge_cli(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """The real CLI run on ``argv`` in ``cwd`` with exactly ``env`` (plus PATH and a temporary
    HOME). Only for what it refuses offline: with a login it would call Atlassian."""
    return _node("run-cli.js", list(argv), stdin=None, env=env, cwd=cwd)


def _node(
    script: str,
    arguments: list[str],
    *,
    stdin: str | None,
    env: Mapping[str, str] | None,
    cwd: Path | None,
) -> subprocess.CompletedProcess[str]:
    if _installed is None:
        raise ForgeCliUnavailable("call ensure_forge_cli first")
    with tempfile.TemporaryDirectory(prefix="forge-cli-home-") as home:
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "XDG_CONFIG_HOME": str(Path(home) / ".config"),
            "NODE_PATH": str(_installed),
            "FORCE_COLOR": "0",
            **(env or {}),
        }
        return subprocess.run(
            ["node", str(HERE / script), *arguments],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_S,
            env=environment,
            cwd=cwd or home,
            check=False,
        )
