"""``provider = "none"``: no tunnel; hosts reach the proxy directly or through a URL you run."""

from __future__ import annotations

import asyncio

from .leftover import ProcessFile

__all__ = ["StaticTunnel"]


class StaticTunnel:
    """The public URL is ``tunnel.public_url`` when set, else the proxy's own loopback URL."""

    provider = "none"
    inspector_url = ""

    def __init__(
        self, public_url: str | None = None, *, leftovers: ProcessFile | None = None
    ) -> None:
        """``leftovers``: a tunnel process an earlier, killed run (with another provider) left
        running is stopped on the first open."""
        self._public_url = public_url
        self._leftovers = leftovers

    @property
    def configured(self) -> bool:
        """True when the URL is one the user runs (``[tunnel] public_url``), not the proxy's."""
        return self._public_url is not None

    async def open(self, local_url: str) -> str:
        leftovers, self._leftovers = self._leftovers, None
        if leftovers is not None:
            await asyncio.to_thread(leftovers.stop_leftover)
        return (self._public_url or local_url).rstrip("/")

    async def close(self) -> None:
        return None

    def exited(self) -> str | None:
        return None
