"""The Connect parts of a Forge manifest (a plain, resolved ``manifest.yml`` document) that the
emulated Forge CLI and the emulated site's Forge side both read: the Connect key, the scopes,
and each remote's ``baseUrl``."""

from __future__ import annotations

from typing import Any

__all__ = ["connect_key_of", "remote_base_urls", "scopes_of"]


def connect_key_of(manifest: dict[str, Any]) -> str | None:
    """``app.connect.key``, or ``None`` for a manifest without one."""
    app = manifest.get("app")
    connect = app.get("connect") if isinstance(app, dict) else None
    key = connect.get("key") if isinstance(connect, dict) else None
    return key if isinstance(key, str) and key else None


def scopes_of(manifest: dict[str, Any]) -> list[str]:
    """``permissions.scopes``, sorted: a list of names, or (older manifests) a map keyed by them."""
    permissions = manifest.get("permissions")
    scopes = permissions.get("scopes") if isinstance(permissions, dict) else None
    if isinstance(scopes, dict):
        scopes = list(scopes)
    return sorted({s for s in scopes or [] if isinstance(s, str)})


def remote_base_urls(manifest: dict[str, Any]) -> dict[str, str]:
    """Each remote's key and its ``baseUrl`` (the ``default`` one of a per-region map)."""
    remotes = manifest.get("remotes")
    found: dict[str, str] = {}
    for remote in remotes if isinstance(remotes, list) else []:
        if not isinstance(remote, dict) or not isinstance(remote.get("key"), str):
            continue
        base_url = remote.get("baseUrl")
        if isinstance(base_url, dict):
            base_url = base_url.get("default")
        if isinstance(base_url, str):
            found[remote["key"]] = base_url
    return found
