"""The emulated Connect host, driven over real HTTP on loopback, against a small real add-on
server that verifies every JWT it is sent the way an add-on must (PyJWT + the key server + qsh)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest
from aiohttp import web

from connect_devloop import jwt as connect_jwt
from connect_devloop.host import EmulatedHost, HostRecord, HostSettings, run_host, serve_forever
from connect_devloop.host import site as host_site
from connect_devloop.tui.app import UPM_PAGE

REMOTE_INSTALL = "application/vnd.atl.plugins.remote.install+json"
URI_INSTALL = "application/vnd.atl.plugins.install.uri+json"
DOWNLOADING = "application/vnd.atl.plugins.install.downloading+json"
INSTALLING = "application/vnd.atl.plugins.install.installing+json"
TASK_ERROR = "application/vnd.atl.plugins.task.install.err+json"
# PROTOCOL.md §5 vectors: `POST&/installed&` and `POST&/uninstalled&`.
INSTALLED_QSH = "4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4"
UNINSTALLED_QSH = "8a8d06f040b246544d605b08aeb419e30b5cf0e200f512888486585ecce6a52e"
LIFECYCLE_EVENTS = ("installed", "uninstalled", "enabled", "disabled")
KEY = "com.example.addon"
CALLBACK_FAILED = (
    "The add-on host returned HTTP response code {} when we tried to contact it during "
    "installation. Please try again later or contact the add-on vendor."
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ADMIN = basic("admin", "admin")


# --- the add-on under test ----------------------------------------------------------------------


@dataclass
class Received:
    """One request the add-on got. ``verdict``: "RS256", "HS256", "unsigned" or "rejected: …"."""

    event: str
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: str
    verdict: str
    claims: dict[str, Any] | None

    @property
    def payload(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


@dataclass
class FakeAddon:
    """A tiny add-on: serves its descriptor, records and verifies every request it gets."""

    base_path: str = ""
    descriptor: dict[str, Any] | None = None
    descriptor_text: str | None = None  # served instead of ``descriptor`` when set
    descriptor_status: int = 200
    statuses: dict[str, int] = field(default_factory=dict)  # event -> status to answer
    keys_url: str = ""
    shared_secret: str | None = None
    received: list[Received] = field(default_factory=list)
    origin: str = ""
    _session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return self.origin + self.base_path

    @property
    def descriptor_url(self) -> str:
        return f"{self.base_url}/atlassian-connect.json"

    def events(self) -> list[str]:
        return [r.event for r in self.received]

    def last(self, event: str) -> Received:
        return [r for r in self.received if r.event == event][-1]

    def make_descriptor(
        self,
        key: str = KEY,
        *,
        signed: bool = True,
        lifecycle: tuple[str, ...] = LIFECYCLE_EVENTS,
        **extra: Any,
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "key": key,
            "name": "Example add-on",
            "description": "An add-on under test",
            "baseUrl": self.base_url,
            "authentication": {"type": "jwt"},
            "lifecycle": {event: f"/{event}" for event in lifecycle},
            "scopes": ["read"],
            "modules": {},
        }
        if signed:
            document["apiMigrations"] = {"signed-install": True}
        document.update(extra)
        self.descriptor = document
        return document

    def app(self) -> web.Application:
        app = web.Application()
        base = self.base_path
        app.router.add_get(f"{base}/atlassian-connect.json", self._serve_descriptor)
        for event in LIFECYCLE_EVENTS:
            app.router.add_post(f"{base}/{event}", self._lifecycle)
        app.router.add_route("*", f"{base}/{{tail:.*}}", self._page)
        return app

    async def _serve_descriptor(self, request: web.Request) -> web.Response:
        text = self.descriptor_text
        if text is None:
            text = json.dumps(self.descriptor)
        return web.Response(
            status=self.descriptor_status, text=text, content_type="application/json"
        )

    async def _lifecycle(self, request: web.Request) -> web.Response:
        event = request.path.rsplit("/", 1)[-1]
        received = await self._receive(event, request)
        if event == "installed" and not received.verdict.startswith("rejected"):
            self.shared_secret = received.payload.get("sharedSecret")
        return web.Response(status=self.statuses.get(event, 204))

    async def _page(self, request: web.Request) -> web.Response:
        received = await self._receive("request", request)
        return web.json_response(
            {"verdict": received.verdict, "path": request.path},
            status=self.statuses.get("request", 200),
        )

    async def _receive(self, event: str, request: web.Request) -> Received:
        body = await request.text()
        verdict, claims = await self._verify(request)
        received = Received(
            event=event,
            method=request.method,
            path=request.path,
            query=list(request.query.items()),
            headers=dict(request.headers),
            body=body,
            verdict=verdict,
            claims=claims,
        )
        self.received.append(received)
        return received

    async def _verify(self, request: web.Request) -> tuple[str, dict[str, Any] | None]:
        authorization = request.headers.get("Authorization", "")
        token = authorization[4:] if authorization.startswith("JWT ") else request.query.get("jwt")
        if not token:
            return "unsigned", None
        header = pyjwt.get_unverified_header(token)
        try:
            if header["alg"] == "RS256":
                assert self._session is not None
                async with self._session.get(f"{self.keys_url}/{header['kid']}") as response:
                    if response.status != 200:
                        return f"rejected: key server answered {response.status}", None
                    public_pem = await response.text()
                claims = pyjwt.decode(
                    token, public_pem, algorithms=["RS256"], audience=self.base_url
                )
            elif self.shared_secret is None:
                return "rejected: signed, but no shared secret is known", None
            else:
                claims = pyjwt.decode(token, self.shared_secret, algorithms=["HS256"])
        except pyjwt.InvalidTokenError as exc:
            return f"rejected: {exc}", None
        canonical = connect_jwt.canonical_request(
            request.method, request.path, list(request.query.items()), self.base_path
        )
        if claims.get("qsh") != connect_jwt.query_string_hash(canonical):
            return f"rejected: qsh does not match {canonical!r}", claims
        return str(header["alg"]), claims


@asynccontextmanager
async def running_addon(base_path: str = "") -> AsyncIterator[FakeAddon]:
    addon = FakeAddon(base_path=base_path)
    runner = web.AppRunner(addon.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    addon.origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    addon.make_descriptor()
    async with aiohttp.ClientSession() as session:
        addon._session = session
        try:
            yield addon
        finally:
            await runner.cleanup()


@asynccontextmanager
async def closed_port_url() -> AsyncIterator[str]:
    """A loopback URL nothing listens on."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    await runner.cleanup()
    yield f"http://127.0.0.1:{port}"


