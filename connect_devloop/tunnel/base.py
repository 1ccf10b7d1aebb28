"""What every tunnel provider offers the supervisor and the keeper."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Tunnel"]


class Tunnel(Protocol):
    """Makes the local proxy reachable by the hosts at a public URL.

    ``open`` returns the public URL (no trailing slash) once requests to it reach ``local_url``,
    or raises ``TunnelError``; after ``close`` it may be called again (the keeper reopens a tunnel
    that dropped). ``close`` must be safe to call twice and must stop only what this tunnel
    started. ``exited`` says why the process the tunnel runs (agent, ssh) is gone, or None while
    it runs or when there is no process. ``inspector_url`` is the local web page where the
    tunnel's own process shows the traffic it carries (the ngrok agent's inspector), "" when
    there is none.
    """

    provider: str

    @property
    def inspector_url(self) -> str: ...

    async def open(self, local_url: str) -> str: ...

    async def close(self) -> None: ...

    def exited(self) -> str | None: ...
