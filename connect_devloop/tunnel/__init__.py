"""Tunnel providers, chosen by ``[tunnel] provider``, and the keeper that keeps one up.

- ``none`` (``static.py``): no tunnel; the hosts use ``[tunnel] public_url`` or the proxy's URL.
- ``ngrok`` (``ngrok.py``): the ngrok agent through pyngrok.
- ``ssh`` (``ssh.py``): ``ssh -N -R`` to a server the user names.
- ``keeper.py``: health probes, reopening with backoff, the pre-install check.

See docs/tunnels.md.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config
from ..events import Event
from .base import Tunnel
from .keeper import TunnelKeeper, is_probe_path
from .leftover import ProcessFile
from .ngrok import NgrokTunnel
from .ssh import SshTunnel
from .static import StaticTunnel

__all__ = [
    "NgrokTunnel",
    "SshTunnel",
    "StaticTunnel",
    "Tunnel",
    "TunnelKeeper",
    "create_tunnel",
    "is_probe_path",
    "stop_leftover_tunnel",
]

PROCESS_FILE = "tunnel.json"


def create_tunnel(
    config: Config,
    *,
    emit: Callable[[Event], None] | None = None,
    ngrok_authtoken_lookup: Callable[[], str | None] | None = None,
) -> Tunnel:
    """The tunnel ``config`` asks for. ``ngrok_authtoken_lookup`` is asked for the ngrok
    authtoken when its environment variable is unset (the keychain); ``emit`` reports what
    happens before the tunnel opens (a download of the ngrok agent, when allowed)."""
    provider = config.tunnel_provider
    leftovers = _process_file(config)
    if provider == "ngrok":
        remote = [host.name for host in config.hosts if not host.is_local]
        verb = "is" if len(remote) == 1 else "are"
        because = (
            f'by provider = "auto" because {", ".join(remote)} {verb} not on loopback'
            if config.tunnel.provider == "auto"
            else ""
        )
        return NgrokTunnel(
            config.tunnel.ngrok,
            authtoken_lookup=ngrok_authtoken_lookup,
            emit=emit,
            leftovers=leftovers,
            chosen_because=because,
        )
    if provider == "ssh":
        if config.tunnel.ssh.target is None:
            raise config.error(
                "tunnel.provider",
                "provider ssh needs [tunnel.ssh] target: the server to tunnel through",
                hint='Add [tunnel.ssh] with target = "me@my-server.example.com" (see '
                "docs/tunnels.md).",
            )
        return SshTunnel(config.tunnel.ssh, config.tunnel.public_url, leftovers=leftovers)
    return StaticTunnel(config.tunnel.public_url, leftovers=leftovers)


def stop_leftover_tunnel(config: Config) -> int | None:
    """Stop the tunnel process a killed run of this project left running (``connect-dev
    down``); its pid, or None. Blocking: it waits for the process to exit."""
    return _process_file(config).stop_leftover()


def _process_file(config: Config) -> ProcessFile:
    return ProcessFile(config.ledger_path.parent / PROCESS_FILE)
