"""What the site's own pages ask the site for while an app runs in them, under
``{cp}/rest/connect-dev/1`` (JSON in, JSON out):

- ``POST /context`` ``{"app", "context"}`` → ``{"context": claim, "token": jwt or null}``:
  what ``AP.context.getContext()`` and ``getToken()`` answer;
- ``POST /iframe`` ``{"app", "module", "context"}`` → ``{"url", "key", "name", "type",
  "options", "dialog"}``: a module's iframe, signed now (dialogs, issue glances and contents,
  iframes whose JWT expired);
- ``POST /webhooks/fire`` ``{"event", "issue"?, "page"?, "app"?}`` → what
  ``host.webhooks.fire`` did (``{"event", "deliveries", "skipped", "declared"}``): the issue
  page's "Fire webhook" buttons.

``context`` is the page's context variables (``{"issue.key": "DEMO-1", ...}``), as the page
gave them to the iframe. Tokens and URLs are signed for the account of the site's session
cookie (the pages sign their viewer in); without one the answer is 401. Requests must be
JSON, which a browser sends cross-site only after a CORS preflight this site never grants:
other sites' pages cannot mint tokens through the viewer's browser.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..iframe import context_claim, context_token, iframe_url
from ..rest_auth import session_user
from ..webhooks import EntityNotFound
from .context import with_user
from .modules import find_module
from .pages import iframe_options

if TYPE_CHECKING:
    from ..types import Host

__all__ = ["api_routes"]

logger = logging.getLogger(__name__)

NOT_SIGNED_IN = "not signed in: open one of the site's pages first"
# What a module opened through /iframe may be: anything with a URL the product frames.
FRAMED_TYPES = frozenset(
    {
        "generalPages",
        "adminPages",
        "configurePage",
        "postInstallPage",
        "dialogs",
        "webItems",
        "webPanels",
        "jiraIssueGlances",
        "jiraIssueContents",
        "dynamicContentMacros",
    }
)


def api_routes(host: Host, prefix: str) -> list[web.RouteDef]:
    async def context(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        user = session_user(host, request)
        if user is None:
            return _error(401, NOT_SIGNED_IN)
        app, variables = body.get("app"), _variables(body.get("context"))
        installation = host.installations.get(app) if isinstance(app, str) else None
        if installation is None or not installation.enabled or variables is None:
            return _error(404, f"no enabled app {app!r} on this site")
        try:
            token: str | None = context_token(
                host, installation, with_user(variables, user), account_id=user.account_id
            )
        except LookupError:
            token = None
        return web.json_response(
            {"context": context_claim(host.settings.product, variables), "token": token}
        )

    async def iframe(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        user = session_user(host, request)
        if user is None:
            return _error(401, NOT_SIGNED_IN)
        app, key, variables = body.get("app"), body.get("module"), _variables(body.get("context"))
        if not isinstance(app, str) or not isinstance(key, str) or variables is None:
            return _error(400, 'send {"app": str, "module": str, "context": {str: str}}')
        found = find_module(host.installations, app, key)
        if found is None or found[1].type not in FRAMED_TYPES or not found[1].url:
            return _error(404, f"no module {key!r} with a URL in an enabled app {app!r}")
        installation, module = found
        if module.type == "webItems" and module.target_type == "dialogmodule":
            # A web item that opens a dialog module frames that module.
            options = module.target.get("options")
            target_key = options.get("key") if isinstance(options, dict) else None
            found = find_module(host.installations, app, str(target_key))
            if found is None or found[1].type != "dialogs":
                return _error(404, f"web item {key!r} names no dialog module of {app!r}")
            installation, module = found
        url = iframe_url(
            host,
            installation,
            module.key,
            module.url,
            with_user(variables, user),
            account_id=user.account_id,
        )
        return web.json_response(
            {
                "url": url,
                "key": module.key,
                "name": module.name,
                "type": module.type,
                "options": iframe_options(module, variables),
                "dialog": _dialog_options(module.raw),
            }
        )

    async def fire_webhook(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        if session_user(host, request) is None:
            return _error(401, NOT_SIGNED_IN)
        event = body.get("event")
        given = {name: body.get(name) for name in ("issue", "page", "app")}
        if (
            not isinstance(event, str)
            or not event
            or any(value is not None and not isinstance(value, str) for value in given.values())
        ):
            return _error(400, 'send {"event": str, "issue"?: str, "page"?: str, "app"?: str}')
        try:
            result = await host.webhooks.fire(
                event, issue=given["issue"], page=given["page"], key=given["app"]
            )
        except EntityNotFound as exc:
            return _error(404, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        return web.json_response(result.to_dict())

    return [
        web.post(f"{prefix}/context", context),
        web.post(f"{prefix}/iframe", iframe),
        web.post(f"{prefix}/webhooks/fire", fire_webhook),
    ]


def _dialog_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options a dialog opens with: a dialog module's ``options``, or a dialog web item's
    ``target.options``; with a header and buttons (``chrome``) unless they say otherwise, as
    Connect's default is."""
    options = raw.get("options")
    if not isinstance(options, dict):
        target = raw.get("target")
        options = target.get("options") if isinstance(target, dict) else None
    return {"chrome": True, **(options if isinstance(options, dict) else {})}


def _variables(value: object) -> dict[str, str] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    # The viewer is the site's to say, not the page's.
    return {k: v for k, v in value.items() if not k.startswith("user.")}


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type != "application/json":
        return _error(415, "send application/json")
    try:
        body = json.loads(await request.text())
    except ValueError:
        return _error(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "send a JSON object")
    return body


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
