"""The UPM backend: install a descriptor URL through the host's UPM REST API.

The conversation with the host is ``upm.UpmClient``'s; this is the little that makes it a
backend: development mode is checked before anything else, the ledger entry goes to disk right
before each install POST (``before_post``), and every uninstall is a DELETE of the key.
"""

from __future__ import annotations

from typing import Protocol

from ..config import HostConfig
from ..errors import DevloopError
from ..ledger import LedgerEntry, new_entry
from ..upm import PluginInfo
from .base import Commit, Installed, Target

__all__ = ["UpmBackend", "UpmConversation"]


class UpmConversation(Protocol):
    """What the backend uses of ``UpmClient`` (tests hand in a fake)."""

    last_reply_at: float | None

    async def check_dev_mode(self) -> None: ...

    async def install(
        self, plugin_uri: str, *, before_post: Commit | None = None
    ) -> PluginInfo: ...

    async def uninstall(self, key: str) -> bool: ...


class UpmBackend:
    """``client`` is None (with ``unavailable`` saying why) when the host has no credentials:
    every install and uninstall then fails with that error before anything is sent."""

    kind = "upm"
    keep_on_exit = False
    interruptible = True

    def __init__(
        self,
        host: HostConfig,
        client: UpmConversation | None,
        *,
        unavailable: DevloopError | None = None,
    ) -> None:
        self.host = host
        self._client = client
        self._unavailable = unavailable

    def __repr__(self) -> str:
        return f"UpmBackend({self.host.name!r}, {self._client!r})"

    @property
    def last_reply_at(self) -> float | None:
        return self._client.last_reply_at if self._client is not None else None

    def _conversation(self) -> UpmConversation:
        if self._client is None:
            raise self._unavailable or DevloopError("no client for this host")
        return self._client

    async def prepare(self, target: Target) -> Target:
        await self._conversation().check_dev_mode()
        return target

    def ledger_entry(self, target: Target) -> LedgerEntry:
        return new_entry(self.host.name, self.host.base_url, self.host.username, target.key)

    async def install(self, target: Target, commit: Commit) -> Installed:
        plugin = await self._conversation().install(target.plugin_uri, before_post=commit)
        return Installed(key=plugin.key, enabled=plugin.enabled)

    async def uninstall(self, entry: LedgerEntry) -> bool:
        return await self._conversation().uninstall(entry.key)

    def kept_revision(self, entry: LedgerEntry) -> None:
        # Whatever an earlier run left on a UPM host is a leftover: it is removed at start.
        return None
