"""Tunnel providers, chosen by ``[tunnel] provider``."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import Tunnel
from .static import StaticTunnel

__all__ = ["StaticTunnel", "Tunnel", "create_tunnel"]


def create_tunnel(config: Config) -> Tunnel:
    provider = config.tunnel_provider
    if provider == "none":
        return StaticTunnel(config.tunnel.public_url)
    remote = [host.name for host in config.hosts if not host.is_local]
    why = (
        f' (chosen by provider = "auto" because {", ".join(remote)} is not on loopback)'
        if config.tunnel.provider == "auto"
        else ""
    )
    raise ConfigError(
        f'tunnel provider "{provider}" is not available in this version{why}',
        hint='Set [tunnel] provider = "none" and public_url to an https URL that reaches '
        f"127.0.0.1:{config.proxy_port} (e.g. from `ngrok http {config.proxy_port}` run by hand).",
        file=str(config.path),
        key="tunnel.provider",
    )