# --- a minimal UPM client, independent of the project's own ---------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Upm:
    def __init__(self, session: aiohttp.ClientSession, host: EmulatedHost) -> None:
        self.session = session
        self.host = host

    async def call(
        self, method: str, path: str, *, auth: str | None = ADMIN, **kwargs: Any
    ) -> Answer:
        url = path if path.startswith("http") else f"{self.host.base_url}{path}"
        headers = dict(kwargs.pop("headers", {}))
        if auth is not None:
            headers["Authorization"] = auth
        async with self.session.request(
            method, url, headers=headers, allow_redirects=False, **kwargs
        ) as response:
            return Answer(response.status, dict(response.headers), await response.text())

    async def token(self, auth: str = ADMIN) -> str:
        answer = await self.call("GET", "/rest/plugins/1.0/", auth=auth)
        assert answer.status == 200, answer.text
        return answer.headers["upm-token"]

    async def post_install(
        self,
        plugin_uri: object,
        *,
        token: str | None = None,
        content_type: str = REMOTE_INSTALL,
        auth: str = ADMIN,
        **fields: Any,
    ) -> Answer:
        if token is None:
            token = await self.token(auth)
        return await self.call(
            "POST",
            "/rest/plugins/1.0/",
            auth=auth,
            params={"token": token},
            data=json.dumps({"pluginUri": plugin_uri, **fields}),
            headers={"Content-Type": content_type},
        )

    async def poll(self, task: dict[str, Any]) -> list[Answer]:
        """Every poll answer until the task is done (303 or ``status.done``)."""
        answers: list[Answer] = []
        async with asyncio.timeout(15):
            while True:
                answer = await self.call("GET", self.host.origin + task["links"]["self"])
                answers.append(answer)
                if answer.status != 200 or answer.json()["status"]["done"]:
                    return answers
                await asyncio.sleep(task["pingAfter"] / 1000)

    async def install(self, plugin_uri: str, **fields: Any) -> Answer:
        """Install and return the final poll answer."""
        posted = await self.post_install(plugin_uri, **fields)
        assert posted.status == 202, posted.text
        return (await self.poll(posted.json()))[-1]


@pytest.fixture
async def addon() -> AsyncIterator[FakeAddon]:
    async with running_addon() as running:
        yield running


@pytest.fixture
async def host(addon: FakeAddon) -> AsyncIterator[EmulatedHost]:
    async with run_host(ping_after_ms=20) as emulated:
        addon.keys_url = emulated.keys_url
        yield emulated


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def upm(session: aiohttp.ClientSession, host: EmulatedHost) -> Upm:
    return Upm(session, host)


# --- tokens and auth ----------------------------------------------------------------------------


async def test_list_gives_a_token_and_the_plugins(upm: Upm) -> None:
    answer = await upm.call("GET", "/rest/plugins/1.0/")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/vnd.atl.plugins.installed+json")
    assert re.fullmatch(r"-?\d+", answer.headers["upm-token"])
    body = answer.json()
    assert body["links"] == {}
    assert all(not plugin["userInstalled"] for plugin in body["plugins"])

    head = await upm.call("HEAD", "/rest/plugins/1.0/")
    assert head.status == 200
    assert head.headers["upm-token"] != answer.headers["upm-token"]


