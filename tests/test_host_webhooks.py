"""Webhooks of the emulated host: an installed descriptor's ``modules.webhooks`` are POSTed to a
real add-on server on loopback when the product changes or when one is fired on demand (control
API, ``connect-dev host fire``), signed as Cloud signs them; the add-on here checks every token
itself (PyJWT and the qsh of the URL it received). Then the same through a real `connect-dev up`
(the proxy's JWT verdict) and to a real atlassian-connect-express app.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest
from aiohttp import web

from connect_devloop import jwt as connect_jwt
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.host.product import ISSUE_TYPES, Change
from connect_devloop.host.webhook_jql import UnsupportedJql, issue_filter
from connect_devloop.host.webhook_payloads import Site, build_payload, canned_issue

from .ace.npm import NPM_TIMEOUT_S
from .e2e import CONNECT_DEV, connect_dev_up, host_toml, write_config
from .keyrings import REPO_ROOT, subprocess_keyring_env
from .servers import serve
from .test_ace import ADDON_KEY, ace_app, ace_modules, free_port
from .test_ace import DESCRIPTOR as ACE_DESCRIPTOR
from .test_ace import write_config as write_ace_config

__all__ = ["ace_modules"]  # a fixture: imported so that pytest finds it here

KEY = "webhook-addon"
ADMIN = "Basic " + base64.b64encode(b"admin:admin").decode()
REMOTE_INSTALL = "application/vnd.atl.plugins.remote.install+json"


# --- an add-on that checks every webhook it gets ---------------------------------------------


@dataclass
class Hook:
    """One webhook the add-on got; ``verdict`` is "HS256", "unsigned" or "rejected: ..."."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    verdict: str
    claims: dict[str, Any] | None

    @property
    def payload(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


@dataclass
class WebhookAddon:
    webhooks: list[dict[str, Any]]
    base_path: str = ""
    url: str = ""
    secret: str | None = None
    hooks: list[Hook] = field(default_factory=list)
    status: int = 204
    answer: str = ""
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return self.url + self.base_path

    def descriptor(self) -> dict[str, Any]:
        return {
            "key": KEY,
            "name": "Webhook add-on",
            "baseUrl": self.base_url,
            "authentication": {"type": "jwt"},
            "apiMigrations": {"signed-install": True},
            "lifecycle": {"installed": "/installed"},
            "scopes": ["read"],
            "modules": {"webhooks": self.webhooks},
        }

    async def wait_hooks(self, count: int, timeout: float = 10.0) -> list[Hook]:
        async with asyncio.timeout(timeout):
            while len(self.hooks) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.hooks

    def verdict(self, request: web.Request) -> tuple[str, dict[str, Any] | None]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("JWT "):
            return "unsigned", None
        assert self.secret is not None
        try:
            claims = pyjwt.decode(header[4:], self.secret, algorithms=["HS256"])
        except pyjwt.InvalidTokenError as exc:
            return f"rejected: {exc}", None
        canonical = connect_jwt.canonical_request(
            "POST", request.path, request.query_string, self.base_path
        )
        if claims.get("qsh") != connect_jwt.query_string_hash(canonical):
            return f"rejected: qsh is not that of {canonical}", claims
        return "HS256", claims


@contextlib.asynccontextmanager
async def webhook_addon(
    webhooks: list[dict[str, Any]], base_path: str = ""
) -> AsyncIterator[WebhookAddon]:
    addon = WebhookAddon(webhooks, base_path)

    async def descriptor(request: web.Request) -> web.Response:
        return web.json_response(addon.descriptor())

    async def installed(request: web.Request) -> web.Response:
        addon.secret = (await request.json())["sharedSecret"]
        return web.Response(status=204)

    async def webhook(request: web.Request) -> web.Response:
        addon.in_flight += 1
        addon.max_in_flight = max(addon.max_in_flight, addon.in_flight)
        try:
            body = await request.read()
            await asyncio.sleep(addon.delay)
            verdict, claims = addon.verdict(request)
            addon.hooks.append(
                Hook(
                    request.path.removeprefix(base_path),
                    dict(request.query),
                    dict(request.headers),
                    body,
                    verdict,
                    claims,
                )
            )
            addon.changed.set()
        finally:
            addon.in_flight -= 1
        if not verdict.startswith("HS256"):
            return web.Response(status=401, text=verdict)
        return web.Response(status=addon.status, text=addon.answer)

    app = web.Application()
    app.router.add_get(f"{base_path}/atlassian-connect.json", descriptor)
    app.router.add_post(f"{base_path}/installed", installed)
    app.router.add_post(f"{base_path}/{{tail:.*}}", webhook)
    async with serve(app) as url:
        addon.url = url
        yield addon


async def install(host: EmulatedHost, addon: WebhookAddon) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": ADMIN}) as session:
        async with session.head(host.upm_url) as answer:
            token = answer.headers["upm-token"]
        async with session.post(
            f"{host.upm_url}?token={token}",
            data=json.dumps({"pluginUri": f"{addon.base_url}/atlassian-connect.json"}),
            headers={"Content-Type": REMOTE_INSTALL},
        ) as answer:
            assert answer.status == 202, await answer.text()
    await host.wait_for(lambda record: KEY in record.plugins, timeout=10)


@contextlib.asynccontextmanager
async def installed(
    webhooks: list[dict[str, Any]], base_path: str = "", **settings: Any
) -> AsyncIterator[tuple[EmulatedHost, WebhookAddon]]:
    async with webhook_addon(webhooks, base_path) as addon, run_host(**settings) as host:
        await install(host, addon)
        yield host, addon


async def control(
    host: EmulatedHost, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{host.origin}{path}", json=body) as answer,
    ):
        return answer.status, await answer.json()


# --- product changes ----------------------------------------------------------------------------


async def test_a_new_issue_is_posted_to_the_declared_url_signed_as_cloud_signs_it() -> None:
    webhooks = [{"event": "jira:issue_created", "url": "/hooks/created?issue={issue.key}"}]
    async with installed(webhooks, base_path="/app") as (host, addon):
        product = host.product
        admin = product.default_user()
        issue = product.create_issue(
            product.projects["DEMO"], "Crash on save", ISSUE_TYPES["bug"], admin
        )
        [hook] = await addon.wait_hooks(1)
        assert hook.path == "/hooks/created"
        assert hook.query == {"issue": issue.key}
        assert hook.verdict == "HS256"
        assert hook.claims is not None
        assert hook.claims["iss"] == host.client_key
        assert hook.claims["exp"] - hook.claims["iat"] == 180
        assert hook.headers["Content-Type"] == "application/json"
        assert hook.headers["X-Atlassian-Webhook-Identifier"]
        payload = hook.payload
        assert sorted(payload) == [
            "issue",
            "issue_event_type_name",
            "timestamp",
            "user",
            "webhookEvent",
        ]
        assert payload["webhookEvent"] == "jira:issue_created"
        assert payload["issue_event_type_name"] == "issue_created"
        assert payload["issue"]["key"] == issue.key
        assert payload["issue"]["fields"]["summary"] == "Crash on save"
        assert payload["issue"]["fields"]["issuetype"]["name"] == "Bug"
        assert payload["issue"]["fields"]["project"]["key"] == "DEMO"
        assert payload["user"]["accountId"] == admin.account_id
        assert abs(payload["timestamp"] - time.time() * 1000) < 60_000

        await host.wait_for(lambda record: len(record.webhooks) == 1, timeout=5)
        [delivery] = host.record.webhooks
        assert (delivery.event, delivery.key, delivery.status, delivery.trigger) == (
            "jira:issue_created",
            KEY,
            204,
            "change",
        )
        assert delivery.url == f"{addon.base_url}/hooks/created?issue={issue.key}"
        assert delivery.signed == "HS256"
        assert delivery.identifier == hook.headers["X-Atlassian-Webhook-Identifier"]
        assert delivery.duration_ms >= 0
        assert delivery.error is None


async def test_changes_made_through_the_sites_rest_api_fire_webhooks() -> None:
    webhooks = [
        {"event": "jira:issue_created", "url": "/created"},
        {"event": "comment_created", "url": "/comment?issue={issue.key}"},
    ]
    async with (
        installed(webhooks) as (host, addon),
        aiohttp.ClientSession(headers={"Authorization": ADMIN}) as session,
    ):
        fields = {"project": {"key": "DEMO"}, "summary": "From REST", "issuetype": {"name": "Bug"}}
        async with session.post(
            f"{host.base_url}/rest/api/2/issue", json={"fields": fields}
        ) as answer:
            assert answer.status == 201, await answer.text()
            key = (await answer.json())["key"]
        async with session.post(
            f"{host.base_url}/rest/api/2/issue/{key}/comment", json={"body": "Seen."}
        ) as answer:
            assert answer.status == 201, await answer.text()
        created, commented = await addon.wait_hooks(2)
        assert (created.path, created.payload["issue"]["key"]) == ("/created", key)
        assert created.payload["issue"]["fields"]["summary"] == "From REST"
        assert (commented.path, commented.query) == ("/comment", {"issue": key})
        assert commented.payload["comment"]["body"] == "Seen."
        assert {created.verdict, commented.verdict} == {"HS256"}


async def test_an_edit_carries_a_changelog_and_a_comment_fires_its_event_and_an_update() -> None:
    webhooks = [
        {"event": "jira:issue_updated", "url": "/updated"},
        {"event": "comment_created", "url": "/comment"},
    ]
    async with installed(webhooks) as (host, addon):
        product = host.product
        admin = product.default_user()
        issue = product.issues["DEMO-3"]
        product.edit_issue(issue, {"summary": "Export as CSV and JSON", "status": "Done"}, admin)
        [edit] = await addon.wait_hooks(1)
        assert edit.path == "/updated"
        assert edit.payload["issue_event_type_name"] == "issue_generic"
        changes = {item["field"]: item for item in edit.payload["changelog"]["items"]}
        assert changes["summary"]["fromString"] == "Export issues as CSV"
        assert changes["summary"]["toString"] == "Export as CSV and JSON"
        assert (changes["status"]["fromString"], changes["status"]["toString"]) == (
            "To Do",
            "Done",
        )
        assert "updated" not in changes

        product.add_comment(issue, "Shipped in 1.2.", admin)
        hooks = await addon.wait_hooks(3)
        comment, update = hooks[1], hooks[2]
        assert (comment.path, update.path) == ("/comment", "/updated")
        assert sorted(comment.payload) == ["comment", "issue", "timestamp", "webhookEvent"]
        assert comment.payload["comment"]["body"] == "Shipped in 1.2."
        assert comment.payload["comment"]["author"]["accountId"] == admin.account_id
        assert comment.payload["issue"]["key"] == "DEMO-3"
        assert sorted(comment.payload["issue"]["fields"]) == [
            "assignee",
            "issuetype",
            "priority",
            "project",
            "status",
            "summary",
        ]
        assert update.payload["issue_event_type_name"] == "issue_commented"
        assert update.payload["comment"]["id"] == comment.payload["comment"]["id"]
        assert "changelog" not in update.payload
        await host.wait_for(lambda record: len(record.webhooks) == 3, timeout=5)
        assert [d.event for d in host.record.webhooks] == [
            "jira:issue_updated",
            "comment_created",
            "jira:issue_updated",
        ]


async def test_a_confluence_page_change_has_confluences_payload() -> None:
    webhooks = [
        {"event": "page_created", "url": "/page"},
        {"event": "page_updated", "url": "/page"},
    ]
    async with installed(webhooks, context_path="/wiki", product="confluence") as (host, addon):
        product = host.product
        admin = product.default_user()
        page = product.create_page(product.spaces["DEMO"], "Release notes", "<p>1.0</p>", admin)
        product.update_page(page, admin, body="<p>1.1</p>")
        created, updated = await addon.wait_hooks(2)
        assert sorted(created.payload) == ["accountType", "page", "timestamp", "userAccountId"]
        assert created.payload["userAccountId"] == admin.account_id
        page_json = created.payload["page"]
        assert page_json["id"] == int(page.id)
        assert (page_json["title"], page_json["spaceKey"], page_json["contentType"]) == (
            "Release notes",
            "DEMO",
            "page",
        )
        assert page_json["version"] == 1
        assert page_json["creatorAccountId"] == admin.account_id
        assert page_json["self"].startswith(f"{host.base_url}/spaces/DEMO/pages/{page.id}")
        assert page_json["creationDate"] > 0
        assert updated.payload["page"]["version"] == 2
        assert updated.payload["updateTrigger"] == "edit_page"


async def test_changes_never_wait_for_the_add_on_which_gets_them_one_at_a_time_in_order() -> None:
    async with installed([{"event": "jira:issue_created", "url": "/created"}]) as (host, addon):
        addon.delay = 0.2
        product = host.product
        admin, kind = product.default_user(), ISSUE_TYPES["task"]
        started = time.perf_counter()
        created = [
            product.create_issue(product.projects["DEMO"], f"Issue {n}", kind, admin).key
            for n in range(4)
        ]
        assert time.perf_counter() - started < 0.5  # 4 * 0.2 s if a change waited
        hooks = await addon.wait_hooks(4)
        assert [hook.payload["issue"]["key"] for hook in hooks] == created
        assert addon.max_in_flight == 1
        await host.wait_for(lambda record: len(record.webhooks) == 4, timeout=5)
        assert all(d.duration_ms >= 150 for d in host.record.webhooks)


async def test_excluded_bodies_filters_and_property_keys() -> None:
    webhooks: list[dict[str, Any]] = [
        {"event": "jira:issue_created", "url": "/bare", "excludeBody": True},
        {
            "event": "jira:issue_created",
            "url": "/bugs",
            "filter": "project = DEMO AND issuetype = Bug",
        },
        {"event": "jira:issue_created", "url": "/other", "filter": "project = OTHER"},
        {"event": "jira:issue_created", "url": "/fuzzy", "filter": "summary ~ crash"},
        {"event": "jira:issue_created", "url": "/props", "propertyKeys": ["colour", "absent"]},
    ]
    async with installed(webhooks) as (host, addon):
        site = Site(host.base_url, "jira")
        issue = canned_issue(site, "DEMO-9", {"accountId": "a"}, 0)
        issue["fields"]["issuetype"]["name"] = "Bug"
        issue["properties"] = {"colour": "red", "size": 3}
        change = Change("jira:issue_created", issue, None, {"accountId": "a"}, 1)
        host.webhooks.on_change(change)
        hooks = await addon.wait_hooks(4)
        assert [hook.path for hook in hooks] == ["/bare", "/bugs", "/fuzzy", "/props"]
        bare, bugs, _, props = hooks
        assert bare.body == b""
        assert bare.verdict == "HS256"
        assert bugs.payload["issue"]["key"] == "DEMO-9"
        assert "properties" not in bugs.payload["issue"]
        assert props.payload["issue"]["properties"] == [{"key": "colour", "value": "red"}]
        await host.wait_for(lambda record: len(record.webhooks) == 4, timeout=5)
        filters = {
            d.url.rpartition("/")[2]: (d.filter, d.body_excluded) for d in host.record.webhooks
        }
        assert filters["bare"] == ("", True)
        assert filters["bugs"] == ("matched", False)
        assert filters["fuzzy"][0].startswith("not applied: the field 'summary' is not evaluated")


async def test_nothing_is_sent_for_another_product_or_a_disabled_app() -> None:
    webhooks = [{"event": "jira:issue_created", "url": "/created"}]
    async with installed(webhooks) as (host, addon):
        host.webhooks.on_change(Change("page_created", {"id": "1"}, None, {}, 1))
        host.installations[KEY].enabled = False
        status, result = await control(
            host, "POST", "/_emulator/webhooks/fire", {"event": "jira:issue_created"}
        )
        assert status == 200
        assert result["deliveries"] == []
        assert [s["reason"] for s in result["skipped"]] == ["the app is disabled"]
        await asyncio.sleep(0.1)
        assert addon.hooks == []
        assert host.record.webhooks == []


# --- failures -------------------------------------------------------------------------------------


async def test_every_failure_is_recorded_with_the_add_ons_answer_or_the_reason() -> None:
    async with installed([{"event": "jira:issue_deleted", "url": "/deleted"}]) as (host, addon):
        addon.status, addon.answer = 500, "boom " * 1000
        result = await host.webhooks.fire("jira:issue_deleted", issue="DEMO-1")
        [delivery] = result.deliveries
        assert delivery.status == 500
        assert delivery.answer.startswith("boom boom")
        assert len(delivery.answer) == 1001  # 1000 characters and "…"

        # The add-on went away: the site says why no answer came.
        host.installations[KEY].descriptor["baseUrl"] = "http://127.0.0.1:9"
        result = await host.webhooks.fire("jira:issue_deleted", issue="DEMO-1")
        [delivery] = result.deliveries
        assert delivery.status is None
        assert delivery.error is not None
        assert "ClientConnector" in delivery.error
        assert delivery.url == "http://127.0.0.1:9/deleted"
        assert [d.status for d in host.record.webhooks] == [500, None]


# --- firing on demand -----------------------------------------------------------------------------


async def test_the_control_api_fires_one_and_lists_deliveries_and_declarations() -> None:
    webhooks = [
        {"event": "jira:issue_updated", "url": "/updated/{project.key}/{issue.id}"},
        {"event": "comment_created", "url": "/comment", "filter": "project = NOPE"},
    ]
    async with installed(webhooks) as (host, addon):
        status, result = await control(
            host,
            "POST",
            "/_emulator/webhooks/fire",
            {"event": "jira:issue_updated", "issue": "DEMO-2"},
        )
        assert status == 200, result
        [delivery] = result["deliveries"]
        [hook] = addon.hooks
        assert hook.path == f"/updated/DEMO/{hook.payload['issue']['id']}"
        assert hook.payload["issue"]["key"] == "DEMO-2"
        assert hook.payload["issue_event_type_name"] == "issue_updated"
        assert (delivery["status"], delivery["trigger"], delivery["url"]) == (
            204,
            "fire",
            addon.url + hook.path,
        )
        assert result["declared"] == {KEY: ["comment_created", "jira:issue_updated"]}

        status, result = await control(
            host, "POST", "/_emulator/webhooks/fire", {"event": "comment_created"}
        )
        assert result["deliveries"] == []
        assert result["skipped"] == [
            {
                "key": KEY,
                "event": "comment_created",
                "url": "/comment",
                "reason": "the filter 'project = NOPE' does not match DEMO-3",
            }
        ]

        status, listing = await control(host, "GET", "/_emulator/webhooks")
        assert status == 200
        assert "jira:issue_created" in listing["events"]
        assert listing["declared"] == {
            KEY: [
                {"event": "jira:issue_updated", "url": "/updated/{project.key}/{issue.id}"},
                {"event": "comment_created", "url": "/comment", "filter": "project = NOPE"},
            ]
        }
        assert [d["event"] for d in listing["deliveries"]] == ["jira:issue_updated"]
        _, record = await control(host, "GET", "/_emulator/record")
        assert record["webhooks"] == listing["deliveries"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"event": "page_created"}, 400, "an emulated jira site does not fire 'page_created'"),
        ({"event": "jira:issue_created", "page": "1"}, 400, "a page is a Confluence thing"),
        ({"event": "jira:issue_created", "issue": 7}, 400, '"issue", "page" and "key" must be'),
        ({"issue": "DEMO-1"}, 400, '"event" must be a webhook event'),
        ({"event": "x", "issues": "DEMO-1"}, 400, "unknown fields: issues"),
    ],
)
async def test_the_control_api_refuses_what_it_cannot_fire(
    body: dict[str, Any], status: int, error: str
) -> None:
    async with run_host() as host:
        answer = await control(host, "POST", "/_emulator/webhooks/fire", body)
        assert answer[0] == status
        assert answer[1]["error"].startswith(error), answer


