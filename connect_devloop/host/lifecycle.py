"""Lifecycle callbacks (``installed``, ``uninstalled``, ``enabled``, ``disabled``) and the
signed requests a site sends to an installed add-on (PROTOCOL.md §3-§5)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
from yarl import URL

from .. import jwt
from .record import CallbackRecord, SentRequest

if TYPE_CHECKING:
    from .types import Host

__all__ = [
    "AddonResponse",
    "Installation",
    "addon_url",
    "send_lifecycle",
    "send_signed_request",
]

logger = logging.getLogger(__name__)

# Only these count as an accepted callback (PROTOCOL.md §3 step 4).
ACCEPTED_CALLBACK_STATUSES = frozenset({200, 201, 204})
USER_AGENT = "connect-devloop emulated host (Atlassian Connect)"
# The emulator's choice of plausible version strings; add-ons only store and display them.
SERVER_VERSIONS = {
    ("jira", "cloud"): ("100266", "1001.0.0-SNAPSHOT"),
    ("confluence", "cloud"): ("6452", "1000.0.0-SNAPSHOT"),
    ("jira", "server"): ("9.12.0", "7.1.0"),
    ("confluence", "server"): ("8.5.0", "7.1.0"),
}
PRODUCT_NAMES = {"jira": "JIRA", "confluence": "Confluence"}
# The emulator's choice: the accountId an emulated iframe request is made for.
EMULATED_ACCOUNT_ID = "557058:00000000-0000-0000-0000-emulatedadmin"


@dataclass
class Installation:
    """An add-on as installed on the site now, with the tenant's current ``sharedSecret``."""

    key: str
    descriptor: dict[str, Any]
    descriptor_text: str
    plugin_uri: str
    shared_secret: str | None
    installation_id: str
    enabled: bool = True

    @property
    def base_url(self) -> str:
        return str(self.descriptor["baseUrl"])

    @property
    def lifecycle(self) -> dict[str, str]:
        lifecycle = self.descriptor.get("lifecycle")
        if not isinstance(lifecycle, dict):
            return {}
        return {event: path for event, path in lifecycle.items() if isinstance(path, str)}

    @property
    def signed_install(self) -> bool:
        migrations = self.descriptor.get("apiMigrations")
        return isinstance(migrations, dict) and migrations.get("signed-install") is True

    @property
    def name(self) -> str:
        return str(self.descriptor.get("name") or self.key)

    @property
    def version(self) -> str:
        # Connect descriptors rarely carry a version; the emulator's choice is "1.0.0" then.
        return str(self.descriptor.get("version") or "1.0.0")

    def plugin_summary(self) -> dict[str, Any]:
        """What ``HostRecord.plugins`` holds for this add-on."""
        return {
            "key": self.key,
            "name": self.name,
            "version": self.version,
            "enabled": self.enabled,
            "plugin_uri": self.plugin_uri,
            "descriptor": self.descriptor,
        }


@dataclass
class AddonResponse:
    """The add-on's answer to a signed request. ``status`` is ``None`` when none came."""

    status: int | None
    body: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "body": self.body,
            "url": self.url,
            "headers": self.headers,
            "error": self.error,
        }


