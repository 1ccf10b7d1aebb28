"""Which of an installed app's modules the emulated site renders, and where.

A descriptor's ``modules`` maps a module type to a list of modules (``generalPages``) or to one
module (``configurePage``). The site reads each into a ``Module`` and asks it where it goes:
page modules get their own page, web items go in a menu, web panels, issue glances and issue
contents on the issue page, macros on the Confluence page. Module types the site does not
render are listed on the Manage apps page as such. ``conditions`` are not evaluated: every
module shows (the emulator's choice).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..lifecycle import Installation

__all__ = [
    "ISSUE_LEFT",
    "ISSUE_RIGHT",
    "PAGE_TYPES",
    "Module",
    "app_modules",
    "find_module",
    "module_text",
]

# Module types with a page of their own at /plugins/servlet/ac/{appKey}/{moduleKey}.
PAGE_TYPES = ("generalPages", "adminPages", "configurePage", "postInstallPage")
ISSUE_LEFT = "atl.jira.view.issue.left.context"
ISSUE_RIGHT = "atl.jira.view.issue.right.context"
_TOP_MENU_LOCATIONS = ("system.top.navigation.bar", "system.header/left", "system.help/pages")
# Issue page menus of Jira: the operations bar and its "..." menu.
_ISSUE_MENU_PREFIXES = ("operations-", "jira.issue.tools", "atl.jira.view.issue")
_CONTENT_MENU_PREFIXES = ("system.content.action", "system.content.button", "system.content.meta")


@dataclass(frozen=True)
class Module:
    """One module of an installed app, as the site renders it."""

    app_key: str
    app_name: str
    type: str  # the descriptor's module type: "generalPages", "webPanels", ...
    key: str
    name: str
    url: str
    location: str
    raw: Mapping[str, Any]

    @property
    def target(self) -> Mapping[str, Any]:
        """A web item's ``target`` (``{"type": "page"}`` when it has none)."""
        target = self.raw.get("target")
        return target if isinstance(target, dict) else {"type": "page"}

    @property
    def target_type(self) -> str:
        kind = self.target.get("type", "page")
        return kind.lower() if isinstance(kind, str) else "page"

    @property
    def opens_dialog(self) -> bool:
        return self.type == "webItems" and self.target_type in (
            "dialog",
            "dialogmodule",
            "inlinedialog",
        )

    @property
    def link_context(self) -> str:
        """A web item's ``context``: its ``url`` is relative to the app (``addon``), the
        product (``product``), or names a page module of the app (``page``)."""
        context = self.raw.get("context", "addon")
        return context.lower() if isinstance(context, str) else "addon"

    def where(self, product: str) -> str:
        """Where the site shows this module, in words (the Manage apps page lists it)."""
        if self.type in PAGE_TYPES:
            return {
                "generalPages": "its own page, linked from the Apps menu",
                "adminPages": "its own page, linked from the admin sidebar",
                "configurePage": "its own page, the app's Configure button",
                "postInstallPage": "its own page, linked from Manage apps",
            }[self.type]
        if self.type == "webItems":
            return {
                "top": "the Apps menu",
                "admin": "the admin sidebar",
                "issue": "the issue page's Apps menu",
                "content": "the page's Apps menu",
            }.get(self.web_item_menu(product) or "", "not shown (location not emulated)")
        if self.type == "webPanels":
            if product == "jira" and self.location in (ISSUE_LEFT, ISSUE_RIGHT):
                side = "main column" if self.location == ISSUE_LEFT else "right column"
                return f"the issue page's {side}"
            return "not shown (location not emulated)"
        return {
            "jiraIssueGlances": "the issue page's right column (opens a panel)",
            "jiraIssueContents": "the issue page's quick-add buttons (opens a panel)",
            "dialogs": "a dialog (AP.dialog.create, or a web item with a dialogmodule target)",
            "staticContentMacros": "the Confluence page's body (rendered by the site)",
            "dynamicContentMacros": "the Confluence page's body (an iframe)",
        }.get(self.type, "not shown (module type not emulated)")

    def web_item_menu(self, product: str) -> str | None:
        """``top``, ``admin``, ``issue``, ``content`` or ``None`` for a location not emulated."""
        location = self.location
        if location in _TOP_MENU_LOCATIONS:
            return "top"
        if location.startswith(("system.admin", "admin_plugins_menu", "system.settings")):
            return "admin"
        if product == "jira" and location.startswith(_ISSUE_MENU_PREFIXES):
            return "issue"
        if product == "confluence" and location.startswith(_CONTENT_MENU_PREFIXES):
            return "content"
        return None


def module_text(value: object, default: str = "") -> str:
    """An i18n property's text (``{"value": "Hello"}``), or a plain string."""
    if isinstance(value, dict):
        value = value.get("value")
    return value if isinstance(value, str) else default


def app_modules(installation: Installation) -> list[Module]:
    """Every module of the app, in descriptor order; malformed entries are skipped."""
    modules = installation.descriptor.get("modules")
    if not isinstance(modules, dict):
        return []
    found: list[Module] = []
    for module_type, entries in modules.items():
        for raw in _entries(entries):
            key = raw.get("key")
            if not isinstance(key, str) or not key:
                # configurePage and postInstallPage often go without a key.
                if module_type not in ("configurePage", "postInstallPage"):
                    continue
                key = module_type
            url = raw.get("url")
            target = raw.get("target")
            # Issue glances and contents keep their URL in target.url.
            if not isinstance(url, str) and isinstance(target, dict):
                url = target.get("url")
            location = raw.get("location")
            found.append(
                Module(
                    app_key=installation.key,
                    app_name=installation.name,
                    type=str(module_type),
                    key=key,
                    name=module_text(raw.get("name"), key),
                    url=url if isinstance(url, str) else "",
                    location=location if isinstance(location, str) else "",
                    raw=raw,
                )
            )
    return found


def find_module(
    installations: Mapping[str, Installation], app_key: str, module_key: str
) -> tuple[Installation, Module] | None:
    """An enabled app's module by key (the first of that key, as the product resolves it)."""
    installation = installations.get(app_key)
    if installation is None or not installation.enabled:
        return None
    for module in app_modules(installation):
        if module.key == module_key:
            return installation, module
    return None


def _entries(value: object) -> Iterator[Mapping[str, Any]]:
    items: Iterable[object] = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            yield item