async def test_reset_forgets_deliveries_and_keeps_webhooks_working() -> None:
    async with installed([{"event": "jira:issue_created", "url": "/c"}]) as (host, addon):
        await host.webhooks.fire("jira:issue_created")
        assert len(host.record.webhooks) == 1
        host.reset()
        assert host.record.webhooks == []
        await install(host, addon)
        result = await host.webhooks.fire("jira:issue_created")
        assert [d.status for d in result.deliveries] == [204]


# --- connect-dev host fire ----------------------------------------------------------------------


async def run_fire(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "host",
        "fire",
        *args,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_connect_dev_host_fire_prints_each_delivery_and_exits_1_when_none_or_failed() -> None:
    webhooks = [{"event": "jira:issue_created", "url": "/created?k={issue.key}"}]
    async with installed(webhooks) as (host, addon):
        code, out, err = await run_fire(
            "jira:issue_created", "--issue", "DEMO-2", "--host", host.base_url
        )
        assert (code, err) == (0, "")
        [line] = out.splitlines()
        assert line.startswith("204  ")
        assert line.endswith(f" ms  POST {addon.url}/created?k=DEMO-2  ({KEY}, jira:issue_created)")

        code, out, err = await run_fire("comment_created", "--host", host.origin)
        assert (code, out) == (1, "")
        assert err == (
            "connect-dev: error: no webhook was delivered for comment_created\n"
            "  hint: No installed app declares comment_created in modules.webhooks. Declared:\n"
            f"        {KEY}: jira:issue_created\n"
        )

        addon.status, addon.answer = 503, "busy\nretry later"
        code, out, err = await run_fire("jira:issue_created", "--host", host.origin)
        assert code == 1
        assert out.startswith("503  ")
        assert out.rstrip().endswith(": busy")
        assert err.startswith("connect-dev: error: 1 of 1 delivery of jira:issue_created failed\n")

        code, out, err = await run_fire(
            "jira:issue_created", "--issue", "NOPE-1", "--host", host.origin
        )
        assert (code, out) == (1, "")
        assert err == (
            f"connect-dev: error: the emulated host at {host.origin} refused: the emulated site "
            "has no issue 'NOPE-1'\n"
            "  hint: Name an issue (--issue KEY) or page (--page ID) the site has.\n"
        )

        code, out, err = await run_fire("page_created", "--host", host.origin)
        assert code == 1
        assert err.startswith(
            f"connect-dev: error: the emulated host at {host.origin} refused: an emulated jira "
            "site does not fire 'page_created'"
        )


async def test_connect_dev_host_fire_says_when_no_host_answers() -> None:
    code, out, err = await run_fire("jira:issue_created", "--host", "http://127.0.0.1:9")
    assert (code, out) == (1, "")
    assert err.startswith("connect-dev: error: no emulated host answers at http://127.0.0.1:9 (")
    assert "hint: Start one with `connect-dev host`" in err


async def test_no_app_installed_is_its_own_hint() -> None:
    async with run_host() as host:
        code, _, err = await run_fire("jira:issue_created", "--host", host.origin)
        assert code == 1
        assert "hint: No app is installed on the emulated host" in err


# --- JQL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jql", "matches"),
    [
        ("project = DEMO", True),
        ("project = demo", True),
        ('project = "DEMO"', True),
        ("project = 10000", True),
        ("project != DEMO", False),
        ("project = OTHER", False),
        ("issuetype = Bug", True),
        ("type = bug AND project = DEMO", True),
        ("issuetype = Bug AND project = OTHER", False),
        ("project = OTHER OR issuetype = Bug", True),
        ("project in (OTHER, DEMO)", True),
        ("project not in (OTHER, DEMO)", False),
        ("NOT project = OTHER", True),
        ("(project = OTHER OR project = DEMO) AND status = 'To Do'", True),
        ("status = Done", False),
        ("priority = Medium", True),
        ("key = DEMO-9", True),
        ("labels = urgent", True),
        ("labels = later", False),
        ("labels is EMPTY", False),
        ("assignee is EMPTY", True),
        ("assignee is not EMPTY", False),
        ("reporter = Someone", True),
    ],
)
def test_the_jql_subset(jql: str, matches: bool) -> None:
    issue = canned_issue(
        Site("http://h", "jira"), "DEMO-9", {"accountId": "a", "displayName": "Someone"}, 0
    )
    issue["fields"]["issuetype"]["name"] = "Bug"
    issue["fields"]["labels"] = ["urgent"]
    assert issue_filter(jql).matches(issue) is matches