def addon_url(base_url: str, path: str) -> str:
    """``baseUrl`` + a path relative to it, with exactly one ``/`` between them."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def lifecycle_payload(host: Host, installation: Installation, event: str) -> dict[str, Any]:
    server_version, plugins_version = SERVER_VERSIONS[
        (host.settings.product, host.settings.flavour)
    ]
    payload: dict[str, Any] = {
        "key": installation.key,
        "clientKey": host.client_key,
        "serverVersion": server_version,
        "pluginsVersion": plugins_version,
        "baseUrl": host.base_url,
        "displayUrl": host.base_url,
        "productType": host.settings.product,
        "description": f"Atlassian {PRODUCT_NAMES[host.settings.product]} at {host.base_url}",
        "eventType": event,
        "installationId": installation.installation_id,
    }
    # enabled/disabled are webhook-like and carry no secret (PROTOCOL.md §3).
    if event in ("installed", "uninstalled") and installation.shared_secret is not None:
        payload["sharedSecret"] = installation.shared_secret
    return payload


async def send_lifecycle(
    host: Host,
    installation: Installation,
    event: str,
    *,
    previous_secret: str | None = None,
) -> CallbackRecord | None:
    """POST one lifecycle callback and record it; ``None`` if the descriptor declares none.

    ``previous_secret`` is the last secret the site gave this add-on, kept after an uninstall: the
    legacy scheme signs a reinstall's ``installed`` callback with it (PROTOCOL.md §4).
    """
    path = installation.lifecycle.get(event)
    if path is None:
        return None
    url = addon_url(installation.base_url, path)
    token, signed = _lifecycle_token(host, installation, event, url, previous_secret)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if token is not None:
        headers["Authorization"] = f"JWT {token}"
    body = json.dumps(lifecycle_payload(host, installation, event))
    status: int | None = None
    error: str | None = None
    try:
        async with host.session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=host.settings.callback_timeout_s),
        ) as response:
            status = response.status
            await response.read()
    except TimeoutError:
        error = f"no answer within {host.settings.callback_timeout_s:g} s"
    except aiohttp.ClientError as exc:
        error = _describe(exc)
    logger.info(
        "%s callback for %s: %s %s",
        event,
        installation.key,
        url,
        status if status is not None else error,
    )
    callback = CallbackRecord(
        event=event, key=installation.key, url=url, status=status, signed=signed, error=error
    )
    host.record.add(callback)
    return callback


def callback_accepted(callback: CallbackRecord | None) -> bool:
    return callback is None or callback.status in ACCEPTED_CALLBACK_STATUSES


async def send_signed_request(
    host: Host,
    installation: Installation,
    path: str,
    *,
    method: str = "GET",
    query: Mapping[str, str | Sequence[str]] | None = None,
    style: str = "iframe",
    body: Any = None,
    account_id: str | None = EMULATED_ACCOUNT_ID,
) -> AddonResponse:
    """Send what a browser iframe (``?jwt=``) or a webhook (``Authorization: JWT``) would."""
    if style not in ("iframe", "webhook"):
        raise ValueError(f"style must be 'iframe' or 'webhook', not {style!r}")
    method = method.upper()
    path, _, inline_query = path.partition("?")
    params = parse_qsl(inline_query, keep_blank_values=True)
    for name, value in (query or {}).items():
        if isinstance(value, str):
            params.append((name, value))
        else:
            params.extend((name, item) for item in value)
    if style == "iframe":
        params.extend(_iframe_context_params(host, installation, {name for name, _ in params}))
    url = addon_url(installation.base_url, path)
    base_path = urlsplit(installation.base_url).path
    headers = {"User-Agent": USER_AGENT}
    if installation.shared_secret is not None:
        claims = jwt.make_claims(
            host.client_key,
            method,
            urlsplit(url).path,
            params,
            base_path,
            sub=account_id if style == "iframe" else None,
        )
        token = jwt.encode_hs256(claims, installation.shared_secret)
        if style == "iframe":
            params.append((jwt.JWT_PARAM, token))
        else:
            headers["Authorization"] = f"JWT {token}"
    full_url = f"{url}?{urlencode(params)}" if params else url
    data: str | None = None
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        headers["Content-Type"] = "application/json"
    try:
        async with host.session.request(
            method,
            # `encoded=True`: the query was built to match the qsh; yarl must not re-encode it.
            URL(full_url, encoded=True),
            data=data,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=host.settings.callback_timeout_s),
        ) as response:
            text = await response.text(errors="replace")
            answer = AddonResponse(
                status=response.status, body=text, url=url, headers=dict(response.headers)
            )
    except TimeoutError:
        answer = AddonResponse(
            status=None,
            body="",
            url=url,
            error=f"no answer within {host.settings.callback_timeout_s:g} s",
        )
    except aiohttp.ClientError as exc:
        answer = AddonResponse(status=None, body="", url=url, error=_describe(exc))
    host.record.add(
        SentRequest(
            key=installation.key,
            method=method,
            url=url,
            style=style,
            status=answer.status,
            error=answer.error,
        )
    )
    return answer


def _lifecycle_token(
    host: Host,
    installation: Installation,
    event: str,
    url: str,
    previous_secret: str | None,
) -> tuple[str | None, str]:
    """The callback's token and how it is signed ("RS256", "HS256" or "unsigned")."""
    base_path = urlsplit(installation.base_url).path
    # A lifecycle path may carry a query of its own; it counts in the qsh like any other.
    path, query = urlsplit(url).path, urlsplit(url).query
    # `signed-install` covers only these two (Atlassian's API migrations page: "install/uninstall
    # lifecycle events"); `enabled` and `disabled` stay HS256, as webhooks are.
    if event in ("installed", "uninstalled") and installation.signed_install:
        claims = jwt.make_claims(
            host.client_key,
            "POST",
            path,
            query,
            base_path,
            aud=[installation.base_url.rstrip("/")],
        )
        key = host.signing_key
        return jwt.encode_rs256(claims, key.private_key, key.kid), "RS256"
    # Legacy: `installed` is signed with the tenant's previous secret, so only the first install
    # of a tenant is unsigned.
    secret = previous_secret if event == "installed" else installation.shared_secret
    if secret is None:
        return None, "unsigned"
    claims = jwt.make_claims(host.client_key, "POST", path, query, base_path)
    return jwt.encode_hs256(claims, secret), "HS256"


def _iframe_context_params(
    host: Host, installation: Installation, given: set[str]
) -> list[tuple[str, str]]:
    # Hosts add these to every iframe URL, and they count in the qsh; a query that names one
    # itself wins.
    context = {
        "xdm_e": host.origin,
        "xdm_c": f"channel-{installation.key}",
        "cp": host.settings.context_path,
        "lic": "none",
        "cv": SERVER_VERSIONS[(host.settings.product, host.settings.flavour)][1],
    }
    return [(name, value) for name, value in context.items() if name not in given]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
