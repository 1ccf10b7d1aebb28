"""The frame every page of the emulated site shares: the product's top bar with its Apps menu,
an optional sidebar, the page's own content, and the scripts that run the Connect bridge.

Pages are plain server-rendered HTML. Add-on iframes are not in the HTML: each is a slot
(``<div class="ac-slot">``) described in the page's ``connect-dev-site`` JSON, which
``site.js`` turns into an iframe with atlassian-connect-js's ``connectHost.create``. When the
bridge could not be obtained the page says why, and the slots hold plain iframes instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..connect_js import ConnectJsUnavailable
from ..iframe import is_absolute, substitute
from .modules import Module, app_modules

if TYPE_CHECKING:
    from ..lifecycle import Installation
    from ..product import User
    from ..types import Host

__all__ = [
    "API_PATH",
    "MANAGE_APPS_PATH",
    "STATIC_PATH",
    "Frame",
    "IframeSlot",
    "admin_sidebar",
    "attr",
    "needs_bridge",
    "page_module_path",
    "render",
    "web_item_href",
    "web_item_html",
]

STATIC_PATH = "/s/connect-dev"  # under the context path, as Jira serves /s/... resources
API_PATH = "/rest/connect-dev/1"  # the JSON the site's own pages call (api.py)
MANAGE_APPS_PATH = "/plugins/servlet/upm"
# What marks an element that opens an app's iframe (data-ac-dialog, data-ac-open).
OPENER_MARK = "data-ac-"
PRODUCT_NAMES = {"jira": "Jira", "confluence": "Confluence"}


def attr(value: str) -> str:
    return escape(value, quote=True)


def page_module_path(host: Host, app_key: str, module_key: str) -> str:
    """Where a page module lives: ``{cp}/plugins/servlet/ac/{appKey}/{moduleKey}``."""
    return f"{host.settings.context_path}/plugins/servlet/ac/{app_key}/{module_key}"


@dataclass
class IframeSlot:
    """One add-on iframe on a page: what ``connectHost.create`` is given."""

    id: str
    app_key: str
    module_key: str
    url: str
    options: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "addon_key": self.app_key,
            "key": self.module_key,
            "url": self.url,
            "options": self.options,
        }

    def html(self, bridge: bool) -> str:
        """The slot; without the bridge, a plain iframe in it."""
        if bridge:
            return f'<div class="ac-slot" id="{attr(self.id)}"></div>'
        width = str(self.options.get("width") or "100%")
        height = str(self.options.get("height") or "150px")
        return (
            f'<div class="ac-slot" id="{attr(self.id)}"><iframe class="ap-iframe" '
            f'src="{attr(self.url)}" style="width:{attr(width)};height:{attr(height)}" '
            'referrerpolicy="no-referrer"></iframe></div>'
        )


@dataclass
class Frame:
    """What a page puts into the shared frame; ``user`` is who views it."""

    title: str
    content: str
    user: User
    slots: list[IframeSlot] = field(default_factory=list)
    variables: Mapping[str, str] = field(default_factory=dict)  # the page's context
    sidebar: str = ""
    status: int = 200

    def slot(
        self,
        app_key: str,
        module_key: str,
        url: str,
        options: Mapping[str, Any],
    ) -> IframeSlot:
        """A new iframe slot on this page; put ``slot.html(...)`` where it goes."""
        created = IframeSlot(f"ac-slot-{len(self.slots)}", app_key, module_key, url, dict(options))
        self.slots.append(created)
        return created


def needs_bridge(host: Host, frame: Frame) -> bool:
    """Whether the page shows an app: an iframe, or something that opens one. Only such pages
    load the bridge (and so only they install it, on first use)."""
    if frame.slots:
        return True
    return OPENER_MARK in frame.content + frame.sidebar + _top_bar(host, frame.user)


def render(
    host: Host, frame: Frame, bridge: ConnectJsUnavailable | None, *, with_bridge: bool
) -> str:
    """The whole page; with the bridge's scripts if ``with_bridge``, else with ``bridge``, the
    reason it is missing, in a banner (when the page needs it)."""
    user = frame.user
    cp = host.settings.context_path
    product = PRODUCT_NAMES[host.settings.product]
    installations = [i for i in host.installations.values() if i.enabled]
    config = {
        "contextPath": cp,
        "product": host.settings.product,
        "api": cp + API_PATH,
        "user": {
            "accountId": user.account_id,
            "displayName": user.display_name,
            "locale": "en-US",
            "timeZone": user.time_zone,
        },
        "context": dict(frame.variables),
        "iframes": [slot.spec() for slot in frame.slots],
        "dialogModules": _dialog_modules(installations),
        "bridge": with_bridge,
    }
    banner = ""
    if bridge is not None:
        hint = f"<br>{escape(bridge.hint)}" if bridge.hint else ""
        banner = (
            '<div class="cd-banner" role="alert"><strong>No Connect bridge on this page:</strong> '
            f"{escape(bridge.message)}{hint}<br>Add-on iframes load without <code>AP</code>."
            "</div>"
        )
    scripts = ""
    if with_bridge:
        # connect-host.js takes jQuery from AJS.$; nothing else of AUI is used (site.js
        # provides the dialogs and flags).
        scripts = (
            f'<script src="{cp}{STATIC_PATH}/jquery.js"></script>'
            "<script>window.AJS = window.AJS || {}; window.AJS.$ = window.jQuery;</script>"
            f'<script src="{cp}{STATIC_PATH}/connect-host.js"></script>'
        )
    sidebar = f'<aside class="cd-sidebar">{frame.sidebar}</aside>' if frame.sidebar else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(frame.title)} - {product} (emulated)</title>"
        + (
            f'<link rel="stylesheet" href="{cp}{STATIC_PATH}/connect-host.css">'
            if with_bridge
            else ""
        )
        + f'<link rel="stylesheet" href="{cp}{STATIC_PATH}/site.css"></head>'
        f'<body class="cd-{host.settings.product}">'
        + _top_bar(host, user)
        + banner
        + f'<div class="cd-body">{sidebar}<main class="cd-main">{frame.content}</main></div>'
        '<div id="cd-flags" aria-live="polite"></div>'
        '<script type="application/json" id="connect-dev-site">'
        # No "<" at all: the JSON cannot end the script element early (the page's context
        # comes from its URL).
        + json.dumps(config).replace("<", "\\u003c")
        + "</script>"
        + scripts
        + f'<script src="{cp}{STATIC_PATH}/site.js"></script></body></html>\n'
    )


def admin_sidebar(host: Host, current: str = "") -> str:
    """The admin pages' sidebar: Manage apps, then each app's admin pages and admin web items."""
    cp = host.settings.context_path
    links = [(f"{cp}{MANAGE_APPS_PATH}", "Manage apps")]
    for installation in host.installations.values():
        if not installation.enabled:
            continue
        for module in app_modules(installation):
            if module.type == "adminPages":
                links.append((page_module_path(host, module.app_key, module.key), module.name))
            elif (
                module.type == "webItems" and module.web_item_menu(host.settings.product) == "admin"
            ):
                links.append((web_item_href(host, module, {}), module.name))
    items = "".join(
        f'<li><a href="{attr(href)}"{" aria-current=page" if href == current else ""}>'
        f"{escape(name)}</a></li>"
        for href, name in links
    )
    return f'<h2>Apps</h2><ul class="cd-nav">{items}</ul>'


def web_item_href(host: Host, module: Module, variables: Mapping[str, str]) -> str:
    """Where a web item that opens a page leads (dialog web items are buttons instead)."""
    cp = host.settings.context_path
    url = substitute(module.url, variables)
    if is_absolute(url):
        return url
    if module.link_context == "product":
        return cp + "/" + url.lstrip("/")
    if module.link_context == "page":
        return page_module_path(host, module.app_key, url.strip("/"))
    # An app URL is signed when it is followed, not when the page is drawn (redirect.py).
    query = "&".join(
        f"{quote(name, safe='')}={quote(value, safe='')}"
        for name, value in variables.items()
        if "." in name and not name.startswith("user.")
    )
    return f"{cp}/plugins/servlet/connect-dev/redirect/{module.app_key}/{module.key}" + (
        f"?{query}" if query else ""
    )


def web_item_html(host: Host, module: Module, variables: Mapping[str, str]) -> str:
    """A web item in a menu: a link, or a button that opens its dialog."""
    if module.opens_dialog:
        return (
            f'<button type="button" class="cd-link" {OPENER_MARK}dialog="{attr(module.app_key)}" '
            f'data-ac-key="{attr(module.key)}">{escape(module.name)}</button>'
        )
    return f'<a href="{attr(web_item_href(host, module, variables))}">{escape(module.name)}</a>'


def _top_bar(host: Host, user: User) -> str:
    cp = host.settings.context_path
    product = host.settings.product
    entries: list[str] = []
    for installation in host.installations.values():
        if not installation.enabled:
            continue
        for module in app_modules(installation):
            if module.type == "generalPages":
                href = page_module_path(host, module.app_key, module.key)
                entries.append(f'<a href="{attr(href)}">{escape(module.name)}</a>')
            elif module.type == "webItems" and module.web_item_menu(product) == "top":
                entries.append(web_item_html(host, module, {}))
    menu = "".join(f"<li>{entry}</li>" for entry in entries) or (
        '<li class="cd-muted">No app adds anything here yet.</li>'
    )
    return (
        '<header class="cd-top"><a class="cd-logo" href="'
        f'{cp}/"><span class="cd-mark" aria-hidden="true"></span>{PRODUCT_NAMES[product]}'
        '<small>emulated by connect-dev</small></a><nav class="cd-topnav">'
        f'<a href="{cp}/">Home</a>'
        f'<details class="cd-menu" id="cd-apps-menu"><summary>Apps</summary><ul>{menu}</ul>'
        f'</details><a href="{cp}{MANAGE_APPS_PATH}">Manage apps</a></nav>'
        f'<span class="cd-user" title="{attr(user.account_id)}">{escape(user.display_name)}'
        "</span></header>"
    )


def _dialog_modules(installations: Iterable[Installation]) -> dict[str, dict[str, Any]]:
    """``_AP.dialogModules``: each app's dialog modules and their options, which
    connect-host.js reads when an app opens one with ``AP.dialog.create({key})``."""
    found: dict[str, dict[str, Any]] = {}
    for installation in installations:
        for module in app_modules(installation):
            if module.type == "dialogs":
                options = module.raw.get("options")
                found.setdefault(module.app_key, {})[module.key] = {
                    "options": options if isinstance(options, dict) else {}
                }
    return found
