"""Confluence macros on the emulated page.

A page's storage format names macros as ``<ac:structured-macro ac:name="KEY">`` with
``<ac:parameter ac:name="NAME">`` children and an optional body. A static content macro is
rendered by the site: it GETs the macro's URL from the app (JWT-signed, as a server-to-server
request: ``Authorization: JWT`` with the request's qsh) and puts the XHTML it answers into the
page. A dynamic content macro is an iframe like any other.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from ..iframe import signed_request
from ..lifecycle import USER_AGENT, Installation
from .modules import Module

if TYPE_CHECKING:
    from ..types import Host

__all__ = ["MacroUse", "default_parameters", "render_static_macro", "uses_in_body"]

logger = logging.getLogger(__name__)

# The emulator's choice: a page waits this long for a static macro's content.
STATIC_MACRO_TIMEOUT_S = 10.0
MAX_STATIC_MACRO_BYTES = 1024 * 1024
_MACRO = re.compile(
    r"<ac:structured-macro\b(?P<attributes>[^>]*?)(?:/>|>(?P<inner>.*?)</ac:structured-macro>)",
    re.DOTALL,
)
_NAME = re.compile(r'\bac:name\s*=\s*"([^"]*)"')
_PARAMETER = re.compile(
    r'<ac:parameter\b[^>]*?ac:name\s*=\s*"([^"]*)"[^>]*>(.*?)</ac:parameter>', re.DOTALL
)
_PLAIN_BODY = re.compile(
    r"<ac:plain-text-body>\s*<!\[CDATA\[(.*?)\]\]>\s*</ac:plain-text-body>", re.DOTALL
)
_RICH_BODY = re.compile(r"<ac:rich-text-body>(.*?)</ac:rich-text-body>", re.DOTALL)


@dataclass(frozen=True)
class MacroUse:
    """One macro on the page: its module, parameters and body; ``source`` is the storage
    format it was read from (``None`` for a macro the page does not use itself)."""

    installation: Installation
    module: Module
    parameters: Mapping[str, str]
    body: str
    source: str | None


def default_parameters(module: Module) -> dict[str, str]:
    """Each declared parameter's ``defaultValue``, else its first allowed value."""
    found: dict[str, str] = {}
    declared = module.raw.get("parameters")
    for parameter in declared if isinstance(declared, list) else []:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("identifier"), str):
            continue
        value = parameter.get("defaultValue")
        values = parameter.get("values")
        if not isinstance(value, str) and isinstance(values, list) and values:
            value = values[0]
        found[parameter["identifier"]] = value if isinstance(value, str) else ""
    return found


def uses_in_body(body: str, macros: Mapping[str, tuple[Installation, Module]]) -> list[MacroUse]:
    """The macros of installed apps that ``body`` (storage format) uses, in order."""
    uses: list[MacroUse] = []
    for match in _MACRO.finditer(body):
        name = _NAME.search(match.group("attributes") or "")
        if name is None or name.group(1) not in macros:
            continue
        installation, module = macros[name.group(1)]
        inner = match.group("inner") or ""
        parameters = default_parameters(module)
        parameters.update(
            (key, html.unescape(value).strip()) for key, value in _PARAMETER.findall(inner)
        )
        plain, rich = _PLAIN_BODY.search(inner), _RICH_BODY.search(inner)
        macro_body = plain.group(1) if plain else rich.group(1) if rich else ""
        uses.append(MacroUse(installation, module, parameters, macro_body, match.group(0)))
    return uses


async def render_static_macro(
    host: Host,
    installation: Installation,
    module: Module,
    variables: Mapping[str, str],
    account_id: str,
) -> str:
    """The XHTML the app answers for a static macro, or a box saying why there is none."""
    url, headers = signed_request(host, installation, module.url, variables, account_id=account_id)
    headers["User-Agent"] = USER_AGENT
    try:
        async with host.session.get(
            # `encoded=True`: the query is the one the qsh was computed over.
            URL(url, encoded=True),
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=STATIC_MACRO_TIMEOUT_S),
        ) as response:
            status = response.status
            content = await response.content.read(MAX_STATIC_MACRO_BYTES)
    except TimeoutError:
        return _failure(module, f"no answer within {STATIC_MACRO_TIMEOUT_S:g} s")
    except aiohttp.ClientError as exc:
        return _failure(module, f"{type(exc).__name__}: {exc}")
    logger.info("static macro %s of %s: %s %s", module.key, installation.key, url, status)
    if status != 200:
        return _failure(module, f"the app answered HTTP {status}")
    return content.decode("utf-8", errors="replace")


def _failure(module: Module, reason: str) -> str:
    return (
        f'<div class="cd-macro-error" role="alert">Error rendering macro '
        f"<strong>{html.escape(module.name)}</strong>: {html.escape(reason)}</div>"
    )
