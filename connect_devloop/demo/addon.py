"""The sample add-on of `connect-dev demo`: a small aiohttp server, as a user would write one.

It does what any Connect add-on must: accept the RS256-signed ``installed`` callback (verifying
it with the key the host publishes), keep each tenant's shared secret, forget it on
``uninstalled``, and serve one page that checks the HS256 JWT the host puts in the iframe URL.
"""

from __future__ import annotations

import hashlib
import html
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
import jwt as pyjwt
from aiohttp import web

__all__ = ["SampleAddon", "Tenant", "create_app"]

logger = logging.getLogger(__name__)

TENANTS: web.AppKey[dict[str, Tenant]] = web.AppKey("tenants", dict)
ADDON: web.AppKey[SampleAddon] = web.AppKey("addon")


@dataclass
class Tenant:
    client_key: str
    base_url: str
    shared_secret: str = field(repr=False)


@dataclass
class SampleAddon:
    keys_url: str  # where the host publishes install-signing keys (CONNECT_KEYS_CDN_URL)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)


def create_app(keys_url: str) -> web.Application:
    app = web.Application()
    app[ADDON] = SampleAddon(keys_url=keys_url.rstrip("/"))
    app.router.add_get("/", _index)
    app.router.add_post("/installed", _installed)
    app.router.add_post("/uninstalled", _uninstalled)
    app.router.add_get("/hello", _hello)
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
    tenant = Tenant(payload["clientKey"], payload["baseUrl"], payload["sharedSecret"])
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


async def _hello(request: web.Request) -> web.Response:
    addon = request.app[ADDON]
    token = request.query.get("jwt") or request.headers.get("Authorization", "")[4:]
    verdict = "no JWT: open this page from the host, or sign a URL with the host's /send"
    bridge = ""
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
        except (pyjwt.PyJWTError, KeyError) as exc:
            verdict = f"JWT rejected: {html.escape(str(exc))}"
    query = ", ".join(
        f"{html.escape(k)}={html.escape(v)}"
        for k, v in parse_qsl(request.query_string)
        if k != "jwt"
    )
    page = (
        f"<!doctype html><title>Hello</title>{bridge}"
        '<div class="ac-content">'
        "<h1>Hello from the connect-devloop sample add-on</h1>"
        f"<p>{verdict}</p><p>query: {query or '(none)'}</p>"
        f"<p>{len(addon.tenants)} tenant(s) installed.</p></div>"
    )
    return web.Response(text=page, content_type="text/html")
