"""Install edge cases of the emulated host (docs/emulated-host.md, "Install edge cases"): the
re-install of a known tenant, an add-on that lost its tenant data, the `enabled`/`disabled`
callbacks and their control calls, and an uninstall while the add-on is down.

The add-on here is strict, as an add-on should be: it keeps tenants by clientKey, checks every
JWT (RS256 through the key server for `installed`/`uninstalled`, HS256 with the stored secret for
everything else) and answers 401 to what it cannot verify, including a signed legacy `installed`
for a tenant it does not know (Atlassian's advice for the legacy scheme). The real ACE 11.5.3 app
plays the add-on in the last test.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest
from aiohttp import web

from connect_devloop import jwt as connect_jwt
from connect_devloop.host import EmulatedHost, run_host

from .ace.npm import NPM_TIMEOUT_S
from .e2e import CONNECT_DEV, running_up
from .test_ace import ADDON_KEY as ACE_KEY
from .test_ace import DESCRIPTOR as ACE_DESCRIPTOR
from .test_ace import ace_app, ace_modules, free_port
from .test_ace import write_config as write_ace_config
from .test_host import ADMIN, CALLBACK_FAILED, Upm

__all__ = ["ace_modules"]  # a fixture: imported so that pytest finds it here

KEY = "com.example.edge"
LIFECYCLE = ("installed", "enabled", "disabled", "uninstalled")
BAD_RESPONSE = "connect.install.error.remote.host.bad.response"


# --- a strict add-on -----------------------------------------------------------------------------


@dataclass
class Heard:
    """One request the add-on got, and what it answered."""

    event: str
    status: int
    reason: str
    alg: str | None
    payload: dict[str, Any]


@dataclass
class StrictAddon:
    origin: str = ""
    keys_url: str = ""
    signed_install: bool = True
    tenants: dict[str, str] = field(default_factory=dict)  # clientKey -> sharedSecret
    heard: list[Heard] = field(default_factory=list)
    session: aiohttp.ClientSession | None = None

    @property
    def descriptor_url(self) -> str:
        return f"{self.origin}/atlassian-connect.json"

    def descriptor(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "key": KEY,
            "name": "Edge cases",
            "baseUrl": self.origin,
            "authentication": {"type": "jwt"},
            "lifecycle": {event: f"/{event}" for event in LIFECYCLE},
            "scopes": ["read"],
            "modules": {},
        }
        if self.signed_install:
            document["apiMigrations"] = {"signed-install": True}
        return document

    def events(self) -> list[tuple[str, int]]:
        return [(h.event, h.status) for h in self.heard]

    def forget(self) -> None:
        """Lose every tenant, as an add-on whose database was wiped or kept in memory."""
        self.tenants.clear()

    def app(self) -> web.Application:
        async def serve_descriptor(request: web.Request) -> web.Response:
            return web.json_response(self.descriptor())

        app = web.Application()
        app.router.add_get("/atlassian-connect.json", serve_descriptor)
        for event in LIFECYCLE:
            app.router.add_post(f"/{event}", self._lifecycle)
        app.router.add_get("/page", self._page)
        return app

    async def _lifecycle(self, request: web.Request) -> web.Response:
        event = request.path.lstrip("/")
        payload = json.loads(await request.text())
        client_key = payload["clientKey"]
        alg, reason = await self._verify(request, client_key, asymmetric=event in LIFECYCLE[::3])
        status = 401
        if reason == "verified":
            status = 204
            if event == "installed":
                self.tenants[client_key] = payload["sharedSecret"]
            elif event == "uninstalled":
                self.tenants.pop(client_key, None)
        self.heard.append(Heard(event, status, reason, alg, payload))
        return web.Response(status=status, text=reason)

    async def _page(self, request: web.Request) -> web.Response:
        token = request.query.get("jwt", "")
        client_key = pyjwt.decode(token, options={"verify_signature": False})["iss"]
        alg, reason = await self._verify(request, client_key, asymmetric=False)
        status = 200 if reason == "verified" else 401
        self.heard.append(Heard("page", status, reason, alg, {}))
        return web.Response(status=status, text=reason)

    async def _verify(
        self, request: web.Request, client_key: str, *, asymmetric: bool
    ) -> tuple[str | None, str]:
        authorization = request.headers.get("Authorization", "")
        token = authorization[4:] if authorization.startswith("JWT ") else request.query.get("jwt")
        if not token:
            # Only a legacy first install comes unsigned; the add-on must not know the tenant.
            unsigned_ok = request.path == "/installed" and not self.signed_install
            if unsigned_ok and client_key not in self.tenants:
                return None, "verified"
            return None, "no JWT"
        alg = pyjwt.get_unverified_header(token)["alg"]
        try:
            if alg == "RS256" and asymmetric:
                kid = pyjwt.get_unverified_header(token)["kid"]
                assert self.session is not None
                async with self.session.get(f"{self.keys_url}/{kid}") as response:
                    public_pem = await response.text()
                claims = pyjwt.decode(token, public_pem, algorithms=["RS256"], audience=self.origin)
            elif alg == "HS256" and client_key in self.tenants:
                claims = pyjwt.decode(token, self.tenants[client_key], algorithms=["HS256"])
            elif alg == "HS256":
                return alg, f"unknown tenant {client_key}"
            else:
                return alg, f"{alg} is not accepted here"
        except pyjwt.InvalidTokenError as exc:
            return alg, f"bad token: {exc}"
        canonical = connect_jwt.canonical_request(
            request.method, request.path, list(request.query.items()), ""
        )
        if claims.get("qsh") != connect_jwt.query_string_hash(canonical):
            return alg, "qsh mismatch"
        if claims.get("iss") != client_key:
            return alg, "iss is not the clientKey"
        return alg, "verified"


@asynccontextmanager
async def addon_server(addon: StrictAddon, port: int = 0) -> AsyncIterator[web.AppRunner]:
    runner = web.AppRunner(addon.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    addon.origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield runner
    finally:
        await runner.cleanup()


@dataclass
class Rig:
    host: EmulatedHost
    addon: StrictAddon
    upm: Upm
    session: aiohttp.ClientSession
    runner: web.AppRunner

    @property
    def control(self) -> str:
        return f"{self.host.origin}/_emulator"

    async def install(self) -> int:
        """Install through UPM: 303 when the task completed, 200 when it failed."""
        return (await self.upm.install(self.addon.descriptor_url)).status

    async def uninstall(self) -> int:
        return (await self.upm.call("DELETE", f"/rest/plugins/1.0/{KEY}-key")).status

    async def post(self, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        async with self.session.post(f"{self.control}{path}", json=body) as response:
            return response.status, await response.json()

    def secret(self) -> str | None:
        return self.host.installations[KEY].shared_secret


@asynccontextmanager
async def rig(*, signed_install: bool = True, **settings: Any) -> AsyncIterator[Rig]:
    addon = StrictAddon(signed_install=signed_install)
    async with (
        addon_server(addon) as runner,
        run_host(ping_after_ms=20, **settings) as host,
        aiohttp.ClientSession() as session,
    ):
        addon.keys_url, addon.session = host.keys_url, session
        yield Rig(host, addon, Upm(session, host), session, runner)


# --- re-install of a known tenant ----------------------------------------------------------------


async def test_reinstall_after_uninstall_keeps_the_client_key_with_a_new_secret() -> None:
    async with rig() as r:
        assert await r.install() == 303
        assert await r.uninstall() == 204
        assert await r.install() == 303

        installs = [h for h in r.addon.heard if h.event == "installed"]
        assert [(h.status, h.alg) for h in installs] == [(204, "RS256"), (204, "RS256")]
        first, second = (h.payload for h in installs)
        assert first["clientKey"] == second["clientKey"] == r.host.client_key
        assert first["sharedSecret"] != second["sharedSecret"]
        # Cloud: the installationId "changes in the event of a reinstallation".
        assert first["installationId"] != second["installationId"]
        assert [i.replaced for i in r.host.record.installs] == [False, False]
        assert r.addon.tenants == {r.host.client_key: second["sharedSecret"]}


async def test_legacy_reinstall_after_uninstall_is_signed_with_the_old_secret() -> None:
    """Atlassian's description of install, uninstall, install in the legacy scheme: a new shared
    secret, signed with the old one. The add-on must have kept the old one to accept it."""
    async with rig(signed_install=False) as r:
        assert await r.install() == 303
        old = r.secret()
        kept = dict(r.addon.tenants)
        assert await r.uninstall() == 204
        r.addon.tenants.update(kept)  # marks the tenant uninstalled rather than deleting it
        assert await r.install() == 303

        first, second = [h for h in r.addon.heard if h.event == "installed"]
        assert (first.alg, first.status) == (None, 204)
        assert (second.alg, second.status, second.reason) == ("HS256", 204, "verified")
        assert second.payload["sharedSecret"] not in (None, old)
        assert [i.signed for i in r.host.record.installs] == ["unsigned", "HS256"]


async def test_keep_switch_keeps_the_secret_across_a_reinstall_in_place() -> None:
    async with rig(reinstall_secret="keep", signed_install=False) as r:
        assert await r.install() == 303
        secret = r.secret()
        assert await r.install() == 303
        assert r.secret() == secret
        # After an uninstall even older Connect issued a new secret, signed with the old one.
        assert await r.uninstall() == 204
        r.addon.tenants[r.host.client_key] = str(secret)
        assert await r.install() == 303
        assert r.secret() != secret
        assert [i.signed for i in r.host.record.installs] == ["unsigned", "HS256", "HS256"]
        assert r.addon.heard[-2].reason == "verified"
        secret = r.secret()
        assert await r.install() == 303
        assert r.secret() == secret

        # The control call forces a new one whatever the switch says.
        status, answer = await r.post(f"/apps/{KEY}/reinstall")
        assert status == 200, answer
        assert r.secret() != secret
        assert r.addon.tenants[r.host.client_key] == r.secret()

        # The switch, flipped over the control API; reset puts back what the site started with.
        status, info = await r.post("/faults", {"reinstall_secret": "new"})
        assert (status, info["reinstall_secret"]) == (200, "new")
        before = r.secret()
        assert await r.install() == 303
        assert r.secret() != before
        for bad in ({"reinstall_secret": "rotate"}, {"reinstall_secret": True}):
            status, answer = await r.post("/faults", bad)
            assert status == 400, answer
        status, info = await r.post("/reset")
        assert info["reinstall_secret"] == "keep"
        assert r.host.tenant_secrets == {}


async def test_reinstall_control_call_sends_installed_again_with_a_new_secret() -> None:
    async with rig() as r:
        assert await r.install() == 303
        old = r.secret()
        installation_id = r.host.installations[KEY].installation_id

        status, answer = await r.post(f"/apps/{KEY}/reinstall")
        assert status == 200, answer
        assert answer["key"] == KEY
        assert answer["enabled"] is True
        assert [(c["event"], c["status"], c["signed"]) for c in answer["callbacks"]] == [
            ("installed", 204, "RS256"),
            ("enabled", 204, "HS256"),
        ]
        new = r.secret()
        assert new != old
        assert r.addon.tenants == {r.host.client_key: new}
        assert r.host.installations[KEY].installation_id == installation_id
        assert r.host.record.installs[-1].replaced is True
        assert r.host.record.installs[-1].plugin_uri == r.addon.descriptor_url

        # Requests are now signed with the new secret, and the add-on accepts them.
        assert (await r.host.send_request(KEY, "/page")).status == 200

        status, answer = await r.post(f"/apps/{KEY}/reinstall", {"secret": "keep"})
        assert status == 200
        assert r.secret() == new

        # A disabled app is re-installed disabled and hears no `enabled`.
        await r.post(f"/apps/{KEY}/disable")
        status, answer = await r.post(f"/apps/{KEY}/reinstall")
        assert [c["event"] for c in answer["callbacks"]] == ["installed"]
        assert answer["enabled"] is False

        for path, body, expected in [
            ("/apps/nope/reinstall", None, 404),
            (f"/apps/{KEY}/reinstall", {"secret": "old"}, 400),
            (f"/apps/{KEY}/reinstall", {"secrets": "new"}, 400),
            (f"/apps/{KEY}/reinstall", [1], 400),
        ]:
            status, answer = await r.post(path, body)
            assert status == expected, (path, body, answer)
            assert "error" in answer


async def test_refused_reinstall_keeps_the_installation_and_its_secret() -> None:
    async with rig() as r:
        assert await r.install() == 303
        old = r.secret()
        await r.runner.cleanup()  # the add-on is down during the upgrade

        status, answer = await r.post(f"/apps/{KEY}/reinstall")
        assert status == 502
        assert answer["sub_code"] == BAD_RESPONSE
        assert answer["error"].startswith("The add-on host could not be reached (")
        assert [(c["event"], c["status"]) for c in answer["callbacks"]] == [("installed", None)]
        assert r.secret() == old
        failed = r.host.record.failed_installs[-1]
        assert (failed.key, failed.sub_code) == (KEY, BAD_RESPONSE)
        assert list(r.host.record.plugins) == [KEY]


# --- the add-on lost its data --------------------------------------------------------------------


async def test_lost_tenant_fails_requests_until_a_signed_reinstall() -> None:
    async with rig() as r:
        assert await r.install() == 303
        r.addon.forget()

        # What Cloud does next: requests signed with the secret the site holds.
        async with r.session.post(
            f"{r.control}/send", json={"key": KEY, "path": "/page"}
        ) as response:
            assert response.status == 200
            assert (await response.json())["status"] == 401
        status, answer = await r.post(f"/apps/{KEY}/disable")
        assert [(c["event"], c["status"]) for c in answer["callbacks"]] == [("disabled", 401)]
        assert r.addon.heard[-1].reason == f"unknown tenant {r.host.client_key}"
        await r.post(f"/apps/{KEY}/enable")

        # A signed re-install (an upgrade, a save under `connect-dev up`) is RS256: the add-on
        # can verify it without knowing the tenant, and stores the new secret.
        status, answer = await r.post(f"/apps/{KEY}/reinstall")
        assert status == 200, answer
        assert r.addon.tenants == {r.host.client_key: r.secret()}
        assert (await r.host.send_request(KEY, "/page")).status == 200


async def test_lost_tenant_recovers_with_uninstall_and_install() -> None:
    async with rig() as r:
        assert await r.install() == 303
        r.addon.forget()
        assert await r.uninstall() == 204
        assert r.addon.events()[-2:] == [("disabled", 401), ("uninstalled", 204)]
        assert await r.install() == 303
        assert (await r.host.send_request(KEY, "/page")).status == 200


async def test_lost_legacy_tenant_needs_signed_install() -> None:
    """In the legacy scheme every re-install is signed with the secret the add-on lost, so it
    must refuse it, even after an uninstall; a signed install is the way out."""
    async with rig(signed_install=False) as r:
        assert await r.install() == 303
        r.addon.forget()

        assert await r.install() == 200
        assert r.host.record.failed_installs[-1].sub_code == BAD_RESPONSE
        assert r.host.record.failed_installs[-1].error_message == CALLBACK_FAILED.format(401)
        assert await r.uninstall() == 204
        assert await r.install() == 200
        assert r.host.record.failed_installs[-1].error_message == CALLBACK_FAILED.format(401)
        assert r.addon.heard[-1].reason == f"unknown tenant {r.host.client_key}"

        r.addon.signed_install = True
        assert await r.install() == 303
        assert r.addon.heard[-2].alg == "RS256"
        assert (await r.host.send_request(KEY, "/page")).status == 200


# --- enabled and disabled ------------------------------------------------------------------------


async def test_enable_and_disable_control_calls() -> None:
    async with rig() as r:
        assert await r.install() == 303
        assert r.addon.events() == [("installed", 204), ("enabled", 204)]

        status, answer = await r.post(f"/apps/{KEY}/disable")
        assert status == 200
        assert answer["enabled"] is False
        [callback] = answer["callbacks"]
        assert (callback["event"], callback["status"], callback["signed"]) == (
            "disabled",
            204,
            "HS256",
        )
        disabled = r.addon.heard[-1]
        assert disabled.payload["eventType"] == "disabled"
        assert "sharedSecret" not in disabled.payload
        plugin = await r.upm.call("GET", f"/rest/plugins/1.0/{KEY}-key")
        assert plugin.json()["enabled"] is False
        assert r.host.record.plugins[KEY]["enabled"] is False

        # No change, no callback.
        status, answer = await r.post(f"/apps/{KEY}/disable", {})
        assert (status, answer["callbacks"]) == (200, [])
        status, answer = await r.post(f"/apps/{KEY}/enable")
        assert (answer["enabled"], [c["event"] for c in answer["callbacks"]]) == (True, ["enabled"])
        assert r.addon.events()[-2:] == [("disabled", 204), ("enabled", 204)]

        # Uninstalling an enabled app: `disabled` first, then `uninstalled`.
        assert await r.uninstall() == 204
        assert r.addon.events()[-2:] == [("disabled", 204), ("uninstalled", 204)]

        for path, body, expected in [
            (f"/apps/{KEY}/enable", None, 404),
            ("/apps/com.atlassian.plugins.atlassian-connect-plugin/disable", None, 404),
        ]:
            status, answer = await r.post(path, body)
            assert status == expected, answer
        assert await r.install() == 303
        status, answer = await r.post(f"/apps/{KEY}/disable", {"now": True})
        assert status == 400, answer


async def test_disabled_app_hears_only_uninstalled() -> None:
    async with rig() as r:
        assert await r.install() == 303
        await r.post(f"/apps/{KEY}/disable")
        assert await r.uninstall() == 204
        assert [e for e, _ in r.addon.events()] == [
            "installed",
            "enabled",
            "disabled",
            "uninstalled",
        ]


# --- uninstall while the add-on is down ----------------------------------------------------------


async def test_uninstall_while_the_addon_is_down_completes() -> None:
    async with rig() as r:
        assert await r.install() == 303
        await r.runner.cleanup()

        assert await r.uninstall() == 204
        assert r.host.installations == {}
        assert r.host.record.plugins == {}
        assert (await r.upm.call("GET", f"/rest/plugins/1.0/{KEY}-key")).status == 404
        listed = (await r.upm.call("GET", "/rest/plugins/1.0/")).json()["plugins"]
        assert KEY not in [p["key"] for p in listed]
        failed = r.host.record.callbacks[-2:]
        assert [(c.event, c.status, c.signed) for c in failed] == [
            ("disabled", None, "HS256"),
            ("uninstalled", None, "RS256"),
        ]
        assert all(c.error and "Cannot connect" in c.error for c in failed), failed
        uninstall = r.host.record.uninstalls[-1]
        assert (uninstall.key, uninstall.callback_status, uninstall.signed) == (KEY, None, "RS256")

        # Back up on the same port, it still holds the tenant it never heard go: a new install
        # gives it the same clientKey and a new secret.
        port = int(r.addon.origin.rsplit(":", 1)[1])
        async with addon_server(r.addon, port):
            assert await r.install() == 303
            assert r.addon.tenants == {r.host.client_key: r.secret()}


# --- `connect-dev host --reinstall-secret` -------------------------------------------------------


async def test_host_command_reinstall_secret_flag() -> None:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "host",
        "--port",
        "0",
        "--reinstall-secret",
        "keep",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        origin = first.split(" at ", 1)[1].strip().removesuffix("/jira")
        async with aiohttp.ClientSession() as session, session.get(f"{origin}/_emulator") as got:
            assert (await got.json())["reinstall_secret"] == "keep"
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 20)

    bad = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "host",
        "--reinstall-secret",
        "rotate",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(bad.communicate(), 20)
    assert bad.returncode == 2
    assert "--reinstall-secret: invalid choice: 'rotate'" in err.decode()


# --- the real ACE app ----------------------------------------------------------------------------


@pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run the atlassian-connect-express peer (CI has them)",
)
@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_ace_accepts_reinstall_with_a_new_secret_and_its_enabled_callbacks(
    ace_modules: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    descriptor = {
        **ACE_DESCRIPTOR,
        "lifecycle": {event: f"/{event}" for event in LIFECYCLE},
    }
    (project / "atlassian-connect.json").write_text(json.dumps(descriptor), encoding="utf-8")
    proxy_port = free_port()
    public_url = f"http://127.0.0.1:{proxy_port}"
    async with (
        run_host(require_signed_install=True) as jira,
        ace_app(ace_modules, project, public_url, jira.keys_url) as (ace, ace_url),
        aiohttp.ClientSession(headers={"Authorization": ADMIN}) as session,
    ):
        config = write_ace_config(project, ace_url, proxy_port, jira)
        control = f"{jira.origin}/_emulator/apps/{ACE_KEY}"
        async with running_up(config):
            await ace.wait_event("enabled", clientKey=jira.client_key)
            first_secret = jira.installations[ACE_KEY].shared_secret
            assert [(c.event, c.status) for c in jira.record.callbacks] == [
                ("installed", 204),
                ("enabled", 204),
            ]

            # Re-install with a new secret: ACE verifies it (RS256), stores the new secret, and
            # verifies `enabled` with it.
            async with session.post(f"{control}/reinstall") as response:
                assert response.status == 200, await response.text()
                answer = await response.json()
            assert [(c["event"], c["status"]) for c in answer["callbacks"]] == [
                ("installed", 204),
                ("enabled", 204),
            ]
            assert len(ace.events("tenant_saved")) == 2
            assert jira.installations[ACE_KEY].shared_secret != first_secret
            assert (await jira.send_request(ACE_KEY, "/hello")).status == 200
            # A request signed with the secret the re-install replaced is refused.
            claims = connect_jwt.make_claims(jira.client_key, "GET", "/hello", "", "")
            old_token = connect_jwt.encode_hs256(claims, str(first_secret))
            async with session.get(
                f"{ace_url}/hello", headers={"Authorization": f"JWT {old_token}"}
            ) as response:
                assert response.status == 400
                assert "Signature verification failed" in await response.text()

            async with session.post(f"{control}/disable") as response:
                assert [c["status"] for c in (await response.json())["callbacks"]] == [204]
            await ace.wait_event("disabled", eventType="disabled")
            async with session.post(f"{control}/enable") as response:
                assert [c["status"] for c in (await response.json())["callbacks"]] == [204]
            assert len(ace.events("enabled")) == 3

            # ACE loses the tenant: the site's requests fail until a signed re-install.
            async with session.post(
                f"{ace_url}/_test/forget", json={"clientKey": jira.client_key}
            ) as response:
                assert response.status == 204
            lost = await jira.send_request(ACE_KEY, "/hello")
            assert lost.status == 401
            assert f"Could not find stored client data for {jira.client_key}" in lost.body
            async with session.post(f"{control}/reinstall") as response:
                assert response.status == 200, await response.text()
            assert (await jira.send_request(ACE_KEY, "/hello")).status == 200
        # `up` uninstalls on the way out: ACE hears `disabled`, then `uninstalled`.
        await ace.wait_event("tenant_deleted", clientKey=jira.client_key)
        assert [(c.event, c.status) for c in jira.record.callbacks][-2:] == [
            ("disabled", 204),
            ("uninstalled", 204),
        ]
