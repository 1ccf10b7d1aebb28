"""The sample add-on of `connect-dev demo`: a small aiohttp server, as a user would write one.

It does what any Connect add-on must: accept the RS256-signed ``installed`` callback (verifying
it with the key the host publishes), keep each tenant's shared secret, forget it on
``uninstalled``, and serve one page that checks the HS256 JWT the host puts in the iframe URL.

The page shows all three directions of Connect traffic: the product calling the app (the
iframe, and the webhooks it received, ``POST /webhook/{event}``, each JWT-verified with its
qsh), the app calling the product's REST API server-side as the tenant (a JWT signed with the
sharedSecret, ``iss`` = the app key, ``qsh`` over the request), and the browser calling it with
``AP.request`` (as the viewing user, with the app's scopes).
"""

from __future__ import annotations

import collections
import hashlib
import html
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
import jwt as pyjwt
from aiohttp import web

from .. import jwt

__all__ = ["SampleAddon", "Tenant", "create_app"]

logger = logging.getLogger(__name__)

# What the page reads from the product's REST API, server-side and with AP.request.
DEMO_ISSUE_PATH = "/rest/api/2/issue/DEMO-1"
# How many webhook deliveries the page lists.
KEPT_WEBHOOKS = 10
REST_TIMEOUT_S = 5.0

TENANTS: web.AppKey[dict[str, Tenant]] = web.AppKey("tenants", dict)
ADDON: web.AppKey[SampleAddon] = web.AppKey("addon")


@dataclass
class Tenant:
    client_key: str
    base_url: str
    shared_secret: str = field(repr=False)
    app_key: str = ""  # the descriptor's key: the ``iss`` of the app's calls to the product


@dataclass
class SampleAddon:
    keys_url: str  # where the host publishes install-signing keys (CONNECT_KEYS_CDN_URL)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    # The latest webhooks received, newest last: {event, path, verdict, at, summary}.
    webhooks: collections.deque[dict[str, str]] = field(
        default_factory=lambda: collections.deque(maxlen=KEPT_WEBHOOKS)
    )


def create_app(keys_url: str) -> web.Application:
    app = web.Application()
    app[ADDON] = SampleAddon(keys_url=keys_url.rstrip("/"))
    app.router.add_get("/", _index)
    app.router.add_post("/installed", _installed)
    app.router.add_post("/uninstalled", _uninstalled)
    app.router.add_get("/hello", _hello)
    app.router.add_post("/webhook/{event}", _webhook)
    return app


async def _index(request: web.Request) -> web.Response:
    addon = request.app[ADDON]
    return web.Response(text=f"connect-devloop sample add-on: {len(addon.tenants)} tenant(s)\n")


