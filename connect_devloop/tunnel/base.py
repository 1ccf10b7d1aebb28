"""What every tunnel provider offers the supervisor."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Tunnel"]


class Tunnel(Protocol):
    """Makes the local proxy reachable by the hosts at a public URL.

    ``open`` returns the public URL (no trailing slash); ``close`` must be safe to call twice and
    must stop only what this tunnel started.
    """

    provider: str

    async def open(self, local_url: str) -> str: ...

    async def close(self) -> None: ...
