"""``provider = "none"``: no tunnel; hosts reach the proxy directly or through a URL you run."""

from __future__ import annotations

__all__ = ["StaticTunnel"]


class StaticTunnel:
    """The public URL is ``tunnel.public_url`` when set, else the proxy's own loopback URL."""

    provider = "none"

    def __init__(self, public_url: str | None = None) -> None:
        self._public_url = public_url

    async def open(self, local_url: str) -> str:
        return (self._public_url or local_url).rstrip("/")

    async def close(self) -> None:
        return None