async def _verify_install(request: web.Request, addon: SampleAddon, path: str) -> dict[str, Any]:
    """Check the host's RS256 signature, audience and qsh; raise HTTPUnauthorized if wrong."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("JWT "):
        raise web.HTTPUnauthorized(text="missing Authorization: JWT\n")
    token = header[4:]
    try:
        kid = pyjwt.get_unverified_header(token)["kid"]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{addon.keys_url}/{quote(kid)}") as response,
        ):
            response.raise_for_status()
            public_key = await response.text()
        public_base = f"{request.headers.get('X-Forwarded-Proto', request.scheme)}://" + (
            request.headers.get("X-Forwarded-Host", request.host)
        )
        claims: dict[str, Any] = pyjwt.decode(
            token, public_key, algorithms=["RS256"], audience=public_base
        )
    except (pyjwt.PyJWTError, KeyError, aiohttp.ClientError) as exc:
        raise web.HTTPUnauthorized(text=f"install signature rejected: {exc}\n") from exc
    expected_qsh = hashlib.sha256(f"POST&{path}&".encode()).hexdigest()
    if claims.get("qsh") != expected_qsh:
        raise web.HTTPUnauthorized(text="install qsh does not match\n")
    return claims


async def _installed(request: web.Request) -> web.Response:
    addon = request.app[ADDON]
    claims = await _verify_install(request, addon, "/installed")
    payload = await request.json()
    if claims.get("iss") != payload.get("clientKey"):
        raise web.HTTPUnauthorized(text="iss does not match clientKey\n")
    tenant = Tenant(
        payload["clientKey"], payload["baseUrl"], payload["sharedSecret"], payload.get("key", "")
    )
    addon.tenants[tenant.client_key] = tenant
    addon.events.append(f"installed {tenant.client_key}")
    logger.info("installed for %s", tenant.base_url)
    return web.Response(status=204)


async def _uninstalled(request: web.Request) -> web.Response:
    addon = request.app[ADDON]
    await _verify_install(request, addon, "/uninstalled")
    payload = await request.json()
    addon.tenants.pop(payload.get("clientKey", ""), None)
    addon.events.append(f"uninstalled {payload.get('clientKey')}")
    return web.Response(status=204)


def _verify_hs256(addon: SampleAddon, request: web.Request, token: str) -> Tenant:
    """The tenant whose sharedSecret signed ``token``, for this very request (qsh included);
    raises ``jwt.JwtVerificationError`` or ``KeyError``."""
    issuer = jwt.unverified_claims(token)["iss"]
    tenant = addon.tenants[issuer]
    claims = jwt.decode_hs256(token, tenant.shared_secret)
    # The qsh covers the URL the host signed: the add-on's path, relative to its baseUrl (the
    # proxy keeps the path as it is, so the path received is the path signed).
    canonical = jwt.canonical_request(request.method, request.path, request.query_string)
    jwt.check_qsh(claims, canonical)
    return tenant


async def _webhook(request: web.Request) -> web.Response:
    """A webhook from the product: verified like any request the host signs, then kept for the
    page to list."""
    addon = request.app[ADDON]
    event = request.match_info["event"]
    token = jwt.token_from_request(request.headers.get("Authorization"), request.query)
    body = await request.read()
    entry = {"event": event, "at": time.strftime("%H:%M:%S"), "summary": ""}
    if token is None:
        entry["verdict"] = "REJECTED: no JWT"
        addon.webhooks.append(entry)
        raise web.HTTPUnauthorized(text="missing JWT\n")
    try:
        tenant = _verify_hs256(addon, request, token)
    except (jwt.JwtVerificationError, KeyError) as exc:
        entry["verdict"] = f"REJECTED: {exc}"
        addon.webhooks.append(entry)
        raise web.HTTPUnauthorized(text=f"webhook JWT rejected: {exc}\n") from exc
    entry["verdict"] = f"verified for {tenant.base_url}"
    try:
        payload = json.loads(body) if body else {}
        issue = payload.get("issue") or {}
        fields = issue.get("fields") or {}
        entry["event"] = str(payload.get("webhookEvent") or event)
        entry["summary"] = f"{issue.get('key', '')} {fields.get('summary', '')}".strip()
    except (ValueError, AttributeError):
        entry["summary"] = "(not a JSON object)"
    addon.webhooks.append(entry)
    logger.info("webhook %s from %s", entry["event"], tenant.base_url)
    return web.Response(status=204)


async def call_product(tenant: Tenant, method: str, path: str) -> tuple[int, Any]:
    """Call the tenant's REST API as the app: ``Authorization: JWT`` signed with the tenant's
    sharedSecret, ``iss`` = the app key, ``qsh`` over the request relative to the product's
    base URL (so without its context path). Returns the status and the JSON answer (or text)."""
    claims = jwt.make_claims(tenant.app_key, method, path)
    token = jwt.encode_hs256(claims, tenant.shared_secret)
    url = tenant.base_url.rstrip("/") + path
    timeout = aiohttp.ClientTimeout(total=REST_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, headers={"Authorization": f"JWT {token}"}) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def _rest_section(tenant: Tenant) -> str:
    try:
        status, answer = await call_product(tenant, "GET", DEMO_ISSUE_PATH)
    except (aiohttp.ClientError, TimeoutError) as exc:
        shown = f"the call failed: {html.escape(str(exc) or type(exc).__name__)}"
    else:
        if status == 200 and isinstance(answer, dict):
            fields = answer.get("fields") or {}
            status_name = (fields.get("status") or {}).get("name", "")
            shown = (
                f"HTTP 200: <strong>{html.escape(str(answer.get('key')))}</strong> "
                f"{html.escape(str(fields.get('summary', '')))} "
                f"({html.escape(str(status_name))})"
            )
        else:
            message = json.dumps(answer)[:300] if not isinstance(answer, str) else answer[:300]
            shown = f"HTTP {status}: {html.escape(message)}"
    return (
        f'<h2>App → product (server-side, as the app)</h2><p id="rest-server">'
        f"<code>GET {DEMO_ISSUE_PATH}</code> signed with the tenant's sharedSecret: {shown}</p>"
    )


# AP.request runs in the viewer's browser: the product answers as the user, with the app's
# scopes.
_AP_REQUEST_SCRIPT = (
    "<script>(function () {"
    "var out = document.getElementById('rest-browser');"
    "if (!window.AP || !AP.request) { out.textContent = 'AP.request: no bridge on this page'; "
    "return; }"
    f"AP.request({{url: '{DEMO_ISSUE_PATH}', success: function (body) {{"
    "var issue = typeof body === 'string' ? JSON.parse(body) : body;"
    "out.textContent = 'HTTP 200: ' + issue.key + ' ' + issue.fields.summary;"
    "}, error: function (xhr) { out.textContent = 'HTTP ' + xhr.status + ': ' + "
    "(xhr.responseText || '').slice(0, 300); }});"
    "}());</script>"
)


def _webhooks_section(addon: SampleAddon) -> str:
    rows = "".join(
        f"<li>{html.escape(entry['at'])} <code>{html.escape(entry['event'])}</code> "
        f"{html.escape(entry['summary'])}: {html.escape(entry['verdict'])}</li>"
        for entry in reversed(addon.webhooks)
    )
    listed = rows or ("<li>None yet: create or edit an issue, or press Fire on an issue page.</li>")
    return f'<h2>Product → app (webhooks)</h2><ul id="webhooks">{listed}</ul>'


async def _hello(request: web.Request) -> web.Response:
    addon = request.app[ADDON]
    token = request.query.get("jwt") or request.headers.get("Authorization", "")[4:]
    verdict = "no JWT: open this page from the host, or sign a URL with the host's /send"
    bridge = ""
    sections = ""
    if token:
        try:
            issuer = pyjwt.decode(token, options={"verify_signature": False})["iss"]
            tenant = addon.tenants[issuer]
            pyjwt.decode(
                token, tenant.shared_secret, algorithms=["HS256"], options={"verify_aud": False}
            )
            verdict = f"JWT verified for tenant {html.escape(tenant.base_url)}"
            # AP and the product's styles, from the verified tenant itself (never from a URL
            # in the query).
            base = html.escape(tenant.base_url, quote=True)
            bridge = (
                f'<link rel="stylesheet" href="{base}/atlassian-connect/all.css">'
                f'<script src="{base}/atlassian-connect/all.js"></script>'
            )
            sections = (
                await _rest_section(tenant)
                + "<h2>Browser → product (AP.request, as you)</h2>"
                + f'<p id="rest-browser">AP.request <code>GET {DEMO_ISSUE_PATH}</code>: '
                "waiting…</p>" + _AP_REQUEST_SCRIPT
            )
        except (pyjwt.PyJWTError, KeyError) as exc:
            verdict = f"JWT rejected: {html.escape(str(exc))}"
    query = ", ".join(
        f"{html.escape(k)}={html.escape(v)}"
        for k, v in parse_qsl(request.query_string)
        if k != "jwt"
    )
    page = (
        f"<!doctype html><meta charset=utf-8><title>Hello</title>{bridge}"
        '<div class="ac-content">'
        "<h1>Hello from the connect-devloop sample add-on</h1>"
        f"<p>{verdict}</p><p>query: {query or '(none)'}</p>"
        f"<p>{len(addon.tenants)} tenant(s) installed.</p>"
        f"{sections}{_webhooks_section(addon)}</div>"
    )
    return web.Response(text=page, content_type="text/html")
