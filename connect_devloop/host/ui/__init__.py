"""The emulated site's pages: a small UI in the product's shape where installed apps render
their modules, with Atlassian's own Connect bridge (atlassian-connect-js) in the pages.

    app.add_routes(ui_routes(host))

Besides the pages (``pages.py``) the site serves, under its context path:

- ``/atlassian-connect/all.js`` (and ``all-debug.js``): the bridge's add-on side,
  ``dist/iframe.js``, followed by ``static/all-request.js``;
- ``/atlassian-connect/all.css`` (and ``all-debug.css``): base styles for add-on pages;
- ``/s/connect-dev/connect-host.js``, ``connect-host.css``, ``jquery.js``: the bridge's product
  side and the jQuery it needs; ``site.js``, ``site.css``: this UI's own script and styles;
- ``/rest/connect-dev/1/...``: what the pages ask the site (``api.py``).

The bridge is installed with npm on first use (``connect_js.py``); until then, or when npm
cannot get it, ``all.js`` answers 503 with a script that says why on the console.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from ..connect_js import ConnectJs, ConnectJsSource, ConnectJsUnavailable
from .api import api_routes
from .layout import API_PATH, MANAGE_APPS_PATH, STATIC_PATH
from .pages import SitePages

if TYPE_CHECKING:
    from ..types import Host

__all__ = ["ui_routes"]

JS = "application/javascript"
CSS = "text/css"
OWN_FILES = {"site.js": JS, "site.css": CSS}
BRIDGE_FILES = {"connect-host.js": JS, "connect-host.css": CSS, "jquery.js": JS}


def _own(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def ui_routes(host: Host, connect_js: ConnectJsSource | None = None) -> list[web.RouteDef]:
    """Every route of the pages; ``connect_js`` is where the bridge comes from (by default
    the user cache, on first use)."""
    source = connect_js or ConnectJsSource()
    pages = SitePages(host, source)
    cp = host.settings.context_path

    async def own_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name in OWN_FILES:
            return _file(_own(name), OWN_FILES[name])
        if name not in BRIDGE_FILES:
            raise web.HTTPNotFound()
        try:
            bridge = await source.get()
        except ConnectJsUnavailable as exc:
            return _unavailable(exc, BRIDGE_FILES[name])
        content = {
            "connect-host.js": bridge.host_js,
            "connect-host.css": bridge.host_css,
            "jquery.js": bridge.jquery_js,
        }[name]
        return _file(content, BRIDGE_FILES[name])

    async def all_js(request: web.Request) -> web.Response:
        try:
            bridge = await source.get()
        except ConnectJsUnavailable as exc:
            return _unavailable(exc, JS)
        return _file(add_on_script(bridge), JS)

    async def all_css(request: web.Request) -> web.Response:
        return _file(_own("all.css"), CSS)

    async def context_root(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{cp}/")

    routes = [
        web.get(f"{cp}/", pages.home),
        web.get(f"{cp}{MANAGE_APPS_PATH}", pages.manage_apps),
        web.get(f"{cp}/plugins/servlet/ac/{{app}}/{{module}}", pages.page_module),
        web.get(f"{cp}/plugins/servlet/connect-dev/redirect/{{app}}/{{module}}", pages.redirect),
        web.get(f"{cp}/atlassian-connect/{{name:all(-debug)?\\.js}}", all_js),
        web.get(f"{cp}/atlassian-connect/{{name:all(-debug)?\\.css}}", all_css),
        web.get(f"{cp}{STATIC_PATH}/{{name}}", own_file),
        *api_routes(host, cp + API_PATH),
    ]
    if cp:
        routes.append(web.get(cp, context_root))
    if host.settings.product == "jira":
        routes.append(web.get(f"{cp}/browse/{{key}}", pages.issue))
    else:
        routes += [
            web.get(f"{cp}/spaces/{{space}}", pages.space),
            web.get(f"{cp}/pages/viewpage.action", pages.view_page),
            web.get(f"{cp}/spaces/{{space}}/pages/{{page}}", pages.confluence_page),
            # Cloud's page URLs end with the title, which the page does not need.
            web.get(f"{cp}/spaces/{{space}}/pages/{{page}}/{{title}}", pages.confluence_page),
        ]
    return routes


def add_on_script(bridge: ConnectJs) -> bytes:
    """``all.js``: Atlassian's ``iframe.js`` as published, then this site's small addition
    (``all-request.js``: ``AP.request``'s callback options, which cannot cross postMessage)."""
    return bridge.iframe_js + b"\n;\n" + _own("all-request.js")


def _file(content: bytes, content_type: str) -> web.Response:
    response = web.Response(body=content, content_type=content_type)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _unavailable(error: ConnectJsUnavailable, content_type: str) -> web.Response:
    reason = f"{error.message} ({error.hint})" if error.hint else error.message
    text = f"console.error({json.dumps('connect-devloop: no Connect bridge: ' + reason)});\n"
    if content_type == CSS:
        text = f"/* connect-devloop: no Connect bridge: {reason.replace('*/', '* /')} */\n"
    return web.Response(text=text, content_type=content_type, status=503)
