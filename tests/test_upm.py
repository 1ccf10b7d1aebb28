"""UpmClient against real aiohttp servers on loopback that script UPM's answers (PROTOCOL.md §2)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import itertools
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from connect_devloop.errors import (
    AuthenticationError,
    DevModeOffError,
    HostUnreachableError,
    InstallFailedError,
    UploadsDisabledError,
    UpmError,
)
from connect_devloop.secret import Secret
from connect_devloop.upm import (
    REMOTE_INSTALL_TYPE,
    URI_INSTALL_TYPE,
    Failure,
    HostIdentity,
    PluginInfo,
    Reply,
    UpmClient,
    explain_failed_task,
    explain_unauthorized,
    ping_after_seconds,
)

USERNAME = "dev@example.com"
PASSWORD = "Zq9-distinctive-Secret-4711-xyzzy"
ENCODED_CREDENTIALS = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
ADDON_KEY = "com.example.addon"
PLUGIN_URI = "https://tunnel.example.com/atlassian-connect.json"
CALLBACK_401_MESSAGE = (
    "The add-on host returned HTTP response code 401 when we tried to contact it during "
    "installation. Please try again later or contact the add-on vendor."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    at: float


@dataclass
class FakeUpm:
    """A scripted UPM: the happy path of PROTOCOL.md §2 by default, overridable per test."""

    context: str = "/jira"
    ping_after: int = 20
    polls_before_done: int = 1
    outcome: dict[str, Any] = field(default_factory=lambda: {"key": ADDON_KEY, "enabled": True})
    accepted_types: set[str] = field(
        default_factory=lambda: {REMOTE_INSTALL_TYPE, URI_INSTALL_TYPE}
    )
    settings: list[dict[str, Any]] | None = None
    refuse_valid_tokens: int = 0
    send_location: bool = True
    location_origin: str | None = None  # answer Location on another origin (a proxied host)
    overrides: dict[tuple[str, str], Handler] = field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    issued_tokens: list[str] = field(default_factory=list)
    used_tokens: set[str] = field(default_factory=set)
    task_polls: dict[str, int] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    origin: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def upm(self) -> str:
        return f"{self.context}/rest/plugins/1.0/"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def made(self, method: str, path_prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    @property
    def posts(self) -> list[Recorded]:
        return self.made("POST")

    @property
    def polls(self) -> list[Recorded]:
        return self.made("GET", f"{self.upm}pending/")

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                request.headers,
                await request.read(),
                time.monotonic(),
            )
        )
        override = self.overrides.get((request.method, request.path))
        if override is not None:
            return await override(request)
        expected = "Basic " + ENCODED_CREDENTIALS
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, text="Unauthorized (wrong username or password)")
        return await self.route(request)

    async def route(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        if path == f"{self.upm}settings" and method == "GET":
            if self.settings is None:
                return web.Response(status=404, text="Not Found")
            return web.json_response({"settings": self.settings})
        if path == self.upm and method in ("GET", "HEAD"):
            return self.root()
        if path == self.upm and method == "POST":
            return await self.start_install(request)
        if path.startswith(f"{self.upm}pending/") and method == "GET":
            return self.poll(path.rsplit("/", 1)[1])
        if path.startswith(self.upm) and path.endswith("-key"):
            key = path[len(self.upm) : -len("-key")]
            if method == "GET":
                if key in self.plugins:
                    return web.json_response(self.plugins[key])
                return error(404, "upm.plugin.not.found", f"plugin {key} not found")
            if method == "DELETE":
                return web.Response(status=204 if self.plugins.pop(key, None) else 404)
        return web.Response(status=404, text="Not Found")

    def root(self) -> web.Response:
        token = str(next(self._ids) * 7919 + 1_000_000)
        self.issued_tokens.append(token)
        return web.json_response(
            {"plugins": list(self.plugins.values()), "links": {}},
            headers={"upm-token": token},
            content_type="application/vnd.atl.plugins.installed+json",
        )

    async def start_install(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        if token not in self.issued_tokens or token in self.used_tokens:
            return error(403, "upm.error.invalid.token", "invalid token")
        self.used_tokens.add(token)
        if self.refuse_valid_tokens:
            self.refuse_valid_tokens -= 1
            return error(403, "upm.error.invalid.token", "invalid token")
        if request.content_type not in self.accepted_types:
            return web.Response(status=415, text="Unsupported Media Type")
        plugin_uri = json.loads(await request.read())["pluginUri"]
        task_id = f"task-{next(self._ids)}"
        self.task_polls[task_id] = 0
        headers = {}
        if self.send_location:
            headers["Location"] = (self.location_origin or self.origin) + self.task_path(task_id)
        return web.json_response(
            self.task(task_id, plugin_uri=plugin_uri), status=202, headers=headers
        )

    def task_path(self, task_id: str) -> str:
        return f"{self.upm}pending/{task_id}"

    def task(self, task_id: str, **status: Any) -> dict[str, Any]:
        return {
            "type": "INSTALL",
            "pingAfter": self.ping_after,
            "status": {
                "done": False,
                "statusCode": 200,
                "contentType": "application/vnd.atl.plugins.install.downloading+json",
                **status,
            },
            "links": {"self": self.task_path(task_id), "alternate": f"{self.upm}tasks/{task_id}"},
            "id": task_id,
        }

    def poll(self, task_id: str) -> web.Response:
        if task_id not in self.task_polls:
            return web.Response(status=404, text="Not Found")
        self.task_polls[task_id] += 1
        if self.task_polls[task_id] <= self.polls_before_done:
            return web.json_response(self.task(task_id))
        if "key" in self.outcome:
            key = self.outcome["key"]
            self.plugins[key] = {"name": "Example add-on", "version": "1.0.0", **self.outcome}
            return web.Response(status=303, headers={"Location": f"{self.upm}{key}-key"})
        failed = self.task(
            task_id,
            done=True,
            contentType="application/vnd.atl.plugins.task.install.err+json",
            **self.outcome,
        )
        return web.json_response(failed)


def error(status: int, sub_code: str, message: str) -> web.Response:
    return web.json_response({"errorMessage": message, "subCode": sub_code}, status=status)


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def started(
    fake: FakeUpm,
    session: aiohttp.ClientSession,
    *,
    request_timeout: float = 5.0,
    install_timeout: float = 20.0,
) -> AsyncIterator[UpmClient]:
    async with serving(fake.app()) as port:
        fake.origin = f"http://127.0.0.1:{port}"
        try:
            yield UpmClient(
                session,
                fake.origin + fake.context,
                USERNAME,
                Secret(PASSWORD),
                request_timeout=request_timeout,
                install_timeout=install_timeout,
            )
        finally:
            fake.release.set()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def fake() -> FakeUpm:
    return FakeUpm()


@pytest.fixture
async def client(fake: FakeUpm, session: aiohttp.ClientSession) -> AsyncIterator[UpmClient]:
    async with started(fake, session) as client:
        yield client


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG, logger="connect_devloop.upm")
    yield
    assert PASSWORD not in caplog.text
    assert ENCODED_CREDENTIALS not in caplog.text


def assert_no_secret(exc: BaseException) -> None:
    texts = [str(exc), repr(exc), getattr(exc, "message", ""), getattr(exc, "hint", "") or ""]
    cause = exc.__cause__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__
    for text in texts:
        assert PASSWORD not in text
        assert ENCODED_CREDENTIALS not in text


async def failure_of(awaitable: Awaitable[object], expected: type[UpmError] = UpmError) -> UpmError:
    with pytest.raises(expected) as info:
        await awaitable
    assert_no_secret(info.value)
    return info.value


def scripted(status: int, body: str = "", **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, headers=headers)

    return handler


def scripted_json(status: int, body: object, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    return handler


# --- construction ------------------------------------------------------------------------------


def test_base_url_loses_its_trailing_slash_and_repr_hides_the_password() -> None:
    client = UpmClient(None, "http://localhost:2990/jira/", "admin", Secret(PASSWORD))  # type: ignore[arg-type]
    assert client.base_url == "http://localhost:2990/jira"
    assert client.upm_url == "http://localhost:2990/jira/rest/plugins/1.0/"
    assert PASSWORD not in repr(client)
    assert PASSWORD not in str(vars(client))


@pytest.mark.parametrize("url", ["localhost:2990/jira", "ftp://host/jira", "/jira", ""])
def test_a_base_url_that_is_not_absolute_http_is_refused(url: str) -> None:
    with pytest.raises(UpmError, match="not an absolute http"):
        UpmClient(None, url, "admin", Secret(PASSWORD))  # type: ignore[arg-type]


# --- dev-mode check ----------------------------------------------------------------------------


async def test_dev_mode_on_passes_and_is_asked_only_once(fake: FakeUpm, client: UpmClient) -> None:
    fake.settings = [{"key": "connectDeveloperListingsEnabled", "value": True}]
    await client.check_dev_mode()
    await client.check_dev_mode()
    assert len(fake.made("GET", f"{fake.upm}settings")) == 1


async def test_dev_mode_off_raises_with_the_way_to_turn_it_on(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.settings = [
        {"key": "pacDisabled", "value": False},
        {"key": "connectDeveloperListingsEnabled", "value": False},
    ]
    error = await failure_of(client.check_dev_mode(), DevModeOffError)
    assert error.message.startswith(f"development mode is off on {client.base_url}")
    assert error.hint is not None
    assert '"Enable development mode"' in error.hint
    assert "Settings → Apps → Manage apps" in error.hint
    assert "2026" in error.hint
    assert "Connect end of support" in error.hint
    fake.settings = [{"key": "connectDeveloperListingsEnabled", "value": True}]
    await client.check_dev_mode()


async def test_dev_mode_key_absent_means_server_and_passes(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.settings = [{"key": "pacDisabled", "value": False}]
    await client.check_dev_mode()


async def test_dev_mode_settings_404_means_server_and_passes_once(
    fake: FakeUpm, client: UpmClient
) -> None:
    await client.check_dev_mode()
    await client.check_dev_mode()
    assert len(fake.made("GET", f"{fake.upm}settings")) == 1


async def test_dev_mode_check_by_a_non_admin_is_an_authentication_error(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("GET", f"{fake.upm}settings")] = scripted(403, "Forbidden")
    error = await failure_of(client.check_dev_mode(), AuthenticationError)
    assert error.message == (
        f"'{USERNAME}' is not allowed to manage apps on {client.base_url} "
        "(HTTP 403 while reading the UPM settings: Forbidden)"
    )


# --- token and listing -------------------------------------------------------------------------


async def test_fetch_token_returns_a_fresh_upm_token_each_time(
    fake: FakeUpm, client: UpmClient
) -> None:
    first = await client.fetch_token()
    second = await client.fetch_token()
    assert first != second
    assert [first, second] == fake.issued_tokens


async def test_fetch_token_falls_back_to_get_when_head_is_not_allowed(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("HEAD", fake.upm)] = scripted(405)
    token = await client.fetch_token()
    assert token == fake.issued_tokens[-1]
    assert [r.method for r in fake.requests] == ["HEAD", "GET"]


async def test_a_root_without_upm_token_header_is_explained(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("HEAD", fake.upm)] = scripted(200)
    fake.overrides[("GET", fake.upm)] = scripted_json(200, {"plugins": []})
    error = await failure_of(client.fetch_token())
    assert "without an upm-token header" in error.message


async def test_list_plugins_reads_key_enabled_name_version(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.plugins = {
        "a": {"key": "a", "enabled": True, "name": "A", "version": "1", "userInstalled": True},
        "b": {"key": "b", "enabled": False},
    }
    fake.overrides[("GET", fake.upm)] = scripted_json(
        200, {"plugins": [*fake.plugins.values(), "junk", {"name": "no key"}], "links": {}}
    )
    assert await client.list_plugins() == [
        PluginInfo("a", True, "A", "1"),
        PluginInfo("b", False, None, None),
    ]


async def test_requests_carry_basic_auth_and_accept_json(fake: FakeUpm, client: UpmClient) -> None:
    await client.list_plugins()
    (request,) = fake.requests
    assert request.headers["Authorization"] == "Basic " + ENCODED_CREDENTIALS
    assert "application/json" in request.headers["Accept"]


# --- install: the happy path -------------------------------------------------------------------


async def test_install_posts_polls_and_follows_the_303_to_the_plugin(
    fake: FakeUpm, client: UpmClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.polls_before_done = 2
    info = await client.install(PLUGIN_URI)
    assert info == PluginInfo(ADDON_KEY, True, "Example add-on", "1.0.0")

    (post,) = fake.posts
    assert post.path == fake.upm
    assert post.headers["Content-Type"] == REMOTE_INSTALL_TYPE
    assert "application/json" in post.headers["Accept"]
    assert json.loads(post.body) == {"pluginUri": PLUGIN_URI}
    assert post.query["token"] == fake.issued_tokens[-1]
    assert [r.path for r in fake.polls] == [f"{fake.upm}pending/task-2"] * 3
    assert fake.requests[-1].path == f"{fake.upm}{ADDON_KEY}-key"
    assert caplog.records, "the secret checks on logs must see some logging"
    assert all(post.query["token"] not in r.getMessage() for r in caplog.records)


async def test_install_reports_a_disabled_plugin_as_it_is(fake: FakeUpm, client: UpmClient) -> None:
    fake.outcome = {"key": ADDON_KEY, "enabled": False}
    info = await client.install(PLUGIN_URI)
    assert info.enabled is False


@pytest.mark.parametrize("send_location", [True, False], ids=["location", "links-self"])
async def test_install_under_wiki_joins_links_to_the_origin(
    session: aiohttp.ClientSession, send_location: bool
) -> None:
    fake = FakeUpm(context="/wiki", polls_before_done=2, send_location=send_location)
    async with started(fake, session) as client:
        assert (await client.install(PLUGIN_URI)).key == ADDON_KEY
    assert len(fake.polls) == 3
    assert all(r.path.startswith("/wiki/rest/plugins/1.0/") for r in fake.requests)
    assert not any(r.path.startswith("/wiki/wiki") for r in fake.requests)


async def test_install_follows_a_location_on_another_origin_on_its_own_origin(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.location_origin = "http://jira.internal:8080"
    assert (await client.install(PLUGIN_URI)).key == ADDON_KEY
    assert len(fake.polls) == 2


async def test_install_waits_ping_after_before_every_poll(fake: FakeUpm, client: UpmClient) -> None:
    fake.ping_after = 150
    fake.polls_before_done = 3
    await client.install(PLUGIN_URI)
    times = [fake.posts[0].at] + [r.at for r in fake.polls]
    assert len(times) == 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.145 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("ping_after", "seconds"),
    [(300, 0.3), (0, 0.01), (-5, 0.01), (60_000, 5.0), (None, 0.1), ("soon", 0.1), (True, 0.1)],
)
def test_ping_after_is_clamped_to_a_sane_range(ping_after: object, seconds: float) -> None:
    task = {} if ping_after is None else {"pingAfter": ping_after}
    assert ping_after_seconds(task) == pytest.approx(seconds)


async def test_install_fetches_a_fresh_token_for_every_post(
    fake: FakeUpm, client: UpmClient
) -> None:
    await client.install(PLUGIN_URI)
    await client.install(PLUGIN_URI)
    tokens = [post.query["token"] for post in fake.posts]
    assert len(tokens) == 2
    assert len(set(tokens)) == 2
    assert set(tokens) <= set(fake.issued_tokens)
    for post in fake.posts:
        before = [r for r in fake.requests if r.at <= post.at]
        assert before[-2].method in ("HEAD", "GET")
        assert before[-2].path == fake.upm


async def test_install_falls_back_to_the_uri_media_type_on_415_and_remembers_it(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.accepted_types = {URI_INSTALL_TYPE}
    await client.install(PLUGIN_URI)
    await client.install(PLUGIN_URI)
    assert [p.headers["Content-Type"] for p in fake.posts] == [
        REMOTE_INSTALL_TYPE,
        URI_INSTALL_TYPE,
        URI_INSTALL_TYPE,
    ]
    assert len({p.query["token"] for p in fake.posts}) == 3


async def test_install_refused_in_both_media_types_names_them(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.accepted_types = set()
    error = await failure_of(client.install(PLUGIN_URI))
    assert type(error) is UpmError
    assert error.status == 415
    assert REMOTE_INSTALL_TYPE in error.message
    assert URI_INSTALL_TYPE in error.message
    assert len(fake.posts) == 2


async def test_install_retries_once_with_a_new_token_after_invalid_token(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.refuse_valid_tokens = 1
    assert (await client.install(PLUGIN_URI)).key == ADDON_KEY
    tokens = [p.query["token"] for p in fake.posts]
    assert len(tokens) == 2
    assert tokens[0] != tokens[1]


async def test_install_gives_up_after_the_second_invalid_token(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.refuse_valid_tokens = 2
    error = await failure_of(client.install(PLUGIN_URI))
    assert type(error) is UpmError
    assert error.sub_code == "upm.error.invalid.token"
    assert (
        error.message == f"{client.base_url} refused two fresh UPM tokens in a row for '{USERNAME}'"
    )
    assert len(fake.posts) == 2


async def test_install_answered_by_a_final_plugin_body_instead_of_303(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("GET", f"{fake.upm}pending/task-2")] = scripted_json(
        200, {"key": ADDON_KEY, "enabled": True, "name": "Example", "version": "2"}
    )
    assert await client.install(PLUGIN_URI) == PluginInfo(ADDON_KEY, True, "Example", "2")


async def test_install_done_without_error_naming_the_plugin_is_followed(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.plugins[ADDON_KEY] = {"key": ADDON_KEY, "enabled": True}
    done = {
        "pingAfter": 10,
        "status": {
            "done": True,
            "contentType": "application/vnd.atl.plugins.install.complete+json",
            "plugin": {"key": ADDON_KEY, "links": {"self": f"{fake.upm}{ADDON_KEY}-key"}},
        },
    }
    fake.overrides[("GET", f"{fake.upm}pending/task-2")] = scripted_json(200, done)
    assert (await client.install(PLUGIN_URI)).key == ADDON_KEY


async def test_install_done_without_error_or_plugin_stops_after_a_few_polls(
    fake: FakeUpm, client: UpmClient
) -> None:
    done = {"pingAfter": 10, "status": {"done": True}}
    fake.overrides[("GET", f"{fake.upm}pending/task-2")] = scripted_json(200, done)
    error = await failure_of(client.install(PLUGIN_URI))
    assert "never says which app it installed" in error.message
    assert len(fake.made("GET", f"{fake.upm}pending/")) == 4


async def test_install_without_any_task_url_is_explained(fake: FakeUpm, client: UpmClient) -> None:
    fake.overrides[("POST", fake.upm)] = scripted_json(202, {"status": {"done": False}})
    error = await failure_of(client.install(PLUGIN_URI))
    assert "gave no task URL" in error.message


async def test_a_task_that_vanishes_is_explained(fake: FakeUpm, client: UpmClient) -> None:
    fake.overrides[("GET", f"{fake.upm}pending/task-2")] = scripted(404, "Not Found")
    error = await failure_of(client.install(PLUGIN_URI))
    assert error.status == 404
    assert error.message.startswith(f"the install task {fake.origin}{fake.upm}pending/task-2")


# --- install: failures -------------------------------------------------------------------------


async def test_failed_task_descriptor_not_from_marketplace_is_dev_mode_off(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.outcome = {"subCode": "upm.pluginInstall.error.descriptor.not.from.marketplace"}
    error = await failure_of(client.install(PLUGIN_URI), DevModeOffError)
    assert error.sub_code == "upm.pluginInstall.error.descriptor.not.from.marketplace"
    assert error.hint is not None
    assert "Enable development mode" in error.hint
    assert "2026" in error.hint


@pytest.mark.parametrize(
    "outcome",
    [
        {"subCode": "upm.pluginInstall.error.file.not.found"},
        {"subCode": "upm.pluginInstall.error.response.exception", "errorMessage": "timed out"},
        {"errorMessage": "Unable to download the plugin from the URL"},
    ],
    ids=["file-not-found", "response-exception", "download-message"],
)
async def test_failed_task_that_could_not_fetch_the_descriptor(
    fake: FakeUpm, client: UpmClient, outcome: dict[str, str]
) -> None:
    fake.outcome = outcome
    error = await failure_of(client.install(PLUGIN_URI), InstallFailedError)
    assert error.message.startswith(
        f"{client.base_url} could not fetch the descriptor from {PLUGIN_URI} ("
    )
    assert error.sub_code == outcome.get("subCode")
    assert error.hint is not None
    assert "80, 443 or 8080" in error.hint
    assert "tunnel" in error.hint


async def test_failed_task_callback_rejected_names_the_status_and_the_handler(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.outcome = {
        "subCode": "connect.install.error.remote.host.bad.response",
        "errorMessage": CALLBACK_401_MESSAGE,
    }
    error = await failure_of(client.install(PLUGIN_URI), InstallFailedError)
    assert error.message.startswith("the add-on rejected the installed callback with HTTP 401")
    assert CALLBACK_401_MESSAGE in error.message
    assert error.hint is not None
    assert "lifecycle.installed" in error.hint
    assert "JWT" in error.hint
    assert "200, 201 or 204" in error.hint


async def test_failed_task_with_uploads_disabled(fake: FakeUpm, client: UpmClient) -> None:
    fake.outcome = {"subCode": "upm.plugin.upload.disabled"}
    error = await failure_of(client.install(PLUGIN_URI), UploadsDisabledError)
    assert error.hint is not None
    assert "-Dupm.plugin.upload.enabled=true" in error.hint


async def test_other_failed_tasks_keep_sub_code_and_message_verbatim(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.outcome = {
        "subCode": "upm.plugin.error.unexpected.error",
        "errorMessage": "JSON is not well-formed",
    }
    error = await failure_of(client.install(PLUGIN_URI), InstallFailedError)
    assert type(error) is InstallFailedError
    assert error.message == (
        f"{client.base_url} failed to install {PLUGIN_URI}: JSON is not well-formed "
        "(subCode upm.plugin.error.unexpected.error)"
    )
    assert error.sub_code == "upm.plugin.error.unexpected.error"


async def test_a_failed_task_with_only_an_error_content_type_is_a_failure(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.outcome = {}
    error = await failure_of(client.install(PLUGIN_URI), InstallFailedError)
    assert error.message.endswith(f"{PLUGIN_URI}: no error message")


async def test_post_refused_because_uploads_are_disabled(fake: FakeUpm, client: UpmClient) -> None:
    fake.overrides[("POST", fake.upm)] = scripted_json(
        403, {"subCode": "upm.plugin.upload.disabled", "errorMessage": "Uploading is disabled"}
    )
    error = await failure_of(client.install(PLUGIN_URI), UploadsDisabledError)
    assert error.status == 403
    assert error.hint is not None
    assert "-Dupm.plugin.upload.enabled=true" in error.hint


async def test_post_refused_because_dev_mode_is_off(fake: FakeUpm, client: UpmClient) -> None:
    fake.overrides[("POST", fake.upm)] = scripted_json(
        403, {"subCode": "upm.pluginInstall.error.descriptor.not.from.marketplace"}
    )
    await failure_of(client.install(PLUGIN_URI), DevModeOffError)


@pytest.mark.parametrize(
    "sub_code",
    ["upm.pluginInstall.error.invalid.relative.uri", "upm.pluginInstall.error.invalid.uri.syntax"],
)
async def test_post_refused_for_a_bad_uri_names_it(
    fake: FakeUpm, client: UpmClient, sub_code: str
) -> None:
    fake.overrides[("POST", fake.upm)] = scripted_json(400, {"subCode": sub_code})
    error = await failure_of(client.install("atlassian-connect.json"), InstallFailedError)
    assert error.message.startswith(
        f"{client.base_url} rejected the descriptor URL 'atlassian-connect.json'"
    )
    assert error.status == 400
    assert error.sub_code == sub_code


async def test_post_by_a_non_admin_is_an_authentication_error(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("POST", fake.upm)] = scripted(403, "You are not an administrator")
    error = await failure_of(client.install(PLUGIN_URI), AuthenticationError)
    assert "is not allowed to manage apps" in error.message
    assert "You are not an administrator" in error.message


async def test_install_timeout_while_the_task_keeps_running(
    fake: FakeUpm, session: aiohttp.ClientSession
) -> None:
    fake.polls_before_done = 10_000
    async with started(fake, session, install_timeout=0.4) as client:
        started_at = time.monotonic()
        error = await failure_of(client.install(PLUGIN_URI), HostUnreachableError)
        assert time.monotonic() - started_at < 2
    assert error.message.startswith(
        f"the host is still installing {PLUGIN_URI} after 0.4 s (last state: downloading)"
    )
    assert error.hint is not None
    assert "tunnel" in error.hint
    assert error.hint.endswith("Save the descriptor again to retry.")


async def test_install_timeout_before_the_host_accepts_the_post(
    fake: FakeUpm, session: aiohttp.ClientSession
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await fake.release.wait()
        return web.Response(status=500)

    fake.overrides[("POST", fake.upm)] = hang
    async with started(fake, session, install_timeout=0.3) as client:
        error = await failure_of(client.install(PLUGIN_URI), HostUnreachableError)
    assert error.message == (
        f"{client.base_url} did not accept the install of {PLUGIN_URI} within 0.3 s"
    )


# --- status mapping ----------------------------------------------------------------------------


async def test_401_is_an_authentication_error_with_the_hosts_words(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("GET", fake.upm)] = scripted(401, "Basic authentication failed")
    error = await failure_of(client.list_plugins(), AuthenticationError)
    assert error.status == 401
    assert error.message == (
        f"{client.base_url} rejected the login of '{USERNAME}': wrong username or "
        "password/API token (HTTP 401: Basic authentication failed)"
    )
    assert error.hint is not None
    assert "admin/admin" in error.hint


async def test_wrong_password_through_token_fetch_is_an_authentication_error(
    fake: FakeUpm, session: aiohttp.ClientSession
) -> None:
    async with serving(fake.app()) as port:
        client = UpmClient(
            session, f"http://127.0.0.1:{port}/jira", USERNAME, Secret(PASSWORD + "-wrong")
        )
        error = await failure_of(client.install(PLUGIN_URI), AuthenticationError)
    assert "wrong username or password/API token" in error.message
    assert not fake.posts


def reply(status: int, text: str = "", **headers: str) -> Reply:
    return Reply(
        "GET", "https://x/rest/plugins/1.0/", status, CIMultiDictProxy(CIMultiDict(headers)), text
    )


@pytest.mark.parametrize(
    ("base_url", "username", "expected"),
    [
        ("https://acme.atlassian.net/wiki", "me", ["id.atlassian.com", "'me' is not an e-mail"]),
        ("https://acme.atlassian.net", "me@acme.com", ["API token", "does not work"]),
        ("http://localhost:2990/jira", "admin", ["admin/admin"]),
        ("https://jira.acme.com", "jdoe", ["Server/Data Center", "id.atlassian.com"]),
    ],
)
def test_401_hint_fits_the_kind_of_host(base_url: str, username: str, expected: list[str]) -> None:
    error = explain_unauthorized(reply(401), HostIdentity(base_url, username))
    assert error.hint is not None
    for fragment in expected:
        assert fragment in error.hint


async def test_captcha_lockout_is_told_apart_from_a_wrong_password(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("GET", fake.upm)] = scripted(
        403,
        "",
        **{
            "X-Seraph-LoginReason": "AUTHENTICATION_DENIED",
            "X-Authentication-Denied-Reason": "CAPTCHA_CHALLENGE; login-url=/login.jsp",
        },
    )
    error = await failure_of(client.list_plugins(), AuthenticationError)
    assert "CAPTCHA" in error.message


async def test_403_on_listing_is_not_an_admin(fake: FakeUpm, client: UpmClient) -> None:
    fake.overrides[("GET", fake.upm)] = scripted(403, "Forbidden")
    error = await failure_of(client.list_plugins(), AuthenticationError)
    assert error.hint is not None
    assert "administrator" in error.hint
    assert f"{client.base_url}/plugins/servlet/upm" in error.hint


async def test_404_on_the_upm_base_names_the_url_and_context_paths(
    fake: FakeUpm, session: aiohttp.ClientSession
) -> None:
    async with serving(fake.app()) as port:
        base = f"http://127.0.0.1:{port}/wiki"
        client = UpmClient(session, base, USERNAME, Secret(PASSWORD))
        error = await failure_of(client.list_plugins())
        assert error.message == f"no UPM REST API at {base}/rest/plugins/1.0/ (HTTP 404)"
        assert error.hint is not None
        assert "/wiki" in error.hint
        assert "/jira" in error.hint
        assert "/confluence" in error.hint
        # "not installed" must not hide a wrong context path
        await failure_of(client.uninstall(ADDON_KEY))
        await failure_of(client.get_plugin(ADDON_KEY))


async def test_5xx_is_an_upm_error_with_status_and_excerpt(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("GET", fake.upm)] = scripted(503, "Service   Unavailable\n" + "x" * 500)
    error = await failure_of(client.list_plugins())
    assert type(error) is UpmError
    assert error.status == 503
    assert "HTTP 503 while listing the installed apps" in error.message
    assert "Service Unavailable xxx" in error.message
    assert len(error.message) < 400


async def test_html_where_json_was_expected_quotes_the_title(
    fake: FakeUpm, client: UpmClient
) -> None:
    page = "<!DOCTYPE html><html><head><title>Log in - Acme SSO</title></head><body>…</body></html>"
    fake.overrides[("GET", fake.upm)] = scripted(200, page, **{"Content-Type": "text/html"})
    error = await failure_of(client.list_plugins())
    assert error.message.endswith("instead of JSON: Log in - Acme SSO")
    assert error.hint is not None
    assert "SSO" in error.hint


async def test_a_redirect_is_reported_not_followed(fake: FakeUpm, client: UpmClient) -> None:
    fake.overrides[("GET", fake.upm)] = scripted(302, Location="https://sso.example.com/login")
    error = await failure_of(client.list_plugins())
    assert "redirected GET" in error.message
    assert "https://sso.example.com/login" in error.message
    assert len(fake.requests) == 1


async def test_bodies_quoted_in_errors_are_scrubbed_of_credentials(
    fake: FakeUpm, client: UpmClient
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=500, text=f"{request.headers['Authorization']} {PASSWORD}")

    fake.overrides[("GET", fake.upm)] = echo
    error = await failure_of(client.list_plugins())
    assert "Basic *** ***" in error.message


async def test_the_password_never_shows_in_any_failure(
    fake: FakeUpm, client: UpmClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.outcome = {"subCode": "upm.plugin.error.unexpected.error", "errorMessage": PASSWORD}
    error = await failure_of(client.install(PLUGIN_URI), InstallFailedError)
    assert "***" in error.message
    fake.overrides[("GET", fake.upm)] = scripted(401, PASSWORD)
    await failure_of(client.list_plugins(), AuthenticationError)
    assert caplog.records
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


# --- get_plugin and uninstall ------------------------------------------------------------------


async def test_get_plugin_returns_the_plugin_or_none(fake: FakeUpm, client: UpmClient) -> None:
    fake.plugins[ADDON_KEY] = {"key": ADDON_KEY, "enabled": False, "name": "N", "version": "3"}
    assert await client.get_plugin(ADDON_KEY) == PluginInfo(ADDON_KEY, False, "N", "3")
    assert await client.get_plugin("com.example.other") is None


async def test_uninstall_removes_then_reports_not_installed(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.plugins[ADDON_KEY] = {"key": ADDON_KEY, "enabled": True}
    assert await client.uninstall(ADDON_KEY) is True
    assert await client.uninstall(ADDON_KEY) is False
    deletes = fake.made("DELETE")
    assert [r.path for r in deletes] == [f"{fake.upm}{ADDON_KEY}-key"] * 2
    assert all("token" not in r.query for r in deletes)


async def test_uninstall_refused_carries_the_hosts_error(fake: FakeUpm, client: UpmClient) -> None:
    fake.overrides[("DELETE", f"{fake.upm}{ADDON_KEY}-key")] = scripted_json(
        403, {"errorMessage": "Plugin is not uninstallable", "subCode": "upm.uninstall.error"}
    )
    error = await failure_of(client.uninstall(ADDON_KEY))
    assert type(error) is UpmError
    assert error.sub_code == "upm.uninstall.error"
    assert error.message == (
        f"{client.base_url} refused to uninstall {ADDON_KEY}: Plugin is not uninstallable "
        "(subCode upm.uninstall.error)"
    )


async def test_uninstall_by_a_non_admin_is_an_authentication_error(
    fake: FakeUpm, client: UpmClient
) -> None:
    fake.overrides[("DELETE", f"{fake.upm}{ADDON_KEY}-key")] = scripted(403, "Forbidden")
    await failure_of(client.uninstall(ADDON_KEY), AuthenticationError)


# --- unreachable hosts -------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_connection_refused_names_the_url(session: aiohttp.ClientSession) -> None:
    base = f"http://127.0.0.1:{closed_port()}/jira"
    client = UpmClient(session, base, USERNAME, Secret(PASSWORD))
    error = await failure_of(client.list_plugins(), HostUnreachableError)
    assert error.message.startswith(f"cannot connect to {base}: connection refused (GET ")
    assert f"GET {base}/rest/plugins/1.0/" in error.message
    assert error.hint is not None
    assert "running" in error.hint
    assert isinstance(error.__cause__, aiohttp.ClientConnectorError)


async def test_a_host_that_does_not_answer_in_time(
    fake: FakeUpm, session: aiohttp.ClientSession
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await fake.release.wait()
        return web.Response()

    fake.overrides[("GET", fake.upm)] = hang
    async with started(fake, session, request_timeout=0.2) as client:
        error = await failure_of(client.list_plugins(), HostUnreachableError)
    assert error.message == (f"{client.base_url} did not answer GET {client.upm_url} within 0.2 s")


def self_signed_context(directory: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def test_an_untrusted_certificate_is_a_tls_error(
    fake: FakeUpm, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with serving(fake.app(), self_signed_context(tmp_path)) as port:
        base = f"https://127.0.0.1:{port}/jira"
        client = UpmClient(session, base, USERNAME, Secret(PASSWORD))
        error = await failure_of(client.list_plugins(), HostUnreachableError)
    assert error.message.startswith(f"the TLS certificate of {base} is not trusted")
    assert not fake.requests


async def test_https_to_a_plain_http_host_is_a_tls_error(
    fake: FakeUpm, session: aiohttp.ClientSession
) -> None:
    async with serving(fake.app()) as port:
        base = f"https://127.0.0.1:{port}/jira"
        client = UpmClient(session, base, USERNAME, Secret(PASSWORD))
        error = await failure_of(client.list_plugins(), HostUnreachableError)
    assert error.message.startswith(f"TLS handshake with {base} failed")
    assert error.hint is not None
    assert "scheme" in error.hint


def test_failed_task_explanations_without_a_server() -> None:
    host = HostIdentity("https://acme.atlassian.net/wiki", "me@acme.com")
    error = explain_failed_task(
        Failure("connect.install.error.remote.host.bad.response", None), host, PLUGIN_URI
    )
    assert error.message.startswith("the add-on rejected the installed callback from ")
    error = explain_failed_task(
        Failure(None, CALLBACK_401_MESSAGE.replace("401", "404")), host, PLUGIN_URI
    )
    assert "HTTP 404" in error.message
    assert error.hint is not None
    assert "path in the descriptor does not exist" in error.hint
