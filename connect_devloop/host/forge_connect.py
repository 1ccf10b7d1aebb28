"""The Connect descriptor a deployed Forge manifest stands for, and the checks Cloud makes on it
when that version is installed (FORGE.md §2, §3).

A Connect app registered on Forge keeps its descriptor's content in ``manifest.yml``: the key in
``app.connect``, ``baseUrl`` in the remote that ``app.connect.remote`` names, the modules under
``connectModules`` as ``<product>:<module type>`` lists, the scopes as ``read:connect-jira``
and the like. ``connect_descriptor`` puts them back together for one product, so the site
installs a Forge version with the same code as a descriptor-URL install.
"""

from __future__ import annotations

import re
from typing import Any, Final

from .. import descriptor as descriptors
from ..forge.manifest_parts import connect_key_of, remote_base_urls, scopes_of
from ..forge.manifest_schema import CONNECT_MODULES, MODULE_KEY_PATTERN

__all__ = ["FAILED_DESCRIPTOR_VALIDATION", "ConnectModulesInvalid", "connect_descriptor"]

# The error code Cloud's install task gives for Connect modules it refuses; @forge/cli 13.3.0
# knows it (out/installations/harmonized-apps/harmonized-app-installation-errors.js) and shows
# the server's message, or this text when there is none.
FAILED_DESCRIPTOR_VALIDATION: Final = "CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION"
FAILED_DESCRIPTOR_VALIDATION_TEXT: Final = (
    "One or more connectModules are defined incorrectly in your manifest.yml. Check the module "
    "definitions and deploy before trying again."
)

CONNECT_SCOPE: Final = re.compile(r"^([a-z-]+):connect-(jira|confluence)$")
# Descriptor module types that hold one module, not a list.
SINGLE_MODULES: Final = frozenset({"configurePage", "postInstallPage"})


class ConnectModulesInvalid(Exception):
    """Cloud refuses the Connect side of this version; ``problems`` say why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    @property
    def message(self) -> str:
        # The emulator's choice of wording: the CLI's own text for this code, then the details
        # and the code, so a reader (and a registrar) can tell what Cloud refused.
        details = "; ".join(self.problems)
        return f"{FAILED_DESCRIPTOR_VALIDATION_TEXT} ({FAILED_DESCRIPTOR_VALIDATION}: {details})"


def connect_descriptor(manifest: dict[str, Any], product: str) -> dict[str, Any] | None:
    """The descriptor this manifest stands for on a ``product`` site, or ``None`` for a Forge
    app without ``app.connect``. Raises ``ConnectModulesInvalid`` when Cloud would refuse it.

    What the manifest does not carry is filled as a Connect app on Forge behaves: installs are
    always RS256 signed (``apiMigrations.signed-install``), and the name is the key.
    """
    connect = _connect(manifest)
    if not connect:
        return None
    key = connect_key_of(manifest)
    if key is None:
        raise ConnectModulesInvalid(["app.connect.key is missing"])
    remote = connect.get("remote")
    base_url = remote_base_urls(manifest).get(remote) if isinstance(remote, str) else None
    if base_url is None:
        raise ConnectModulesInvalid([f"no remote found with key {remote!r} (app.connect.remote)"])
    document: dict[str, Any] = {
        "key": key,
        "name": key,
        "baseUrl": base_url,
        "authentication": {"type": str(connect.get("authentication") or "jwt")},
        "apiMigrations": {"signed-install": True},
    }
    modules, lifecycle, problems = _modules(manifest, product)
    if lifecycle:
        document["lifecycle"] = lifecycle
    scopes = [_descriptor_scope(s, product) for s in scopes_of(manifest)]
    document["scopes"] = sorted({s for s in scopes if s is not None})
    document["modules"] = modules
    problems += [p.format() for p in descriptors.validate(document) if p.severity == "error"]
    if problems:
        raise ConnectModulesInvalid(problems)
    return document


def _connect(manifest: dict[str, Any]) -> dict[str, Any]:
    app = manifest.get("app")
    connect = app.get("connect") if isinstance(app, dict) else None
    return connect if isinstance(connect, dict) else {}


def _descriptor_scope(scope: str, product: str) -> str | None:
    # read:connect-jira -> READ; act-as-user:connect-jira -> ACT_AS_USER (FORGE.md §2).
    match = CONNECT_SCOPE.match(scope)
    if match is None or match.group(2) != product:
        return None
    return match.group(1).upper().replace("-", "_")


def _modules(
    manifest: dict[str, Any], product: str
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The descriptor's ``modules`` and ``lifecycle`` for ``product``, and what is wrong."""
    connect_modules = manifest.get("connectModules")
    modules: dict[str, Any] = {}
    lifecycle: dict[str, str] = {}
    problems: list[str] = []
    if not isinstance(connect_modules, dict):
        return modules, lifecycle, problems
    for name, entries in connect_modules.items():
        owner, _, kind = str(name).partition(":")
        if owner != product or not isinstance(entries, list):
            continue
        where = f'connectModules["{name}"]'
        if kind == "lifecycle":
            first = entries[0] if entries and isinstance(entries[0], dict) else {}
            lifecycle = {k: v for k, v in first.items() if k != "key" and isinstance(v, str)}
            continue
        for index, module in enumerate(entries):
            problems += _module_problems(f"{where}[{index}]", product, kind, module)
        modules[kind] = entries[0] if kind in SINGLE_MODULES and entries else entries
    return modules, lifecycle, problems


def _module_problems(where: str, product: str, kind: str, module: object) -> list[str]:
    if not isinstance(module, dict):
        return [f"{where}: a module must be an object"]
    key = module.get("key")
    label = f"{where} ({key!r})" if isinstance(key, str) else where
    # Cloud checks module bodies at install; the emulator checks the fields @forge/manifest's
    # schema requires of the same module type (manifest_schema.py copies them).
    required = CONNECT_MODULES.get(product, {}).get(kind, ("key",))
    problems = [
        f"{label}: {field} is required" for field in required if module.get(field) in (None, "")
    ]
    if isinstance(key, str) and key and not MODULE_KEY_PATTERN.fullmatch(key):
        problems.append(f"{label}: the module key must match [a-zA-Z0-9_-]+")
    return problems