@pytest.mark.parametrize(
    ("jql", "why"),
    [
        ("summary ~ crash", "the field 'summary' is not evaluated"),
        ("assignee = currentUser()", "functions such as currentUser() are not evaluated"),
        ("project = DEMO ORDER BY created", "ORDER BY means nothing in a webhook filter"),
        ("priority > 2", "the operator '>' is not supported"),
        ("status WAS Done", "'WAS' needs an issue's history"),
        ("(project = DEMO", "a '(' is not closed"),
        ("", "the filter is empty"),
    ],
)
def test_jql_beyond_the_subset_says_what_is_not_supported(jql: str, why: str) -> None:
    with pytest.raises(UnsupportedJql) as raised:
        issue_filter(jql)
    assert str(raised.value).startswith(why)


def test_payloads_refuse_an_event_of_the_other_product() -> None:
    with pytest.raises(ValueError, match="a confluence site does not fire 'jira:issue_created'"):
        build_payload(Site("http://h/wiki", "confluence"), "jira:issue_created", {}, None, None, 0)


# --- through `connect-dev up` ---------------------------------------------------------------------


async def test_a_webhook_reaches_the_add_on_through_up_with_a_verified_jwt(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    webhooks: list[dict[str, Any]] = [
        {"event": "jira:issue_created", "url": "/hooks/created?issue={issue.key}"},
        {"event": "comment_created", "url": "/hooks/bare", "excludeBody": True},
    ]
    descriptor = {
        **WebhookAddon(webhooks).descriptor(),
        "baseUrl": "{{localBaseUrl}}",
    }
    (project / "atlassian-connect.json").write_text(json.dumps(descriptor), encoding="utf-8")
    env = subprocess_keyring_env(tmp_path / "keyring.json")
    async with webhook_addon(webhooks) as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with connect_dev_up(config, env) as up:
            await up.wait_event("ready")
            lifecycle = await up.wait_event("lifecycle", lifecycle_event="installed")
            assert lifecycle["verified"] is True, lifecycle

            code, out, err = await run_fire(
                "jira:issue_created", "--issue", "DEMO-1", "--host", jira.origin
            )
            assert code == 0, (out, err)
            code, out, err = await run_fire("comment_created", "--host", jira.origin)
            assert code == 0, (out, err)
            created, bare = await addon.wait_hooks(2)
            assert (created.verdict, bare.verdict) == ("HS256", "HS256")
            assert created.query == {"issue": "DEMO-1"}
            assert bare.body == b""

            async with asyncio.timeout(10):
                while len([e for e in up.events("request") if e["path"].startswith("/hooks")]) < 2:
                    up.changed.clear()
                    await up.changed.wait()
            requests = [e for e in up.events("request") if e["path"].startswith("/hooks")]
            assert [(e["method"], e["path"], e["status"]) for e in requests] == [
                ("POST", "/hooks/created?issue=DEMO-1", 204),
                ("POST", "/hooks/bare", 204),
            ]
            for event in requests:
                assert event["jwt"]["verdict"] == "verified", event["jwt"]
                assert event["jwt"]["iss"] == jira.client_key
                assert event["jwt"]["host"] == "jira"
            public_url = json.loads(jira.record.installs[-1].descriptor_text)["baseUrl"]
            assert [d.url for d in jira.record.webhooks] == [
                f"{public_url}/hooks/created?issue=DEMO-1",
                f"{public_url}/hooks/bare",
            ]


# --- a real atlassian-connect-express app ---------------------------------------------------------


@pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run the atlassian-connect-express peer (CI has them)",
)
@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_ace_accepts_webhooks_fired_by_the_site(ace_modules: Path, tmp_path: Path) -> None:
    """ACE's own route for a declared webhook and a route behind ``addon.authenticate()``
    (tests/ace/app.js) both accept what the site sends, through `connect-dev up`."""
    project = tmp_path / "project"
    project.mkdir()
    descriptor = {
        **ACE_DESCRIPTOR,
        "modules": {
            **ACE_DESCRIPTOR["modules"],
            "webhooks": [
                {"event": "jira:issue_created", "url": "/webhooks/issue-created"},
                {"event": "comment_created", "url": "/webhooks/comment?issue={issue.key}"},
            ],
        },
    }
    (project / "atlassian-connect.json").write_text(json.dumps(descriptor), encoding="utf-8")
    env = subprocess_keyring_env(tmp_path / "keyring.json")
    proxy_port = free_port()
    public_url = f"http://127.0.0.1:{proxy_port}"
    async with (
        run_host(require_signed_install=True) as jira,
        ace_app(ace_modules, project, public_url, jira.keys_url) as (ace, ace_url),
    ):
        config = write_ace_config(project, ace_url, proxy_port, jira)
        async with connect_dev_up(config, env) as up:
            await up.wait_event("ready")
            await ace.wait_event("tenant_saved")

            created = await jira.webhooks.fire("jira:issue_created", issue="DEMO-2")
            commented = await jira.webhooks.fire("comment_created", issue="DEMO-2")
            assert [(d.status, d.url) for d in created.deliveries + commented.deliveries] == [
                (204, f"{public_url}/webhooks/issue-created"),
                (204, f"{public_url}/webhooks/comment?issue=DEMO-2"),
            ]
            by_ace = await ace.wait_event("webhook", route="ace")
            assert (by_ace["webhookEvent"], by_ace["issueKey"], by_ace["clientKey"]) == (
                "jira:issue_created",
                "DEMO-2",
                jira.client_key,
            )
            by_hand = await ace.wait_event("webhook", route="authenticate")
            assert (by_hand["webhookEvent"], by_hand["clientKey"], by_hand["query"]) == (
                "comment_created",
                jira.client_key,
                {"issue": "DEMO-2"},
            )

            async with asyncio.timeout(10):
                while len([e for e in up.events("request") if "/webhooks/" in e["path"]]) < 2:
                    up.changed.clear()
                    await up.changed.wait()
            verdicts = [
                (e["path"], e["status"], (e.get("jwt") or {}).get("verdict"))
                for e in up.events("request")
                if "/webhooks/" in e["path"]
            ]
            assert verdicts == [
                ("/webhooks/issue-created", 204, "verified"),
                ("/webhooks/comment?issue=DEMO-2", 204, "verified"),
            ]

            # A token the add-on cannot check: ACE refuses, the proxy says why.
            jira.installations[ADDON_KEY].shared_secret = "not-the-secret-ace-stored"
            refused = await jira.webhooks.fire("jira:issue_created", issue="DEMO-2")
            [delivery] = refused.deliveries
            assert delivery.status == 400, delivery
            assert "Unable to decodeSymmetric JWT token" in delivery.answer
