"""The proxy's inspector: lifecycle callbacks verified as an add-on must, tenant secrets
remembered, and a verdict with its own exact sentence for every way a Connect JWT goes wrong.

The first half drives ``ConnectInspector`` with crafted requests and a fixed clock; the second
runs the real daemon (``daemon.make_supervisor``) against emulated hosts and an add-on server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from connect_devloop import cli, jwt
from connect_devloop.config import HostConfig, load_config
from connect_devloop.daemon import make_supervisor
from connect_devloop.events import EventBus, Lifecycle, RequestServed
from connect_devloop.host import SigningKey, run_host
from connect_devloop.inspection import PRODUCTION_KEYS_URL, ConnectInspector, KeyFetchError
from connect_devloop.keychain import MemoryKeychain
from connect_devloop.proxy import AddonAnswer, ProxiedRequest
from connect_devloop.render import format_event
from connect_devloop.secret import Secret
from connect_devloop.tenants import Tenant, TenantStore

from .conftest import EventLog, descriptor_text, eventually
from .e2e import host_toml
from .keyrings import memory_keyring
from .servers import serve

__all__ = ["memory_keyring"]

PUBLIC = "https://tunnel.example.com"
CLIENT_KEY = "6f3bd8e2-1b7a-4c1e-9a53-1f1c2d3e4f50"
SECRET = "the-shared-secret-of-the-tenant-0123456789"
NOW = 1_800_000_000
CLOUD = HostConfig(
    name="dev-jira", url="https://site.atlassian.net", product="jira", username="me@example.com"
)
DESCRIPTOR: dict[str, Any] = {
    "key": "my-addon",
    "baseUrl": PUBLIC,
    "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled", "enabled": "/enabled"},
}


@functools.cache
def signing_key() -> SigningKey:
    return SigningKey.generate()


@functools.cache
def other_key() -> SigningKey:
    return SigningKey.generate()


class Keys:
    """A key server in a dict; records what was fetched."""

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        self.keys = dict(keys or {})
        self.fetched: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, url: str) -> str:
        self.fetched.append(url)
        if self.gate is not None:
            await self.gate.wait()
        if url not in self.keys:
            raise KeyFetchError("HTTP 404")
        return self.keys[url]


def production_keys() -> Keys:
    key = signing_key()
    return Keys({f"{PRODUCTION_KEYS_URL}/{key.kid}": key.public_pem})


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        *,
        keys: Keys | None = None,
        hosts: tuple[HostConfig, ...] = (CLOUD,),
        addon_url: str = "http://localhost:3000",
        descriptor: dict[str, Any] | None = None,
    ) -> None:
        self.events = EventLog()
        self.keys = keys if keys is not None else production_keys()
        self.keychain = MemoryKeychain()
        self.tenants = TenantStore(tmp_path / ".connect-dev", self.keychain)
        self.inspector = ConnectInspector(
            hosts=hosts,
            addon_url=addon_url,
            emit=self.events,
            descriptor=lambda: descriptor if descriptor is not None else DESCRIPTOR,
            tenants=self.tenants,
            fetch_key=self.keys,
            clock=lambda: NOW,
        )

    async def send(
        self,
        method: str,
        raw_path: str,
        *,
        token: str | None = None,
        in_query: bool = False,
        payload: dict[str, Any] | None = None,
        answer: AddonAnswer | None = None,
    ) -> dict[str, Any] | None:
        headers: CIMultiDict[str] = CIMultiDict()
        if token is not None and in_query:
            raw_path += ("&" if "?" in raw_path else "?") + urlencode({"jwt": token})
        elif token is not None:
            headers["Authorization"] = f"JWT {token}"
        path, _, query = raw_path.partition("?")
        body = None
        if self.inspector.wants_body(method, unquote(path)):
            body = json.dumps(payload if payload is not None else install_payload()).encode()
        # What the proxy asks first: a request it is told not to inspect must have no verdict.
        wanted = self.inspector.wants_request(
            method, unquote(path), query, headers.get("Authorization")
        )
        verdict = await self.inspector.inspect(
            ProxiedRequest(
                method=method,
                raw_path=raw_path,
                path=unquote(path),
                query_string=query,
                headers=CIMultiDictProxy(headers),
                body=body,
                public_url=PUBLIC,
                answer=_resolved(answer) if answer is not None else None,
            )
        )
        assert wanted or verdict is None, (method, raw_path)
        return verdict

    def lifecycles(self) -> list[Lifecycle]:
        return [e for e in self.events.events if isinstance(e, Lifecycle)]

    async def installed(self) -> None:
        verdict = await self.send("POST", "/installed", token=install_token())
        assert verdict is not None
        assert verdict["verified"], verdict


async def _resolved(answer: AddonAnswer) -> AddonAnswer:
    return answer


def install_payload(**changes: Any) -> dict[str, Any]:
    payload = {
        "key": "my-addon",
        "clientKey": CLIENT_KEY,
        "sharedSecret": SECRET,
        "baseUrl": CLOUD.url,
        "displayUrl": CLOUD.url,
        "productType": "jira",
        "eventType": "installed",
    }
    payload.update(changes)
    return payload


def install_token(
    path: str = "/installed",
    *,
    aud: Any = (PUBLIC,),
    iss: str = CLIENT_KEY,
    now: int = NOW,
    key: SigningKey | None = None,
    kid: str | None = None,
) -> str:
    claims = jwt.make_claims(iss, "POST", path, aud=aud, now=now)
    key = key or signing_key()
    return jwt.encode_rs256(claims, key.private_key, kid or signing_key().kid)


def request_token(
    method: str,
    path: str,
    query: str = "",
    *,
    secret: str = SECRET,
    now: int = NOW,
    **claims: Any,
) -> str:
    made = jwt.make_claims(CLIENT_KEY, method, path, query, now=now)
    made.update(claims)
    return jwt.encode_hs256(made, secret)


def tamper(token: str) -> str:
    """The same token with one claim changed and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# --- install callbacks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "remembered"),
    [
        (AddonAnswer(204), True),
        (AddonAnswer(500), False),
        (AddonAnswer(502, "connection refused"), False),
        (AddonAnswer(499), False),
    ],
)
async def test_a_tenant_is_remembered_only_when_the_add_on_accepted_its_install(
    tmp_path: Path, answer: AddonAnswer, remembered: bool
) -> None:
    rig = Rig(tmp_path)
    verdict = await rig.send("POST", "/installed", token=install_token(), answer=answer)
    assert verdict is not None
    assert (verdict["verified"], verdict["addon_status"]) == (True, answer.status)
    (event,) = rig.lifecycles()
    assert (event.verified, event.addon_status, event.addon_error) == (
        True,
        answer.status,
        answer.failure,
    )
    assert bool(rig.tenants.tenants()) is remembered