async def test_token_is_single_use(upm: Upm, addon: FakeAddon) -> None:
    token = await upm.token()
    first = await upm.post_install(addon.descriptor_url, token=token)
    again = await upm.post_install(addon.descriptor_url, token=token)
    assert first.status == 202
    assert again.status == 403
    assert again.json() == {"errorMessage": "invalid token", "subCode": "upm.error.invalid.token"}


@pytest.mark.parametrize("token", ["", "12345", None])
async def test_missing_or_unknown_token_is_refused(
    upm: Upm, addon: FakeAddon, token: str | None
) -> None:
    answer = await upm.call(
        "POST",
        "/rest/plugins/1.0/",
        params={} if token is None else {"token": token},
        data=json.dumps({"pluginUri": addon.descriptor_url}),
        headers={"Content-Type": REMOTE_INSTALL},
    )
    assert answer.status == 403
    assert answer.json()["subCode"] == "upm.error.invalid.token"


async def test_token_of_another_user_or_expired_is_refused(
    session: aiohttp.ClientSession, addon: FakeAddon, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with run_host(users={"admin": "admin", "other": "pw"}) as host:
        upm = Upm(session, host)
        others = await upm.token(auth=basic("other", "pw"))
        refused = await upm.post_install(addon.descriptor_url, token=others)
        assert refused.status == 403

        monkeypatch.setattr(host_site, "TOKEN_LIFETIME_S", 0.0)
        expired = await upm.post_install(addon.descriptor_url)
        assert expired.status == 403
        assert expired.json()["subCode"] == "upm.error.invalid.token"


@pytest.mark.parametrize(
    "auth", [None, basic("admin", "wrong"), basic("nobody", "admin"), "Basic !!!", "Bearer x"]
)
async def test_unauthenticated_calls_get_401(upm: Upm, auth: str | None) -> None:
    answer = await upm.call("GET", "/rest/plugins/1.0/", auth=auth)
    assert answer.status == 401
    assert answer.text == "Client must be authenticated to access this resource."
    assert "upm-token" not in answer.headers


async def test_non_admin_gets_403_and_os_auth_type_basic_is_accepted(
    session: aiohttp.ClientSession,
) -> None:
    async with run_host(non_admins={"jane": "pw"}) as host:
        upm = Upm(session, host)
        refused = await upm.call("GET", "/rest/plugins/1.0/", auth=basic("jane", "pw"))
        assert refused.status == 403
        assert refused.headers["Content-Type"].startswith("text/plain")
        assert 0 < len(refused.text) < 100
        allowed = await upm.call("GET", "/rest/plugins/1.0/?os_authType=basic")
        assert allowed.status == 200
        assert [call.status for call in host.record.upm_calls] == [403, 200]
        assert [call.user for call in host.record.upm_calls] == ["jane", "admin"]


async def test_wrong_media_type_is_415_and_keeps_the_token(upm: Upm, addon: FakeAddon) -> None:
    token = await upm.token()
    refused = await upm.post_install(addon.descriptor_url, token=token, content_type="text/plain")
    assert refused.status == 415
    # Jersey refuses the type before the token is looked at, so a retry may reuse it.
    retried = await upm.post_install(addon.descriptor_url, token=token, content_type=URI_INSTALL)
    assert retried.status == 202


@pytest.mark.parametrize(
    ("plugin_uri", "sub_code"),
    [
        ("/atlassian-connect.json", "upm.pluginInstall.error.invalid.relative.uri"),
        ("atlassian-connect.json", "upm.pluginInstall.error.invalid.relative.uri"),
        ("http://exa mple.com/a.json", "upm.pluginInstall.error.invalid.uri.syntax"),
        ("http://", "upm.pluginInstall.error.invalid.uri.syntax"),
        ("http://host:port/a.json", "upm.pluginInstall.error.invalid.uri.syntax"),
        ("http://[::1/a.json", "upm.pluginInstall.error.invalid.uri.syntax"),
        ("", "upm.pluginInstall.error.invalid.uri.syntax"),
        (None, "upm.pluginInstall.error.invalid.uri.syntax"),
    ],
)
async def test_bad_plugin_uri_is_400(
    upm: Upm, host: EmulatedHost, plugin_uri: str | None, sub_code: str
) -> None:
    answer = await upm.post_install(plugin_uri)
    assert answer.status == 400
    assert answer.json()["subCode"] == sub_code
    assert host.record.install_posts[-1].outcome == "rejected"
    assert host.record.install_posts[-1].reason == sub_code
    assert host.tasks == {}


# --- installs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context_path", "product", "addon_base_path"),
    [("/jira", "jira", ""), ("/wiki", "confluence", "/addon"), ("", "jira", "")],
)
async def test_full_install(
    session: aiohttp.ClientSession, context_path: str, product: str, addon_base_path: str
) -> None:
    async with (
        running_addon(addon_base_path) as addon,
        run_host(context_path=context_path, product=product) as host,
    ):
        addon.keys_url = host.keys_url
        upm = Upm(session, host)
        posted = await upm.post_install(addon.descriptor_url, pluginName="My add-on")

        assert posted.status == 202
        task = posted.json()
        root = f"{context_path}/rest/plugins/1.0"
        assert task == {
            "type": "INSTALL",
            "pingAfter": 100,
            "status": {
                "done": False,
                "statusCode": 200,
                "contentType": DOWNLOADING,
                "source": "atlassian-connect.json",
                "name": "My add-on",
            },
            "links": {
                "self": f"{root}/pending/{task['id']}",
                "alternate": f"{root}/tasks/{task['id']}",
            },
            "timestamp": task["timestamp"],
            "id": task["id"],
        }
        assert posted.headers["Location"] == f"{host.origin}{root}/pending/{task['id']}"

        final = (await upm.poll(task))[-1]
        assert final.status == 303
        assert final.headers["Location"] == f"{host.origin}{root}/{KEY}-key"
        plugin = await upm.call("GET", final.headers["Location"])
        assert plugin.status == 200
        assert plugin.json()["key"] == KEY
        assert plugin.json()["enabled"] is True
        assert plugin.json()["userInstalled"] is True

        installed = addon.last("installed")
        assert installed.verdict == "RS256"
        assert installed.headers["Content-Type"] == "application/json"
        assert installed.claims is not None
        assert installed.claims["iss"] == host.client_key
        assert installed.claims["aud"] == [addon.base_url]
        assert installed.claims["qsh"] == INSTALLED_QSH
        assert installed.claims["exp"] == installed.claims["iat"] + 180
        payload = installed.payload
        assert payload == {
            "key": KEY,
            "clientKey": host.client_key,
            "sharedSecret": payload["sharedSecret"],
            "serverVersion": payload["serverVersion"],
            "pluginsVersion": payload["pluginsVersion"],
            "baseUrl": host.base_url,
            "displayUrl": host.base_url,
            "productType": product,
            "description": payload["description"],
            "eventType": "installed",
            "installationId": payload["installationId"],
        }
        assert len(payload["sharedSecret"]) >= 32
        assert addon.events() == ["installed", "enabled"]
        assert addon.last("enabled").verdict == "HS256"
        assert "sharedSecret" not in addon.last("enabled").payload

        record = host.record
        assert [post.outcome for post in record.install_posts] == ["accepted"]
        (install,) = record.installs
        assert install.key == KEY
        assert install.plugin_uri == addon.descriptor_url
        assert install.descriptor == addon.descriptor
        assert json.loads(install.descriptor_text) == addon.descriptor
        assert install.client_key == host.client_key
        assert install.shared_secret == payload["sharedSecret"]
        assert install.signed == "RS256"
        assert install.callback_status == 204
        assert install.replaced is False
        assert record.plugins[KEY]["enabled"] is True
        assert [(c.event, c.status) for c in record.callbacks] == [
            ("installed", 204),
            ("enabled", 204),
        ]
        json.dumps(record.to_dict())


