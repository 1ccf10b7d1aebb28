"""The emulated site's "Manage apps" page: what a browser sees at ``/plugins/servlet/upm``.

Real products show their UPM there, and the dashboard's ``o`` (and every hint that says
"check Manage apps") opens that URL; the emulator answers it with a small page listing the apps
installed now, so that the link works in the demo too. No login: the emulated site is a local
stand-in, and nothing on the page is a secret.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .site import EmulatedHost

__all__ = ["MANAGE_APPS_PATH", "manage_apps_routes"]

MANAGE_APPS_PATH = "/plugins/servlet/upm"


def manage_apps_routes(host: EmulatedHost) -> list[web.RouteDef]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=manage_apps_html(host), content_type="text/html")

    return [web.get(f"{host.settings.context_path}{MANAGE_APPS_PATH}", page)]


def manage_apps_html(host: EmulatedHost) -> str:
    product = escape(host.settings.product.capitalize())
    rows = "".join(
        f"<tr><td>{escape(item.name)}</td><td><code>{escape(item.key)}</code></td>"
        f"<td>{escape(item.version)}</td><td>{'enabled' if item.enabled else 'DISABLED'}</td>"
        f'<td><a href="{escape(item.plugin_uri, quote=True)}">{escape(item.plugin_uri)}</a>'
        "</td></tr>"
        for item in host.installations.values()
    )
    table = (
        "<table><tr><th>App</th><th>Key</th><th>Version</th><th>State</th>"
        f"<th>Installed from</th></tr>{rows}</table>"
        if rows
        else "<p>No user-installed apps.</p>"
    )
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>Manage apps - emulated {product}</title></head><body>"
        f"<h1>Manage apps</h1><p>Emulated {product} at {escape(host.base_url)} "
        "(connect-dev host).</p>"
        f"{table}</body></html>\n"
    )