async def test_a_verified_install_is_reported_and_its_tenant_remembered(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    verdict = await rig.send("POST", "/installed", token=install_token())
    assert verdict == {
        "verified": True,
        "verdict": "verified",
        "signature": "RS256",
        "kid": signing_key().kid,
        "iss": CLIENT_KEY,
        "aud": PUBLIC,
        "qsh": jwt.query_string_hash("POST&/installed&"),
        "lifecycle": "installed",
    }
    (event,) = rig.lifecycles()
    assert event.to_dict() | {"ts": 0} == {
        "ts": 0,
        "event": "lifecycle",
        "host": "dev-jira",
        "lifecycle_event": "installed",
        "client_key": CLIENT_KEY,
        "verified": True,
        "signature": "RS256",
        "verdict": "verified",
        "reason": "",
        "addon_status": 0,
        "addon_error": "",
    }
    assert rig.keys.fetched == [f"{PRODUCTION_KEYS_URL}/{signing_key().kid}"]
    (stored,) = rig.tenants.tenants()
    assert stored == Tenant(
        client_key=CLIENT_KEY,
        addon_key="my-addon",
        base_url=CLOUD.url,
        addon_base_url=PUBLIC,
        host="dev-jira",
        product="jira",
        installed_at=NOW,
        secret_in="keychain",
    )
    assert rig.tenants.secret(stored) == Secret(SECRET)
    assert SECRET not in json.dumps(verdict) + repr(event)


async def test_the_key_server_is_the_hosts_own_or_its_configured_one(tmp_path: Path) -> None:
    key = signing_key()
    local = HostConfig(name="local", url="http://127.0.0.1:2990/jira", product="jira", username="a")
    custom = HostConfig(
        name="custom",
        url="https://other.example.com",
        product="jira",
        username="a",
        keys_url="https://keys.example.com/v1",
    )
    keys = Keys(
        {
            f"http://127.0.0.1:2990/keys/{key.kid}": key.public_pem,
            f"https://keys.example.com/v1/{key.kid}": key.public_pem,
        }
    )
    rig = Rig(tmp_path, keys=keys, hosts=(local, custom))
    for host in (local, custom):
        verdict = await rig.send(
            "POST", "/installed", token=install_token(), payload=install_payload(baseUrl=host.url)
        )
        assert verdict is not None
        assert verdict["verified"], verdict
    assert keys.fetched == [
        f"http://127.0.0.1:2990/keys/{key.kid}",
        f"https://keys.example.com/v1/{key.kid}",
    ]
    assert [e.host for e in rig.lifecycles()] == ["local", "custom"]


def test_keys_url_is_a_per_host_setting(tmp_path: Path) -> None:
    from connect_devloop.config import parse_config
    from connect_devloop.errors import ConfigError

    text = (
        '[[hosts]]\nurl = "https://site.atlassian.net"\nusername = "me@example.com"\n'
        'keys_url = "https://keys.example.com/v1/"\n'
    )
    (host,) = parse_config(text, tmp_path / "connect-dev.toml").hosts
    assert host.keys_url == "https://keys.example.com/v1"
    with pytest.raises(ConfigError) as caught:
        parse_config(text.replace("https://keys", "keys"), tmp_path / "connect-dev.toml")
    assert (caught.value.key, caught.value.line) == ("hosts[0].keys_url", 4)


async def test_a_host_not_in_the_config_never_chooses_the_key_server(tmp_path: Path) -> None:
    """The payload's baseUrl must not make the proxy fetch from an address it names (such as
    a port on this machine): an unknown host gets Atlassian's key server."""
    rig = Rig(tmp_path)
    verdict = await rig.send(
        "POST",
        "/installed",
        token=install_token(),
        payload=install_payload(baseUrl="http://127.0.0.1:22/x"),
    )
    assert verdict is not None
    assert verdict["verified"]
    assert rig.keys.fetched == [f"{PRODUCTION_KEYS_URL}/{signing_key().kid}"]
    assert [e.host for e in rig.lifecycles()] == ["http://127.0.0.1:22/x"]


async def test_the_key_is_fetched_once_per_kid(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.installed()
    await rig.installed()
    assert len(rig.keys.fetched) == 1


@pytest.mark.parametrize(
    ("make_token", "payload", "verdict", "reason"),
    [
        pytest.param(
            lambda: tamper(install_token()),
            {},
            "bad signature",
            f"signature does not verify with the host's install-signing key "
            f"'{signing_key().kid}' from {PRODUCTION_KEYS_URL}: the token was altered, or signed "
            "with another key",
            id="tampered",
        ),
        pytest.param(
            lambda: install_token(key=other_key()),
            {},
            "bad signature",
            f"signature does not verify with the host's install-signing key "
            f"'{signing_key().kid}' from {PRODUCTION_KEYS_URL}: the token was altered, or signed "
            "with another key",
            id="another-key",
        ),
        pytest.param(
            lambda: install_token(aud=["https://old-tunnel.example.com"]),
            {},
            "wrong audience",
            "aud is 'https://old-tunnel.example.com', but the add-on's public base URL is "
            "'https://tunnel.example.com': the host installed the add-on from another URL "
            "(an old tunnel URL?)",
            id="wrong-aud",
        ),
        pytest.param(
            lambda: install_token(aud=None),
            {},
            "wrong audience",
            "aud is missing; it must be the add-on's public base URL 'https://tunnel.example.com'",
            id="no-aud",
        ),
        pytest.param(
            lambda: install_token(now=NOW - 200),
            {},
            "expired",
            "the token expired 20 s ago (exp 2027-01-15T07:59:40Z): a replayed callback, or a "
            "clock that is wrong",
            id="expired",
        ),
        pytest.param(
            lambda: install_token("/elsewhere"),
            {},
            "qsh mismatch",
            "qsh mismatch: the token was signed for another request; the add-on will compute "
            "'POST&/installed&' from the URL it receives",
            id="wrong-qsh",
        ),
        pytest.param(
            lambda: install_token(iss="someone-else"),
            {},
            "wrong issuer",
            f"iss 'someone-else' does not match the payload's clientKey '{CLIENT_KEY}'",
            id="wrong-iss",
        ),
        pytest.param(
            lambda: None,
            {},
            "unsigned",
            "unsigned installed callback: Atlassian Cloud requires signed installs; add "
            '"apiMigrations": {"signed-install": true} to the descriptor',
            id="unsigned",
        ),
        pytest.param(
            lambda: jwt.encode_hs256(jwt.make_claims(CLIENT_KEY, "POST", "/installed"), SECRET),
            {},
            "legacy signature",
            "installed callback signed with HS256, the legacy scheme: Atlassian Cloud requires "
            'signed installs (RS256); add "apiMigrations": {"signed-install": true} to the '
            "descriptor",
            id="legacy-hs256",
        ),
        pytest.param(
            lambda: install_token(kid="unknown-kid"),
            {},
            "key unavailable",
            f"could not fetch the install-signing key 'unknown-kid' from {PRODUCTION_KEYS_URL}: "
            "HTTP 404",
            id="unknown-kid",
        ),
        pytest.param(
            lambda: "not-a-token",
            {},
            "malformed",
            "not a JWT: Not enough segments",
            id="garbage",
        ),
    ],
)
async def test_every_failed_install_check_has_its_own_verdict(
    tmp_path: Path, make_token: Any, payload: dict[str, Any], verdict: str, reason: str
) -> None:
    rig = Rig(tmp_path)
    result = await rig.send("POST", "/installed", token=make_token(), payload=install_payload())
    assert result is not None
    assert (result["verified"], result["verdict"], result["reason"]) == (False, verdict, reason)
    (event,) = rig.lifecycles()
    assert (event.verified, event.verdict, event.reason) == (False, verdict, reason)
    assert event.host == "dev-jira"
    assert event.client_key == CLIENT_KEY
    assert rig.tenants.tenants() == [], "an unverified install must not be remembered"


async def test_a_qsh_mismatch_on_install_shows_both_canonical_requests(tmp_path: Path) -> None:
    rig = Rig(tmp_path, addon_url="http://localhost:8080/context")
    result = await rig.send("POST", "/installed", token=install_token())
    assert result is not None
    assert result["reason"] == (
        "qsh mismatch: the host signed 'POST&/installed&', but the add-on will compute "
        "'POST&/context/installed&' from the URL it receives"
    )
    assert result["canonical_signed"] == "POST&/installed&"
    assert result["canonical_received"] == "POST&/context/installed&"
    assert result["qsh_expected"] == jwt.query_string_hash("POST&/context/installed&")
    assert result["qsh"] == jwt.query_string_hash("POST&/installed&")


async def test_a_verified_uninstall_marks_the_tenant(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.installed()
    verdict = await rig.send(
        "POST",
        "/uninstalled",
        token=install_token("/uninstalled"),
        payload=install_payload(eventType="uninstalled"),
    )
    assert verdict is not None
    assert verdict["verified"]
    assert [(e.event, e.verified) for e in rig.lifecycles()] == [
        ("installed", True),
        ("uninstalled", True),
    ]
    for _ in range(200):
        if rig.tenants.tenants()[0].uninstalled_at is not None:
            break
        await asyncio.sleep(0.01)
    assert rig.tenants.tenants()[0].uninstalled_at == NOW


async def test_lifecycle_paths_follow_the_descriptor_and_its_base_path(tmp_path: Path) -> None:
    descriptor = {
        "key": "my-addon",
        "baseUrl": "https://tunnel.example.com/app",
        "lifecycle": {"installed": "/lifecycle/installed?v=2"},
    }
    rig = Rig(tmp_path, descriptor=descriptor)
    assert rig.inspector.wants_body("POST", "/app/lifecycle/installed")
    assert rig.inspector.wants_body("POST", "/lifecycle/installed")
    assert not rig.inspector.wants_body("GET", "/app/lifecycle/installed")
    assert not rig.inspector.wants_body("POST", "/installed")
    claims = jwt.make_claims(
        CLIENT_KEY,
        "POST",
        "/app/lifecycle/installed",
        "v=2",
        "/app",
        aud=["https://tunnel.example.com/app"],
        now=NOW,
    )
    token = jwt.encode_rs256(claims, signing_key().private_key, signing_key().kid)
    verdict = await rig.send("POST", "/app/lifecycle/installed?v=2", token=token)
    assert verdict is not None
    assert verdict["verified"], verdict


async def test_without_a_descriptor_nothing_is_a_lifecycle_callback(tmp_path: Path) -> None:
    events = EventLog()
    inspector = ConnectInspector(
        hosts=(CLOUD,),
        addon_url="http://localhost:3000",
        emit=events,
        descriptor=lambda: None,
        tenants=TenantStore(tmp_path, MemoryKeychain()),
    )
    assert not inspector.wants_body("POST", "/installed")


# --- requests signed with the shared secret --------------------------------------------------


async def test_a_host_request_is_verified_with_the_stored_secret(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.installed()
    token = request_token("GET", "/page", "a=1&b=x y", sub="account-1")
    verdict = await rig.send("GET", "/page?b=x+y&a=1", token=token, in_query=True)
    assert verdict == {
        "verified": True,
        "verdict": "verified",
        "signature": "HS256",
        "iss": CLIENT_KEY,
        "tenant": CLIENT_KEY,
        "host": "dev-jira",
        "expires_in": 180,
        "qsh": jwt.query_string_hash("GET&/page&a=1&b=x%20y"),
        "sub": "account-1",
    }
    webhook = await rig.send("POST", "/hook", token=request_token("POST", "/hook"))
    assert webhook is not None
    assert webhook["verified"]


async def test_a_context_token_is_recognised(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.installed()
    token = request_token("GET", "/", qsh=jwt.CONTEXT_QSH)
    verdict = await rig.send("POST", "/api/anything?x=1", token=token)
    assert verdict is not None
    assert verdict["verified"] is True
    assert (verdict["qsh"], verdict["context_token"]) == ("context-qsh", True)


async def test_a_tenant_from_an_earlier_run_is_read_from_the_store(tmp_path: Path) -> None:
    first = Rig(tmp_path)
    await first.installed()
    second = Rig(tmp_path)
    second.keychain.entries.update(first.keychain.entries)
    verdict = await second.send("GET", "/page", token=request_token("GET", "/page"))
    assert verdict is not None
    assert verdict["verified"], verdict


@pytest.mark.parametrize(
    ("make_token", "path", "verdict", "reason"),
    [
        pytest.param(
            lambda: tamper(request_token("GET", "/page")),
            "/page",
            "bad signature",
            f"signature does not verify with the sharedSecret of tenant '{CLIENT_KEY}': the token "
            "was altered, or signed with an older secret (every install issues a new one)",
            id="tampered",
        ),
        pytest.param(
            lambda: request_token("GET", "/page", secret="the-secret-of-an-older-install"),
            "/page",
            "bad signature",
            f"signature does not verify with the sharedSecret of tenant '{CLIENT_KEY}': the token "
            "was altered, or signed with an older secret (every install issues a new one)",
            id="old-secret",
        ),
        pytest.param(
            lambda: request_token("GET", "/page", now=NOW - 3600),
            "/page",
            "expired",
            "the token expired 3420 s ago (exp 2027-01-15T07:03:00Z): the host signs for "
            "3 minutes: reload the page or sign again",
            id="expired",
        ),
        pytest.param(
            lambda: request_token("GET", "/page", "a=1"),
            "/page?a=2",
            "qsh mismatch",
            "qsh mismatch: the token was signed for another request; the add-on will compute "
            "'GET&/page&a=2' from the URL it receives",
            id="wrong-qsh",
        ),
        pytest.param(
            lambda: request_token("GET", "/page", "a=1"),
            "/page?a=1&added=by-a-proxy",
            "qsh mismatch",
            "qsh mismatch: the host signed 'GET&/page&a=1', but the add-on will compute "
            "'GET&/page&a=1&added=by-a-proxy' from the URL it receives",
            id="query-added",
        ),
        pytest.param(
            lambda: request_token("GET", "/page", aud=["someone-else"]),
            "/page",
            "wrong audience",
            "aud is 'someone-else'; add-ons take aud as the tenant's clientKey, and this token's "
            f"tenant is '{CLIENT_KEY}'",
            id="wrong-aud",
        ),
        pytest.param(
            lambda: jwt.encode_hs256({"iss": CLIENT_KEY, "iat": NOW, "exp": NOW + 60}, SECRET),
            "/page",
            "missing qsh",
            "the token has no qsh claim: add-ons reject it unless the route skips the qsh check",
            id="no-qsh",
        ),
        pytest.param(
            lambda: jwt.encode_hs256(
                jwt.make_claims("unknown-client", "GET", "/page", now=NOW), SECRET
            ),
            "/page",
            "unknown tenant",
            "no sharedSecret is stored for clientKey 'unknown-client': connect-dev remembers a "
            "tenant when it proxies its verified, signed installed callback",
            id="unknown-tenant",
        ),
        pytest.param(
            lambda: install_token(),
            "/page",
            "wrong algorithm",
            "the token is signed with RS256; hosts sign requests to the add-on with HS256",
            id="rs256",
        ),
        pytest.param(
            lambda: "x.y", "/page", "malformed", "not a JWT: Not enough segments", id="garbage"
        ),
    ],
)
async def test_every_failed_request_check_has_its_own_verdict(
    tmp_path: Path, make_token: Any, path: str, verdict: str, reason: str
) -> None:
    rig = Rig(tmp_path)
    await rig.installed()
    result = await rig.send("GET", path, token=make_token(), in_query=True)
    assert result is not None
    assert (result["verified"], result["verdict"], result["reason"]) == (False, verdict, reason)
    assert SECRET not in json.dumps(result)


async def test_after_an_unverified_reinstall_the_old_secret_is_not_used(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.installed()
    unsigned = await rig.send("POST", "/installed", payload=install_payload(sharedSecret="new"))
    assert unsigned is not None
    assert unsigned["verdict"] == "unsigned"
    verdict = await rig.send("GET", "/page", token=request_token("GET", "/page", secret="new"))
    assert verdict is not None
    assert (verdict["verdict"], verdict["reason"]) == (
        "unknown tenant",
        f"the last installed callback of clientKey '{CLIENT_KEY}' was not verified (unsigned), "
        "so its new sharedSecret is not known",
    )
    await rig.installed()
    verdict = await rig.send("GET", "/page", token=request_token("GET", "/page"))
    assert verdict is not None
    assert verdict["verified"]


def test_only_jwts_and_lifecycle_callbacks_are_inspected(tmp_path: Path) -> None:
    wants = Rig(tmp_path).inspector.wants_request
    # Nothing to inspect: the proxy starts no inspection for these.
    assert not wants("GET", "/page", "", None)
    assert not wants("GET", "/page", "x=1&y=%2F", "Bearer abc")
    assert not wants("GET", "/installed", "", None)  # a lifecycle path, but not a POST
    assert not wants("POST", "/api", "", "Basic eA==")
    assert not wants("GET", "/page", "", "JWT ")  # no token in it
    # A token, or perhaps one: inspected.
    assert wants("GET", "/page", "", "JWT a.b.c")
    assert wants("GET", "/page", "", "  jwt a.b.c")
    assert wants("GET", "/page", "a=1&jwt=a.b.c", None)
    assert wants("GET", "/page", "j%77t=a.b.c", None)
    assert wants("GET", "/page", "j%2577t=a.b.c", None)  # decoded twice before it is read
    # Lifecycle callbacks: inspected with or without a token.
    assert wants("POST", "/installed", "", None)
    assert wants("POST", "/uninstalled", "", "Basic eA==")


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["jwt", "JWT", "j%77t", "j%2577t", "jw%74", "x", "jwtx", "%6Awt"]),
    value=st.sampled_from(["", "a.b.c", "%41"]),
    scheme=st.sampled_from([None, "JWT a", "jwt  a", "Bearer a", "JWT", " JWT  b "]),
)
def test_what_is_not_inspected_never_has_a_verdict(
    name: str, value: str, scheme: str | None
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        rig = Rig(Path(directory))
        headers: CIMultiDict[str] = CIMultiDict()
        if scheme is not None:
            headers["Authorization"] = scheme
        query = f"a=1&{name}={value}"
        wanted = rig.inspector.wants_request("GET", "/page", query, scheme)
        verdict = asyncio.run(
            rig.inspector.inspect(
                ProxiedRequest(
                    method="GET",
                    raw_path=f"/page?{query}",
                    path="/page",
                    query_string=str(URL(f"/page?{query}", encoded=True).query_string),
                    headers=CIMultiDictProxy(headers),
                    body=None,
                    public_url=PUBLIC,
                )
            )
        )
        assert wanted or verdict is None


async def test_a_request_without_a_jwt_has_no_verdict(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert await rig.send("GET", "/page?x=1") is None
    assert await rig.send("GET", "/page", token=None) is None


async def test_qsh_mismatch_behind_a_proxy_that_adds_a_base_path(tmp_path: Path) -> None:
    """[addon] url with a path: the add-on receives /app/page while the host signed /page.

    The install itself is genuine, so its tenant is remembered although the add-on will reject
    it; the request verdict then explains the mismatch."""
    rig = Rig(tmp_path, addon_url="http://localhost:8080/app")
    install = await rig.send("POST", "/installed", token=install_token())
    assert install is not None
    assert (install["verdict"], install["signed_as_requested"]) == ("qsh mismatch", True)
    assert [t.addon_base_url for t in rig.tenants.tenants()] == [PUBLIC]
    result = await rig.send("GET", "/page?q=1", token=request_token("GET", "/page", "q=1"))
    assert result is not None
    assert result == {
        "verified": False,
        "verdict": "qsh mismatch",
        "reason": "qsh mismatch: the host signed 'GET&/page&q=1', but the add-on will compute "
        "'GET&/app/page&q=1' from the URL it receives",
        "hint": "The add-on hashes the method, its path minus its own base URL's path, and the "
        "query. It must see the path the host signed: check [addon] url in connect-dev.toml and "
        "any proxy in front of the add-on that rewrites paths.",
        "signature": "HS256",
        "qsh": jwt.query_string_hash("GET&/page&q=1"),
        "qsh_expected": jwt.query_string_hash("GET&/app/page&q=1"),
        "canonical_signed": "GET&/page&q=1",
        "canonical_received": "GET&/app/page&q=1",
        "signed_as_requested": True,
        "iss": CLIENT_KEY,
    }


async def test_enabled_right_after_installed_waits_for_the_install_check(tmp_path: Path) -> None:
    """Hosts send `enabled` (HS256, the new secret) as soon as `installed` is answered, while
    the inspector may still be fetching the key that verifies `installed`."""
    keys = production_keys()
    keys.gate = asyncio.Event()
    rig = Rig(tmp_path, keys=keys)
    installed = asyncio.create_task(rig.send("POST", "/installed", token=install_token()))
    await eventually(lambda: keys.fetched)  # the install check waits for the key server
    enabled = asyncio.create_task(
        rig.send(
            "POST",
            "/enabled",
            token=request_token("POST", "/enabled"),
            payload=install_payload(eventType="enabled", sharedSecret=None),
        )
    )
    await asyncio.sleep(0.05)
    keys.gate.set()
    assert (await installed)["verified"]  # type: ignore[index]
    verdict = await enabled
    assert verdict is not None
    assert verdict["verified"], verdict
    assert [(e.event, e.verified) for e in rig.lifecycles()] == [
        ("installed", True),
        ("enabled", True),
    ]


# --- the real daemon ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def catch_all_addon() -> AsyncIterator[tuple[str, list[str]]]:
    """An add-on that answers every request (204 for POST, a page for GET) and logs paths."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        if request.method == "POST":
            await request.read()
            return web.Response(status=204)
        return web.Response(text="page")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve(app) as url:
        yield url, seen


@contextlib.asynccontextmanager
async def daemon(config: Path) -> AsyncIterator[tuple[Any, EventLog]]:
    events = EventLog()
    bus = EventBus()
    bus.subscribe(events)
    supervisor = make_supervisor(load_config(config), bus)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        await events.wait_event("ready", timeout=15)
        yield supervisor, events
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def write(project: Path, addon_url: str, hosts: list[str], descriptor: str | None = None) -> Path:
    (project / "atlassian-connect.json").write_text(
        descriptor or descriptor_text(lifecycle={"installed": "/installed",
                                                 "uninstalled": "/uninstalled",
                                                 "enabled": "/enabled"}),
        encoding="utf-8",
    )  # fmt: skip
    config = project / "connect-dev.toml"
    config.write_text(
        f'[addon]\nurl = "{addon_url}"\n[proxy]\nport = 0\n[tunnel]\nprovider = "none"\n'
        + "".join(hosts),
        encoding="utf-8",
    )
    return config


async def test_up_verifies_installs_and_host_requests_end_to_end(project: Path) -> None:
    async with (
        catch_all_addon() as (addon_url, _),
        run_host() as jira,
        run_host(context_path="/wiki", product="confluence") as wiki,
    ):
        config = write(
            project,
            addon_url,
            [
                host_toml("jira", jira.base_url),
                host_toml("wiki", wiki.base_url, product="confluence"),
            ],
        )
        async with daemon(config) as (supervisor, events):
            await events.wait_for(lambda log: len(log.of("lifecycle", event="enabled")) == 2)
            lifecycles = {(e.host, e.event, e.verified, e.verdict) for e in events.of("lifecycle")}  # type: ignore[attr-defined]
            assert lifecycles == {
                ("jira", "installed", True, "verified"),
                ("jira", "enabled", True, "verified"),
                ("wiki", "installed", True, "verified"),
                ("wiki", "enabled", True, "verified"),
            }
            for site in (jira, wiki):
                page = await site.send_request("test-addon", "/hello", query={"q": "a b"})
                hook = await site.send_request(
                    "test-addon", "/hook", method="POST", style="webhook", body={"x": 1}
                )
                assert (page.status, hook.status) == (200, 204)

            def signed(log: EventLog) -> list[Any]:
                return [e for e in log.of("request") if e.path.startswith(("/hello", "/hook"))]  # type: ignore[attr-defined]

            await events.wait_for(lambda log: len(signed(log)) == 4)
            requests = signed(events)
            assert [(r.jwt or {}).get("verdict") for r in requests] == ["verified"] * 4
            assert {(r.jwt or {}).get("host") for r in requests} == {"jira", "wiki"}
            store = TenantStore(project / ".connect-dev")
            assert {t.client_key for t in store.tenants()} == {jira.client_key, wiki.client_key}
            for site in (jira, wiki):
                secret = site.installations["test-addon"].shared_secret
                assert secret is not None
                tenant = store.get(site.client_key)
                assert tenant is not None
                assert store.secret(tenant) == Secret(secret)
                assert tenant.addon_base_url == supervisor.public_url


async def test_an_install_the_add_on_never_answered_says_so_and_stores_no_tenant(
    project: Path,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on: the add-on is not running
        sock.bind(("127.0.0.1", 0))
        addon_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with run_host() as jira:
        config = write(project, addon_url, [host_toml("jira", jira.base_url)])
        async with daemon(config) as (_, events):
            await events.wait_event("registration_failed")
            await events.wait_event("lifecycle")
        (failed,) = events.of("registration_failed")
        assert failed.error == (  # type: ignore[attr-defined]
            f"your add-on at {addon_url} did not answer the installed callback from "
            f"{jira.base_url}: connection refused"
        )
        assert "Start your add-on server" in (failed.hint or "")  # type: ignore[attr-defined]
        (installed,) = events.of("lifecycle", event="installed")
        assert isinstance(installed, Lifecycle)
        assert (installed.verified, installed.addon_status, installed.addon_error) == (
            True,
            502,
            "connection refused",
        )
        line = format_event(installed)
        assert "(verified), NOT accepted: the add-on did not answer (connection refused)" in line
        callbacks = [
            e for e in events.events if isinstance(e, RequestServed) and e.method == "POST"
        ]
        assert [(e.path, e.addon_error) for e in callbacks] == [
            ("/installed", "connection refused")
        ]
        assert TenantStore(project / ".connect-dev").tenants() == []
        assert jira.record.installs == []


async def test_up_flags_unsigned_and_legacy_installs(project: Path) -> None:
    legacy = json.loads(descriptor_text())
    del legacy["apiMigrations"]
    async with catch_all_addon() as (addon_url, _), run_host() as jira:
        config = write(project, addon_url, [host_toml("jira", jira.base_url)], json.dumps(legacy))
        async with daemon(config) as (_, events):
            await events.wait_event("lifecycle")
            (project / "atlassian-connect.json").write_text(
                json.dumps({**legacy, "name": "Reinstalled"}), encoding="utf-8"
            )
            await events.wait_event("lifecycle", count=2, timeout=15)
            first, second = [e for e in events.events if isinstance(e, Lifecycle)][:2]
            assert (first.signature, first.verdict, first.verified) == (
                "unsigned",
                "unsigned",
                False,
            )
            assert (second.signature, second.verdict) == ("HS256", "legacy signature")
            assert TenantStore(project / ".connect-dev").tenants() == []


async def test_token_and_open_sign_requests_the_add_on_accepts(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`connect-dev token` and `open` (in-process) sign as the host would: the proxy's verdict
    on them is "verified", for a query in any order."""
    async with catch_all_addon() as (addon_url, _), run_host() as jira:
        config = write(project, addon_url, [host_toml("jira", jira.base_url)])
        async with daemon(config) as (supervisor, events):
            await events.wait_for(lambda log: bool(log.of("lifecycle")))
            monkeypatch.setattr(sys, "stdin", io.StringIO(""))
            assert cli.main(["token", "--config", str(config), "GET", "/hello?z=1&a=x y"]) == 0
            token = capsys.readouterr().out.strip()
            assert cli.main(["open", "--config", str(config), "--sub", "acc-1", "/hello?b=2"]) == 0
            url = capsys.readouterr().out.strip()
            assert url.startswith(f"{supervisor.public_url}/hello?b=2&jwt=")
            async with aiohttp.ClientSession() as session:
                async with session.get(
                    f"{supervisor.public_url}/hello?a=x+y&z=1",
                    headers={"Authorization": f"JWT {token}"},
                ) as response:
                    assert response.status == 200
                async with session.get(url) as response:
                    assert response.status == 200
            await events.wait_for(
                lambda log: len([e for e in log.of("request") if e.path.startswith("/hello")]) == 2  # type: ignore[attr-defined]
            )
            verdicts = [e.jwt for e in events.of("request") if e.path.startswith("/hello")]  # type: ignore[attr-defined]
            assert [v["verdict"] for v in verdicts if v] == ["verified", "verified"], verdicts
            assert verdicts[1] is not None
            assert verdicts[1]["sub"] == "acc-1"
            claims = jwt.unverified_claims(token)
            assert claims["iss"] == jira.client_key
            assert claims["exp"] - claims["iat"] == 180


# --- properties -----------------------------------------------------------------------------

_texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.from_regex(r"\A(/[a-z0-9._~-]{1,8}){0,3}\Z"),
    pairs=st.lists(st.tuples(_texts.filter(lambda k: k != "jwt"), _texts), max_size=6),
    data=st.data(),
)
def test_a_token_for_any_query_order_is_verified(
    method: str, path: str, pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    """Signed for the parameters in one order, sent in another (as a browser may): verified."""
    sent = data.draw(st.permutations(pairs))
    with tempfile.TemporaryDirectory() as directory:
        rig = Rig(Path(directory))
        rig.inspector._secrets[CLIENT_KEY] = (  # a tenant as a verified install leaves it
            Tenant(CLIENT_KEY, "my-addon", CLOUD.url, PUBLIC, "dev-jira"),
            Secret(SECRET),
        )
        token = jwt.encode_hs256(jwt.make_claims(CLIENT_KEY, method, path, pairs, now=NOW), SECRET)
        raw_path = (path or "/") + (f"?{urlencode(sent)}" if sent else "")
        verdict = asyncio.run(rig.send(method, raw_path, token=token))
    assert verdict is not None
    assert verdict["verdict"] == "verified", verdict


def test_decoding_on_a_chosen_clock() -> None:
    claims = jwt.make_claims(CLIENT_KEY, "GET", "/", now=NOW)
    token = jwt.encode_hs256(claims, SECRET)
    assert jwt.decode_hs256(token, SECRET, now=NOW + 179) == claims
    with pytest.raises(jwt.JwtVerificationError) as expired:
        jwt.decode_hs256(token, SECRET, now=NOW + 180)
    assert expired.value.reason == "expired"
    assert jwt.decode_hs256(token, SECRET, now=NOW + 200, leeway=30) == claims
    with pytest.raises(jwt.JwtVerificationError) as future:
        jwt.decode_hs256(token, SECRET, now=NOW - 60)
    assert future.value.reason == "not yet valid"
    with pytest.raises(jwt.JwtVerificationError) as bad:
        jwt.check_times({"exp": "tomorrow"}, NOW)
    assert bad.value.reason == "malformed"


async def test_installs_arriving_together_are_stored_in_few_writes(tmp_path: Path) -> None:
    """Group commit: the installs that come while one write is on the disk share the next."""
    rig = Rig(tmp_path)
    batches: list[int] = []
    remember_all = rig.tenants.remember_all

    def recording(installs: Any) -> Any:
        batches.append(len(installs))
        return remember_all(installs)

    rig.tenants.remember_all = recording  # type: ignore[method-assign]
    payloads = [install_payload(clientKey=f"client-{n}") for n in range(20)]
    await asyncio.gather(
        *(
            rig.send("POST", "/installed", token=install_token(iss=f"client-{n}"), payload=p)
            for n, p in enumerate(payloads)
        )
    )
    assert sum(batches) == 20
    assert len(batches) < 20, batches
    assert {t.client_key for t in rig.tenants.tenants()} == {f"client-{n}" for n in range(20)}