@pytest.mark.parametrize("context_path", ["/jira", "/wiki"])
async def test_the_manage_apps_page_the_dashboard_opens_lists_the_installed_apps(
    session: aiohttp.ClientSession, context_path: str
) -> None:
    async with running_addon() as addon, run_host(context_path=context_path) as host:
        addon.keys_url = host.keys_url
        upm = Upm(session, host)
        manage_apps = f"{host.base_url}{UPM_PAGE}"  # what `o` opens, without a login
        empty = await upm.call("GET", manage_apps, auth=None)
        assert (empty.status, empty.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
        assert "No user-installed apps." in empty.text
        await upm.poll((await upm.post_install(addon.descriptor_url)).json())
        page = await upm.call("GET", manage_apps, auth=None)
        assert page.status == 200
        assert f"<code>{KEY}</code>" in page.text
        assert "enabled" in page.text


async def test_task_moves_through_states_with_an_install_delay(
    upm: Upm, host: EmulatedHost, addon: FakeAddon
) -> None:
    host.set_install_delay(400)
    posted = await upm.post_install(addon.descriptor_url)
    answers = await upm.poll(posted.json())
    kinds = [a.json()["status"]["contentType"] if a.status == 200 else a.status for a in answers]
    assert kinds[0] == DOWNLOADING
    assert INSTALLING in kinds
    assert kinds[-1] == 303
    assert kinds.index(INSTALLING) > kinds.index(DOWNLOADING)
    assert {a.json()["pingAfter"] for a in answers} == {20}
    # `alternate` answers like `self`.
    alternate = await upm.call("GET", host.origin + posted.json()["links"]["alternate"])
    assert alternate.status == 303


@pytest.mark.parametrize("status", [500, 401, 302, 202])
async def test_rejected_installed_callback_fails_the_task(
    upm: Upm, host: EmulatedHost, addon: FakeAddon, status: int
) -> None:
    addon.statuses["installed"] = status
    final = await upm.install(addon.descriptor_url)
    assert final.status == 200
    body = final.json()
    assert body["status"]["done"] is True
    assert body["status"]["contentType"] == TASK_ERROR
    assert body["status"]["subCode"] == "connect.install.error.remote.host.bad.response"
    assert body["status"]["errorMessage"] == CALLBACK_FAILED.format(status)
    assert body["errorMessage"] == body["status"]["errorMessage"]
    assert host.record.installs == []
    assert host.record.plugins == {}
    assert host.record.failed_installs[0].key == KEY
    assert addon.events() == ["installed"]
    missing = await upm.call("GET", f"/rest/plugins/1.0/{KEY}-key")
    assert missing.status == 404


async def test_unreachable_installed_callback_fails_the_task(
    session: aiohttp.ClientSession, addon: FakeAddon
) -> None:
    async with closed_port_url() as nowhere, run_host(callback_timeout_s=5) as host:
        addon.make_descriptor(baseUrl=nowhere)
        final = await Upm(session, host).install(addon.descriptor_url)
    status = final.json()["status"]
    assert status["subCode"] == "connect.install.error.remote.host.bad.response"
    assert status["errorMessage"].startswith("The add-on host could not be reached (")
    assert host.record.callbacks[0].status is None
    assert host.record.callbacks[0].error


async def test_unreachable_descriptor_fails_the_task(upm: Upm, host: EmulatedHost) -> None:
    async with closed_port_url() as nowhere:
        final = await upm.install(f"{nowhere}/atlassian-connect.json")
    status = final.json()["status"]
    assert status["done"] is True
    assert status["subCode"] == "upm.pluginInstall.error.file.not.found"
    assert f"{nowhere}/atlassian-connect.json" in status["errorMessage"]
    assert host.record.failed_installs[0].sub_code == "upm.pluginInstall.error.file.not.found"


async def test_descriptor_answering_404_fails_the_task(upm: Upm, addon: FakeAddon) -> None:
    addon.descriptor_status = 404
    status = (await upm.install(addon.descriptor_url)).json()["status"]
    assert status["subCode"] == "upm.pluginInstall.error.file.not.found"
    assert status["errorMessage"] == (
        f"Unable to download the descriptor from {addon.descriptor_url}: HTTP 404 Not Found"
    )


async def test_non_http_plugin_uri_fails_the_task(upm: Upm) -> None:
    status = (await upm.install("ftp://127.0.0.1/atlassian-connect.json")).json()["status"]
    assert status["subCode"] == "upm.pluginInstall.error.file.not.found"
    assert "unsupported URI scheme 'ftp'" in status["errorMessage"]


async def test_malformed_json_fails_the_task(upm: Upm, addon: FakeAddon) -> None:
    addon.descriptor_text = '{"key": "x",'
    status = (await upm.install(addon.descriptor_url)).json()["status"]
    assert status["contentType"] == TASK_ERROR
    assert status["subCode"] == "upm.plugin.error.unexpected.error"
    assert status["errorMessage"].startswith("JSON is not well-formed: ")
    assert addon.events() == []


async def test_invalid_descriptor_fails_with_every_problem(upm: Upm, addon: FakeAddon) -> None:
    addon.make_descriptor(key="bad key!", lifecycle=())
    status = (await upm.install(addon.descriptor_url)).json()["status"]
    assert status["subCode"] == "connect.install.error.descriptor.validation"
    assert "$.key" in status["errorMessage"]
    assert "$.lifecycle" in status["errorMessage"]
    assert addon.events() == []


async def test_unrendered_base_url_fails_the_task(upm: Upm, addon: FakeAddon) -> None:
    addon.make_descriptor(baseUrl="{{localBaseUrl}}")
    status = (await upm.install(addon.descriptor_url)).json()["status"]
    assert status["subCode"] == "connect.install.error.descriptor.validation"
    assert "$.baseUrl" in status["errorMessage"]


async def test_dev_mode_off(upm: Upm, host: EmulatedHost, addon: FakeAddon) -> None:
    host.set_dev_mode(False)
    settings = (await upm.call("GET", "/rest/plugins/1.0/settings")).json()["settings"]
    dev_mode = [s for s in settings if s["key"] == "connectDeveloperListingsEnabled"]
    assert [s["value"] for s in dev_mode] == [False]
    assert len(settings) > 1

    status = (await upm.install(addon.descriptor_url)).json()["status"]
    assert status["subCode"] == "upm.pluginInstall.error.descriptor.not.from.marketplace"
    assert addon.events() == []

    host.set_dev_mode(True)
    settings = (await upm.call("GET", "/rest/plugins/1.0/settings")).json()["settings"]
    assert {s["key"]: s["value"] for s in settings}["connectDeveloperListingsEnabled"] is True
    assert (await upm.install(addon.descriptor_url)).status == 303


async def test_server_flavour(session: aiohttp.ClientSession, addon: FakeAddon) -> None:
    async with run_host(flavour="server", context_path="/confluence", product="confluence") as host:
        addon.keys_url = host.keys_url
        upm = Upm(session, host)
        settings = (await upm.call("GET", "/rest/plugins/1.0/settings")).json()["settings"]
        assert settings
        assert "connectDeveloperListingsEnabled" not in {s["key"] for s in settings}
        assert re.fullmatch(r"confluence:\d{8}", host.client_key)
        assert (await upm.install(addon.descriptor_url)).status == 303

        # Outside dev mode a plain-http baseUrl is refused.
        host.set_dev_mode(False)
        status = (await upm.install(addon.descriptor_url)).json()["status"]
        assert status["subCode"] == "connect.install.error.descriptor.validation"
        assert "https" in status["errorMessage"]


async def test_uploads_disabled(upm: Upm, host: EmulatedHost, addon: FakeAddon) -> None:
    host.set_uploads_enabled(False)
    answer = await upm.post_install(addon.descriptor_url)
    assert answer.status == 403
    assert answer.json()["subCode"] == "upm.plugin.upload.disabled"
    assert "-Dupm.plugin.upload.enabled=true" in answer.json()["errorMessage"]
    assert host.tasks == {}


async def test_require_signed_install(session: aiohttp.ClientSession, addon: FakeAddon) -> None:
    addon.make_descriptor(signed=False)
    async with run_host(require_signed_install=True) as host:
        status = (await Upm(session, host).install(addon.descriptor_url)).json()["status"]
    assert status["subCode"] == "connect.install.error.descriptor.validation"
    assert "signed-install" in status["errorMessage"]


async def test_reinstall_replaces_in_place_with_a_new_secret(
    upm: Upm, host: EmulatedHost, addon: FakeAddon
) -> None:
    assert (await upm.install(addon.descriptor_url)).status == 303
    first_secret = addon.shared_secret
    disabled = await upm.call(
        "PUT", f"/rest/plugins/1.0/{KEY}-key", data=json.dumps({"enabled": False})
    )
    assert disabled.json()["enabled"] is False

    addon.make_descriptor(name="Renamed add-on")
    assert (await upm.install(addon.descriptor_url)).status == 303

    first, second = host.record.installs
    assert second.replaced is True
    assert second.shared_secret != first.shared_secret
    assert addon.shared_secret == second.shared_secret != first_secret
    assert list(host.record.plugins) == [KEY]
    assert host.record.plugins[KEY]["name"] == "Renamed add-on"
    assert host.record.plugins[KEY]["enabled"] is False
    listed = (await upm.call("GET", "/rest/plugins/1.0/")).json()["plugins"]
    assert [p["name"] for p in listed if p["userInstalled"]] == ["Renamed add-on"]
    installs = [r for r in addon.received if r.event == "installed"]
    assert installs[0].payload["installationId"] == installs[1].payload["installationId"]
    # Disabled add-ons are not sent `enabled` after a reinstall.
    assert addon.events() == ["installed", "enabled", "disabled", "installed"]


async def test_legacy_signing(upm: Upm, host: EmulatedHost, addon: FakeAddon) -> None:
    addon.make_descriptor(signed=False)
    assert (await upm.install(addon.descriptor_url)).status == 303
    assert (await upm.install(addon.descriptor_url)).status == 303
    first, second = [r for r in addon.received if r.event == "installed"]
    assert first.verdict == "unsigned"
    assert "Authorization" not in first.headers
    # The add-on checked the reinstall against the secret of the first install.
    assert second.verdict == "HS256"
    assert second.claims is not None
    assert second.claims["qsh"] == INSTALLED_QSH
    assert second.claims["iss"] == host.client_key
    assert [i.signed for i in host.record.installs] == ["unsigned", "HS256"]

    assert (await upm.call("DELETE", f"/rest/plugins/1.0/{KEY}-key")).status == 204
    uninstalled = addon.last("uninstalled")
    assert uninstalled.verdict == "HS256"
    assert uninstalled.claims is not None
    assert uninstalled.claims["qsh"] == UNINSTALLED_QSH
    assert host.record.uninstalls[0].signed == "HS256"


async def test_add_on_without_authentication_gets_no_secret(upm: Upm, addon: FakeAddon) -> None:
    addon.make_descriptor(signed=False, lifecycle=("installed",), authentication={"type": "none"})
    assert (await upm.install(addon.descriptor_url)).status == 303
    installed = addon.last("installed")
    assert installed.verdict == "unsigned"
    assert "sharedSecret" not in installed.payload


async def test_lifecycle_path_with_a_query_counts_in_the_qsh(upm: Upm, addon: FakeAddon) -> None:
    addon.make_descriptor()["lifecycle"] = {"installed": "/installed?v=2&a=b%20c"}
    assert (await upm.install(addon.descriptor_url)).status == 303
    installed = addon.last("installed")
    assert installed.query == [("v", "2"), ("a", "b c")]
    assert installed.verdict == "RS256"


async def test_uninstall(upm: Upm, host: EmulatedHost, addon: FakeAddon) -> None:
    assert (await upm.install(addon.descriptor_url)).status == 303
    answer = await upm.call("DELETE", f"/rest/plugins/1.0/{KEY}-key")
    assert answer.status == 204
    assert addon.events() == ["installed", "enabled", "disabled", "uninstalled"]
    uninstalled = addon.last("uninstalled")
    assert uninstalled.verdict == "RS256"
    assert uninstalled.claims is not None
    assert uninstalled.claims["qsh"] == UNINSTALLED_QSH
    assert uninstalled.payload["eventType"] == "uninstalled"
    assert host.record.plugins == {}
    assert [(u.key, u.callback_status, u.signed) for u in host.record.uninstalls] == [
        (KEY, 204, "RS256")
    ]
    assert (await upm.call("GET", f"/rest/plugins/1.0/{KEY}-key")).status == 404
    assert (await upm.call("DELETE", f"/rest/plugins/1.0/{KEY}-key")).status == 404


async def test_failed_uninstalled_callback_is_only_recorded(
    upm: Upm, host: EmulatedHost, addon: FakeAddon
) -> None:
    assert (await upm.install(addon.descriptor_url)).status == 303
    addon.statuses["uninstalled"] = 500
    assert (await upm.call("DELETE", f"/rest/plugins/1.0/{KEY}-key")).status == 204
    assert host.record.uninstalls[0].callback_status == 500
    assert host.record.plugins == {}


async def test_enable_and_disable(upm: Upm, host: EmulatedHost, addon: FakeAddon) -> None:
    assert (await upm.install(addon.descriptor_url)).status == 303
    path = f"/rest/plugins/1.0/{KEY}-key"
    assert (await upm.call("PUT", path, data=json.dumps({"enabled": False}))).status == 200
    assert (await upm.call("GET", path)).json()["enabled"] is False
    assert (await upm.call("PUT", path, data=json.dumps({"enabled": False}))).status == 200
    assert (await upm.call("PUT", path, data=json.dumps({"enabled": True}))).status == 200
    assert addon.events() == ["installed", "enabled", "disabled", "enabled"]
    assert {r.verdict for r in addon.received[1:]} == {"HS256"}
    assert (await upm.call("PUT", path, data="{}")).status == 400
    unknown = await upm.call("PUT", "/rest/plugins/1.0/nope-key", data='{"enabled": true}')
    assert unknown.status == 404


async def test_not_found_and_system_plugins(upm: Upm) -> None:
    assert (await upm.call("GET", "/rest/plugins/1.0/unknown-key")).status == 404
    assert (await upm.call("DELETE", "/rest/plugins/1.0/unknown-key")).status == 404
    assert (await upm.call("GET", "/rest/plugins/1.0/pending/no-such-task")).status == 404
    listed = (await upm.call("GET", "/rest/plugins/1.0/")).json()["plugins"]
    system_key = listed[0]["key"]
    assert (await upm.call("GET", f"/rest/plugins/1.0/{system_key}-key")).status == 200
    refused = await upm.call("DELETE", f"/rest/plugins/1.0/{system_key}-key")
    assert refused.status == 403
    assert set(refused.json()) == {"errorMessage", "subCode"}


async def test_keys_endpoint(session: aiohttp.ClientSession, host: EmulatedHost) -> None:
    async with session.get(f"{host.keys_url}/{host.signing_key.kid}") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        assert (await response.text()).startswith("-----BEGIN PUBLIC KEY-----")
    async with session.get(f"{host.keys_url}/unknown") as response:
        assert response.status == 404


async def test_fail_next(upm: Upm, host: EmulatedHost) -> None:
    host.fail_next(2, 503, "Site is down")
    first = await upm.call("GET", "/rest/plugins/1.0/")
    second = await upm.call("GET", "/rest/plugins/1.0/settings", auth=None)
    third = await upm.call("GET", "/rest/plugins/1.0/")
    assert (first.status, second.status, third.status) == (503, 503, 200)
    assert first.json() == {"errorMessage": "Site is down"}
    assert [c.status for c in host.record.upm_calls] == [503, 503, 200]


async def test_wait_for_wakes_on_changes_and_times_out(
    upm: Upm, host: EmulatedHost, addon: FakeAddon
) -> None:
    with pytest.raises(TimeoutError):
        await host.wait_for(lambda record: bool(record.installs), timeout=0.05)
    posted = await upm.post_install(addon.descriptor_url)
    assert posted.status == 202
    await host.wait_for(lambda record: KEY in record.plugins, timeout=10)
    assert host.record.installs[0].key == KEY


# --- requests to the add-on ---------------------------------------------------------------------


async def test_send_request_as_iframe_and_webhook(
    session: aiohttp.ClientSession,
) -> None:
    async with running_addon("/app") as addon, run_host() as host:
        addon.keys_url = host.keys_url
        assert (await Upm(session, host).install(addon.descriptor_url)).status == 303

        page = await host.send_request(
            KEY, "/page/", query={"q": "a b", "issue": ["B-2", "A-1"], "star": "*"}
        )
        assert page.status == 200
        assert json.loads(page.body)["verdict"] == "HS256"
        received = addon.last("request")
        assert received.method == "GET"
        assert received.path == "/app/page/"
        assert ("q", "a b") in received.query
        assert dict(received.query)["xdm_e"] == host.origin
        assert received.claims is not None
        assert received.claims["iss"] == host.client_key
        assert "sub" in received.claims

        hook = await host.send_request(
            KEY, "/webhook", method="POST", style="webhook", body={"event": "issue_created"}
        )
        assert hook.status == 200
        received = addon.last("request")
        assert received.verdict == "HS256"
        assert received.headers["Authorization"].startswith("JWT ")
        assert received.payload == {"event": "issue_created"}
        assert [(r.style, r.status) for r in host.record.requests_sent] == [
            ("iframe", 200),
            ("webhook", 200),
        ]

        inline = await host.send_request(KEY, "/page?x=1&x=0", query={"y": "2"})
        assert json.loads(inline.body)["verdict"] == "HS256"
        assert [v for k, v in addon.last("request").query if k in "xy"] == ["1", "0", "2"]

        with pytest.raises(LookupError):
            await host.send_request("not.installed", "/page")


# --- control API and lifecycle of the server -----------------------------------------------------


async def test_control_api(
    session: aiohttp.ClientSession, upm: Upm, host: EmulatedHost, addon: FakeAddon
) -> None:
    control = f"{host.origin}/_emulator"
    assert (await upm.install(addon.descriptor_url)).status == 303

    async with session.get(f"{control}/record") as response:
        assert response.status == 200
        assert await response.json() == json.loads(json.dumps(host.record.to_dict()))
    async with session.get(control) as response:
        info = await response.json()
        assert info["base_url"] == host.base_url
        assert info["installed"] == [KEY]
        assert "admin" not in json.dumps(info)

    async with session.post(
        f"{control}/send",
        json={"key": KEY, "method": "GET", "path": "/page", "query": {"a": "1"}, "as": "iframe"},
    ) as response:
        assert response.status == 200
        assert (await response.json())["status"] == 200
    assert addon.last("request").verdict == "HS256"
    async with session.post(f"{control}/send", json={"key": "nope", "path": "/"}) as response:
        assert response.status == 404

    faults = {"fail_next": 1, "fail_status": 502, "dev_mode": False, "install_delay_ms": 5}
    async with session.post(f"{control}/faults", json=faults) as response:
        assert response.status == 200
    assert (host.settings.dev_mode, host.settings.install_delay_ms) == (False, 5)
    assert (await upm.call("GET", "/rest/plugins/1.0/")).status == 502
    switches = {"uploads_enabled": False, "require_signed_install": True}
    async with session.post(f"{control}/faults", json=switches) as response:
        assert response.status == 200
        assert (await response.json())["require_signed_install"] is True
    assert host.settings.uploads_enabled is False
    assert host.settings.require_signed_install is True
    for bad in ({"fail_next": True}, {"fail_next": -1}, {"nonsense": 1}, {"fail_status": 200}):
        async with session.post(f"{control}/faults", json=bad) as response:
            assert response.status == 400, bad

    async with session.post(f"{control}/reset") as response:
        assert response.status == 200
    assert host.record.to_dict()["installs"] == []
    assert host.installations == {}
    assert host.settings.dev_mode is True
    assert host.settings.uploads_enabled is True
    assert host.settings.require_signed_install is False
    assert (await upm.call("GET", "/rest/plugins/1.0/")).status == 200


def test_empty_record_as_json() -> None:
    record = HostRecord()
    assert record.to_dict() == {
        "upm_calls": [],
        "install_posts": [],
        "installs": [],
        "failed_installs": [],
        "uninstalls": [],
        "callbacks": [],
        "requests_sent": [],
        "webhooks": [],
        "rest_calls": [],
        "plugins": {},
    }


async def test_serve_forever_runs_until_cancelled(session: aiohttp.ClientSession) -> None:
    ready: asyncio.Queue[EmulatedHost] = asyncio.Queue()
    server = asyncio.create_task(serve_forever(HostSettings(), on_ready=ready.put_nowait))
    host = await asyncio.wait_for(ready.get(), timeout=10)
    answer = await Upm(session, host).call("GET", "/rest/plugins/1.0/")
    assert answer.status == 200
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server
    with pytest.raises(aiohttp.ClientConnectionError):
        await Upm(session, host).call("GET", "/rest/plugins/1.0/")


def test_settings_normalise_and_validate() -> None:
    assert HostSettings(context_path="wiki/").context_path == "/wiki"
    assert HostSettings(context_path="/").context_path == ""
    with pytest.raises(ValueError, match="product"):
        HostSettings(product="bamboo")
    with pytest.raises(ValueError, match="flavour"):
        HostSettings(flavour="datacenter")


async def test_taken_port_raises_and_leaks_nothing(host: EmulatedHost) -> None:
    with pytest.raises(OSError, match="in use"):
        async with run_host(port=host.settings.port):
            pass
