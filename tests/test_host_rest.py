"""The emulated site's REST API (host/rest.py, rest_auth.py, product.py), over real HTTP on
loopback: app calls signed with connect_devloop.jwt and by a real atlassian-connect-express app,
user calls with Basic auth and the site's session, and the verdict the site records for each."""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from connect_devloop import jwt
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.host.product import Change
from connect_devloop.host.rest_auth import SESSION_COOKIE, diagnose_qsh, scope_granted
from connect_devloop.host.rest_jql import JqlError, parse_jql

from .ace.npm import NPM_TIMEOUT_S
from .e2e import connect_dev_up
from .keyrings import subprocess_keyring_env
from .test_ace import DESCRIPTOR as ACE_DESCRIPTOR
from .test_ace import ace_app, ace_modules, free_port, write_config

__all__ = ["ace_modules"]

KEY = "rest-app"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("admin", "admin")


# --- an app to install -------------------------------------------------------------------------


@asynccontextmanager
async def addon_server() -> AsyncIterator[tuple[str, dict[str, dict[str, Any]]]]:
    """A tiny add-on: serves any descriptor put in the dict it yields, accepts every callback."""
    descriptors: dict[str, dict[str, Any]] = {}

    async def descriptor(request: web.Request) -> web.Response:
        return web.json_response(descriptors[request.match_info["key"]])

    async def callback(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.add_routes(
        [web.get("/{key}/atlassian-connect.json", descriptor), web.post("/{key}/{event}", callback)]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", descriptors
    finally:
        await runner.cleanup()


@dataclass
class Site:
    """An emulated site with a way to install apps through its UPM, and to call its REST API."""

    host: EmulatedHost
    session: aiohttp.ClientSession
    addon_url: str
    descriptors: dict[str, dict[str, Any]]

    async def install(self, key: str = KEY, scopes: list[str] | None = None, **extra: Any) -> str:
        """Install an app with these scopes through UPM; returns its sharedSecret."""
        self.descriptors[key] = {
            "key": key,
            "name": f"App {key}",
            "baseUrl": f"{self.addon_url}/{key}",
            "authentication": {"type": "jwt"},
            "apiMigrations": {"signed-install": True},
            "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
            "scopes": ["read"] if scopes is None else scopes,
            "modules": {},
            **extra,
        }
        done = sum(1 for i in self.host.record.installs if i.key == key) + 1
        upm = self.host.upm_url
        async with self.session.get(upm, headers=ADMIN) as answer:
            token = answer.headers["upm-token"]
        async with self.session.post(
            f"{upm}?token={token}",
            headers={**ADMIN, "Content-Type": "application/vnd.atl.plugins.remote.install+json"},
            data=json.dumps({"pluginUri": f"{self.addon_url}/{key}/atlassian-connect.json"}),
        ) as answer:
            assert answer.status == 202, await answer.text()
        await self.host.wait_for(
            lambda record: sum(1 for i in record.installs if i.key == key) == done, 10
        )
        secret = self.host.installations[key].shared_secret
        assert secret is not None
        return secret

    def signed(
        self,
        method: str,
        path: str,
        *,
        key: str = KEY,
        iss: str | None = None,
        secret: str | None = None,
        sign_path: str | None = None,
        now: int | None = None,
        ttl: int = 180,
    ) -> dict[str, str]:
        """``Authorization: JWT`` for ``path`` (relative to the base URL, with its query), as an
        app signs a call; ``sign_path`` signs another path and query than the one sent."""
        signed_path, _, query = (sign_path or path).partition("?")
        claims = jwt.make_claims(iss or key, method, signed_path, query, ttl=ttl, now=now)
        shared = secret or self.host.installations[key].shared_secret
        assert shared is not None
        return {"Authorization": f"JWT {jwt.encode_hs256(claims, shared)}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        as_app: str | None = KEY,
    ) -> tuple[int, Any]:
        """Call the REST API at ``path`` (relative to the base URL); signed as app ``as_app``
        unless ``headers`` are given. Returns the status and the JSON answer (or None)."""
        if headers is None:
            assert as_app is not None
            headers = self.signed(method, path, key=as_app)
        data = None if body is None else json.dumps(body)
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        async with self.session.request(
            method, self.host.base_url + path, headers=headers, data=data
        ) as answer:
            text = await answer.text()
            return answer.status, json.loads(text) if text else None

    def last_verdict(self) -> dict[str, Any]:
        verdict = self.host.record.rest_calls[-1].verdict
        assert isinstance(verdict, dict)
        return verdict


@asynccontextmanager
async def emulated_site(**settings: Any) -> AsyncIterator[Site]:
    async with (
        run_host(**settings) as host,
        addon_server() as (addon_url, descriptors),
        aiohttp.ClientSession() as session,
    ):
        yield Site(host, session, addon_url, descriptors)


# --- app calls: accepted ----------------------------------------------------------------------


async def test_an_app_reads_as_its_own_user_and_the_site_records_the_agreed_qsh() -> None:
    async with emulated_site() as site:
        await site.install(scopes=["read"])
        status, me = await site.call("GET", "/rest/api/2/myself")
        assert status == 200, me
        assert (me["accountType"], me["displayName"]) == ("app", "App rest-app")
        assert "emailAddress" not in me  # no ACCESS_EMAIL_ADDRESSES scope
        call = site.host.record.rest_calls[-1]
        assert (call.method, call.path, call.status, call.auth, call.app_key) == (
            "GET",
            "/jira/rest/api/2/myself",
            200,
            "jwt",
            KEY,
        )
        verdict = call.verdict
        assert verdict["accepted"] is True
        assert verdict["canonical_request"] == "GET&/rest/api/2/myself&"
        assert verdict["qsh_expected"] == verdict["qsh_received"]
        assert (verdict["required_scope"], verdict["declared_scopes"]) == ("READ", ["READ"])

        status, issue = await site.call("GET", "/rest/api/2/issue/DEMO-2?fields=summary,comment")
        assert status == 200
        assert issue["key"] == "DEMO-2"
        assert set(issue["fields"]) == {"summary", "comment"}
        assert issue["fields"]["comment"]["comments"][0]["body"] == "Reproduced on Safari 17."

        status, issue = await site.call("GET", "/rest/api/3/issue/DEMO-2")
        assert issue["fields"]["description"] == {
            "type": "doc",
            "version": 1,
            "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Steps: open /login."}]}
            ],
        }
        status, projects = await site.call("GET", "/rest/api/2/project")
        assert [p["key"] for p in projects] == ["DEMO"]
        status, info = await site.call("GET", "/rest/api/2/serverInfo", headers={})
        assert (status, info["deploymentType"], info["baseUrl"]) == (
            200,
            "Cloud",
            site.host.base_url,
        )


async def test_an_app_creates_edits_transitions_and_deletes_an_issue() -> None:
    async with emulated_site() as site:
        await site.install(scopes=["delete", "access_email_addresses"])  # DELETE implies the rest
        changes: list[Change] = []
        site.host.product.subscribe(changes.append)

        status, created = await site.call(
            "POST",
            "/rest/api/2/issue",
            body={
                "fields": {
                    "project": {"key": "DEMO"},
                    "summary": "Made by an app",
                    "issuetype": {"name": "Bug"},
                    "description": "line one\nline two",
                    "labels": ["from-app"],
                }
            },
        )
        assert status == 201, created
        assert created["key"] == "DEMO-4"
        assert created["self"] == f"{site.host.base_url}/rest/api/2/issue/{created['id']}"

        status, _ = await site.call(
            "PUT",
            "/rest/api/2/issue/DEMO-4",
            body={"fields": {"summary": "Renamed"}, "update": {"labels": [{"add": "second"}]}},
        )
        assert status == 204
        status, transitions = await site.call("GET", "/rest/api/2/issue/DEMO-4/transitions")
        assert [t["name"] for t in transitions["transitions"]] == ["In Progress", "Done"]
        status, _ = await site.call(
            "POST", "/rest/api/2/issue/DEMO-4/transitions", body={"transition": {"id": "31"}}
        )
        assert status == 204
        status, issue = await site.call("GET", "/rest/api/3/issue/DEMO-4")
        fields = issue["fields"]
        assert (fields["summary"], fields["labels"], fields["status"]["name"]) == (
            "Renamed",
            ["from-app", "second"],
            "Done",
        )
        assert fields["reporter"]["accountType"] == "app"
        assert fields["reporter"]["emailAddress"] == "addon_rest-app@connect.atlassian.com"
        assert fields["description"]["content"][1]["content"][0]["text"] == "line two"

        status, _ = await site.call("DELETE", "/rest/api/2/issue/DEMO-4")
        assert status == 204
        status, missing = await site.call("GET", "/rest/api/2/issue/DEMO-4")
        assert (status, missing) == (
            404,
            {
                "errorMessages": ["Issue does not exist or you do not have permission to see it."],
                "errors": {},
            },
        )
        assert [c.event for c in changes] == [
            "jira:issue_created",
            "jira:issue_updated",
            "jira:issue_updated",
            "jira:issue_deleted",
        ]
        created_change, renamed, done, deleted = changes
        assert created_change.previous is None
        assert created_change.entity["fields"]["summary"] == "Made by an app"
        assert created_change.user["accountType"] == "app"
        assert "emailAddress" not in created_change.user
        assert renamed.previous is not None
        assert renamed.previous["fields"]["summary"] == "Made by an app"
        assert renamed.entity["fields"]["summary"] == "Renamed"
        assert done.entity["fields"]["status"]["name"] == "Done"
        assert deleted.entity["key"] == "DEMO-4"
        assert abs(deleted.timestamp_ms - time.time() * 1000) < 10_000


async def test_create_issue_errors_are_jiras() -> None:
    async with emulated_site() as site:
        await site.install(scopes=["write"])
        status, answer = await site.call(
            "POST", "/rest/api/2/issue", body={"fields": {"project": {"key": "NOPE"}}}
        )
        assert (status, answer) == (
            400,
            {
                "errorMessages": [],
                "errors": {
                    "project": "Specify a valid project ID or key",
                    "summary": "You must specify a summary of the issue.",
                    "issuetype": "Specify an issue type",
                },
            },
        )
        # v3 takes text as Atlassian Document Format only, as Cloud does.
        status, answer = await site.call(
            "POST",
            "/rest/api/3/issue",
            body={
                "fields": {
                    "project": {"key": "DEMO"},
                    "summary": "s",
                    "issuetype": {"id": "10001"},
                    "description": "plain text",
                }
            },
        )
        assert (status, answer["errors"]) == (
            400,
            {
                "description": "Operation value must be an Atlassian Document (see the "
                "Atlassian Document Format)"
            },
        )
        status, answer = await site.call("POST", "/rest/api/2/issue", body=None)
        assert status == 400


async def test_comments_are_created_edited_and_deleted_with_the_issue_as_parent() -> None:
    async with emulated_site() as site:
        await site.install(scopes=["delete"])
        changes: list[Change] = []
        unsubscribe = site.host.product.subscribe(changes.append)
        status, comment = await site.call(
            "POST", "/rest/api/2/issue/DEMO-1/comment", body={"body": "First!"}
        )
        assert status == 201, comment
        assert comment["author"]["accountType"] == "app"
        path = f"/rest/api/2/issue/DEMO-1/comment/{comment['id']}"
        status, edited = await site.call("PUT", path, body={"body": "Edited"})
        assert (status, edited["body"]) == (200, "Edited")
        status, listed = await site.call("GET", "/rest/api/2/issue/DEMO-1/comment")
        assert [c["body"] for c in listed["comments"]] == ["Edited"]
        status, as_adf = await site.call("GET", path.replace("/2/", "/3/"))
        assert as_adf["body"]["type"] == "doc"
        assert (await site.call("DELETE", path))[0] == 204
        status, gone = await site.call("GET", path)
        assert (status, gone["errorMessages"]) == (
            404,
            [f"Can not find a comment for the id: {comment['id']}."],
        )
        status, empty = await site.call(
            "POST", "/rest/api/2/issue/DEMO-1/comment", body={"body": "  "}
        )
        assert (status, empty["errors"]) == (400, {"comment": "Comment body can not be empty!"})
        unsubscribe()
        await site.call("POST", "/rest/api/2/issue/DEMO-1/comment", body={"body": "unheard"})
        assert [c.event for c in changes] == [
            "comment_created",
            "comment_updated",
            "comment_deleted",
        ]
        assert all(c.parent is not None and c.parent["key"] == "DEMO-1" for c in changes)
        assert changes[1].previous is not None
        assert changes[1].previous["body"] == "First!"


async def test_search_with_the_jql_subset() -> None:
    async with emulated_site() as site:
        await site.install()

        async def keys(jql: str, **params: str) -> list[str]:
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {"jql": jql, **params}.items())
            status, found = await site.call("GET", f"/rest/api/2/search?{query}")
            assert status == 200, found
            return [issue["key"] for issue in found["issues"]]

        assert await keys("project = DEMO ORDER BY created") == ["DEMO-3", "DEMO-2", "DEMO-1"]
        assert await keys("project = DEMO ORDER BY created ASC") == ["DEMO-1", "DEMO-2", "DEMO-3"]
        assert await keys("key = DEMO-1") == ["DEMO-1"]
        assert await keys('status = "In Progress" OR issuetype = Story ORDER BY key') == [
            "DEMO-2",
            "DEMO-3",
        ]
        assert await keys("summary ~ safari AND NOT status = Done") == ["DEMO-2"]
        assert await keys("key in (DEMO-1, DEMO-3) ORDER BY key DESC") == ["DEMO-3", "DEMO-1"]
        assert await keys("reporter = currentUser()") == []  # the app reported none of them
        assert await keys("project = DEMO ORDER BY key", startAt="1", maxResults="1") == ["DEMO-2"]

        status, found = await site.call(
            "POST",
            "/rest/api/2/search",
            body={"jql": "project = DEMO AND key > DEMO-1", "fields": ["summary"]},
        )
        assert status == 200
        assert found["total"] == 2
        assert set(found["issues"][0]["fields"]) == {"summary"}

        status, page = await site.call(
            "GET", "/rest/api/3/search/jql?jql=project%20%3D%20DEMO&maxResults=2"
        )
        assert page == {
            "issues": [{"id": "10003"}, {"id": "10002"}],
            "isLast": False,
            "nextPageToken": "2",
        }

        for jql, message in [
            ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
            ("key = DEMO-99", "An issue with key 'DEMO-99' does not exist for field 'key'."),
            (
                "colour = red",
                "Field 'colour' does not exist or you do not have permission to view it.",
            ),
            ("summary = x", "The operator '=' is not supported by the 'summary' field."),
            (
                "project = DEMO foo",
                "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'foo'. "
                "(line 1, character 16)",
            ),
        ]:
            status, error = await site.call("GET", f"/rest/api/2/search?jql={quote(jql, safe='')}")
            assert (status, error["errorMessages"]) == (400, [message]), jql


def test_jql_parses_what_jira_parses() -> None:
    from connect_devloop.host.product import Product

    product = Product("jira", {"admin": True}, base_url=lambda: "http://site")
    issues = list(product.issues.values())

    def keys(jql: str) -> list[str]:
        query = parse_jql(jql, product, None)
        return [i.key for i in query.sort([i for i in issues if query.matches(i)])]

    assert keys("") == ["DEMO-3", "DEMO-2", "DEMO-1"]
    assert keys("(project = DEMO) && !(key = DEMO-2) order by created asc") == ["DEMO-1", "DEMO-3"]
    assert keys("assignee is EMPTY and labels is empty and created >= -30d") == [
        "DEMO-3",
        "DEMO-2",
        "DEMO-1",
    ]
    assert keys("text ~ 'Safari 17'") == ["DEMO-2"]  # comments count in `text`
    with pytest.raises(JqlError, match="has not been completed"):
        parse_jql('summary ~ "open', product, None)
    with pytest.raises(JqlError, match="cannot search on 'priority'"):
        parse_jql("priority = High", product, None)


# --- app properties ---------------------------------------------------------------------------


async def test_app_properties_put_get_list_and_delete() -> None:
    async with emulated_site() as site:
        await site.install(scopes=[])  # app properties need no scope
        await site.install("other-app")
        root = f"/rest/atlassian-connect/1/addons/{KEY}/properties"
        status, answer = await site.call("PUT", f"{root}/settings", body={"colour": "blue"})
        assert (status, answer) == (201, {"status-code": 201, "message": "Property created."})
        status, answer = await site.call("PUT", f"{root}/settings", body={"colour": "red"})
        assert (status, answer) == (200, {"status-code": 200, "message": "Property updated."})
        status, answer = await site.call("GET", f"{root}/settings")
        assert answer == {
            "key": "settings",
            "value": {"colour": "red"},
            "self": f"{site.host.base_url}{root}/settings",
        }
        status, listed = await site.call("GET", root)
        assert listed == {
            "keys": [{"self": f"{site.host.base_url}{root}/settings", "key": "settings"}]
        }

        # Only the app itself, or an admin as a user, may see them.
        status, answer = await site.call("GET", f"{root}/settings", as_app="other-app")
        assert (status, answer) == (
            404,
            {"status-code": 404, "message": "Add-on with key does not exist."},
        )
        assert (await site.call("GET", f"{root}/settings", headers=ADMIN))[0] == 200
        status, answer = await site.call("GET", f"{root}/settings", headers={})
        assert (status, answer["message"]) == (
            401,
            "Access to this resource must be authenticated as an add-on.",
        )

        headers = site.signed("PUT", f"{root}/broken")
        async with site.session.put(
            site.host.base_url + f"{root}/broken", headers=headers, data="{not json"
        ) as reply:
            assert (reply.status, await reply.json()) == (
                400,
                {"status-code": 400, "message": "Property value must be a valid JSON object."},
            )
        assert (await site.call("DELETE", f"{root}/settings"))[0] == 204
        status, answer = await site.call("GET", f"{root}/settings")
        assert (status, answer["message"]) == (404, "Property with key not found.")


# --- refusals ---------------------------------------------------------------------------------


async def test_a_call_outside_the_apps_scopes_gets_403_naming_the_scope() -> None:
    async with emulated_site() as site:
        await site.install(scopes=["read"])
        status, answer = await site.call(
            "POST", "/rest/api/2/issue", body={"fields": {"summary": "x"}}
        )
        message = (
            "Request not in an authorized API scope: POST /jira/rest/api/2/issue requires the "
            "WRITE scope, and the app 'rest-app' declares READ."
        )
        assert (status, answer) == (403, {"errorMessages": [message], "errors": {}})
        verdict = site.last_verdict()
        assert (verdict["accepted"], verdict["reason"], verdict["required_scope"]) == (
            False,
            "missing scope",
            "WRITE",
        )
        assert verdict["explanation"].startswith('Add "write" to "scopes" in the descriptor')
        assert site.host.product.issue("DEMO-4") is None
        assert (await site.call("DELETE", "/rest/api/2/issue/DEMO-1"))[0] == 403
        assert (await site.call("POST", "/rest/api/2/project", body={}))[0] == 403


def test_scopes_imply_the_ones_before_them() -> None:
    assert scope_granted(["WRITE"], "READ")
    assert scope_granted(["ADMIN"], "PROJECT_ADMIN")
    assert scope_granted(["SPACE_ADMIN"], "DELETE")
    assert not scope_granted(["SPACE_ADMIN"], "PROJECT_ADMIN")
    assert not scope_granted(["READ"], "WRITE")
    assert not scope_granted(["ACT_AS_USER"], "READ")


async def test_a_bad_qsh_gets_401_and_the_record_shows_both_hashes() -> None:
    async with emulated_site() as site:
        await site.install()
        # A common mistake: the context path in the signed path.
        headers = site.signed(
            "GET", "/rest/api/2/issue/DEMO-1", sign_path="/jira/rest/api/2/issue/DEMO-1"
        )
        status, answer = await site.call("GET", "/rest/api/2/issue/DEMO-1", headers=headers)
        verdict = site.last_verdict()
        expected = jwt.query_string_hash("GET&/rest/api/2/issue/DEMO-1&")
        received = jwt.query_string_hash("GET&/jira/rest/api/2/issue/DEMO-1&")
        assert (status, answer["errorMessages"]) == (
            401,
            [
                f"Expecting claim 'qsh' to have value '{expected}' but instead it has the value "
                f"'{received}'"
            ],
        )
        assert verdict["reason"] == "qsh mismatch"
        assert verdict["canonical_request"] == "GET&/rest/api/2/issue/DEMO-1&"
        assert (verdict["qsh_expected"], verdict["qsh_received"]) == (expected, received)
        assert verdict["app_canonical_request"] == "GET&/jira/rest/api/2/issue/DEMO-1&"
        assert "included the context path /jira" in verdict["explanation"]
        assert verdict["claims"]["iss"] == KEY

        # The JWT in the query works as in the header; a query changed after signing does not.
        token = site.signed("GET", "/rest/api/2/search?jql=key%3DDEMO-1")["Authorization"][4:]
        status, _ = await site.call(
            "GET", f"/rest/api/2/search?jql=key%3DDEMO-1&jwt={token}", headers={}
        )
        assert status == 200
        status, _ = await site.call(
            "GET", f"/rest/api/2/search?jql=key%3DDEMO-2&jwt={token}", headers={}
        )
        assert status == 401
        call = site.host.record.rest_calls[-1]
        assert call.query == "jql=key%3DDEMO-2&jwt=…"  # the token is not kept
        assert site.last_verdict()["app_canonical_request"] is None


def test_the_qsh_diagnosis_names_the_usual_mistakes() -> None:
    def mistake(canonical: str, method: str = "GET", query: str = "b=2&a=1") -> str | None:
        return diagnose_qsh(
            method, "/wiki/rest/api/content", query, "/wiki", jwt.query_string_hash(canonical)
        )[0]

    assert mistake("GET&/rest/api/content&") == "GET&/rest/api/content&"
    assert mistake("GET&/rest/api/content&b=2&a=1") == "GET&/rest/api/content&b=2&a=1"
    assert mistake("get&/rest/api/content&a=1&b=2") == "get&/rest/api/content&a=1&b=2"
    assert mistake("POST&/rest/api/content&a=1&b=2", "PUT") == "POST&/rest/api/content&a=1&b=2"
    assert mistake("GET&/elsewhere&") is None
    assert "context token" in diagnose_qsh("GET", "/x", "", "", "context-qsh")[1]


async def test_expired_unknown_issuer_and_bad_signature_get_401() -> None:
    async with emulated_site() as site:
        secret = await site.install()
        path = "/rest/api/2/myself"
        expired = site.signed("GET", path, now=int(time.time()) - 600, ttl=180)
        status, answer = await site.call("GET", path, headers=expired)
        assert status == 401
        assert answer["errorMessages"][0].startswith("Expired at ")
        assert answer["errorMessages"][0].endswith("(30 seconds leeway is allowed)")
        assert site.last_verdict()["reason"] == "expired"
        # Within the 30 s leeway: accepted.
        recent = site.signed("GET", path, now=int(time.time()) - 200, ttl=180)
        assert (await site.call("GET", path, headers=recent))[0] == 200

        bad_credentials = ["Your presented credentials do not provide access to this resource."]
        status, answer = await site.call(
            "GET", path, headers=site.signed("GET", path, iss=site.host.client_key, secret=secret)
        )
        assert (status, answer["errorMessages"]) == (401, bad_credentials)
        verdict = site.last_verdict()
        assert verdict["reason"] == "unknown issuer"
        assert "puts its own app key in iss" in verdict["explanation"]
        status, _ = await site.call(
            "GET", path, headers=site.signed("GET", path, iss="nobody", secret=secret)
        )
        assert status == 401
        assert "No app with the key 'nobody' is installed" in site.last_verdict()["explanation"]

        wrong_secret = site.signed("GET", path, secret="not-the-shared-secret-of-this-app")
        assert (await site.call("GET", path, headers=wrong_secret))[0] == 401
        assert site.last_verdict()["reason"] == "bad signature"
        status, answer = await site.call("GET", path, headers={"Authorization": "JWT garbage"})
        assert (status, site.last_verdict()["reason"]) == (400, "malformed")

        # A reinstall issues a new secret: a token signed with the old one is refused.
        await site.install()
        status, _ = await site.call("GET", path, headers=site.signed("GET", path, secret=secret))
        assert status == 401


async def test_a_disabled_app_is_refused() -> None:
    async with emulated_site() as site:
        await site.install()
        async with site.session.put(
            f"{site.host.upm_url}{KEY}-key",
            headers={**ADMIN, "Content-Type": "application/json"},
            data=json.dumps({"enabled": False}),
        ) as reply:
            assert reply.status == 200
        status, _ = await site.call("GET", "/rest/api/2/myself")
        assert (status, site.last_verdict()["reason"]) == (401, "app disabled")


# --- user calls -------------------------------------------------------------------------------


async def test_basic_auth_calls_act_as_the_user_without_scopes() -> None:
    async with emulated_site(non_admins={"viewer": "secret"}) as site:
        status, me = await site.call("GET", "/rest/api/2/myself", headers=ADMIN)
        assert (status, me["displayName"], me["emailAddress"]) == (
            200,
            "Admin",
            "admin@example.com",
        )
        assert me["accountId"] == "557058:00000000-0000-0000-0000-emulatedadmin"
        status, created = await site.call(
            "POST",
            "/rest/api/2/issue",
            headers=ADMIN,
            body={
                "fields": {
                    "project": {"id": "10000"},
                    "summary": "By hand",
                    "issuetype": {"name": "task"},
                }
            },
        )
        assert status == 201
        issue = site.host.product.issue(created["key"])
        assert issue is not None
        assert issue.reporter_account_id == me["accountId"]
        assert site.last_verdict()["auth"] == "basic"

        viewer = basic("viewer", "secret")
        assert (await site.call("GET", "/rest/api/2/issue/DEMO-1", headers=viewer))[0] == 200
        status, answer = await site.call(
            "POST", "/rest/api/2/project", headers=viewer, body={"key": "NEW", "name": "New"}
        )
        assert status == 403
        status, answer = await site.call(
            "GET", "/rest/api/2/myself", headers=basic("admin", "nope")
        )
        assert (status, answer["errorMessages"]) == (
            401,
            ["Client must be authenticated to access this resource."],
        )
        status, project = await site.call(
            "POST", "/rest/api/2/project", headers=ADMIN, body={"key": "NEW", "name": "New"}
        )
        assert (status, project["key"]) == (201, "NEW")
        status, found = await site.call("GET", "/rest/api/2/project/NEW", headers=ADMIN)
        assert found["lead"]["displayName"] == "Admin"


async def test_a_session_calls_as_the_user_and_ap_client_key_applies_the_apps_scopes() -> None:
    async with emulated_site() as site:
        await site.install(scopes=["read"])
        login = f"{site.host.base_url}/rest/auth/1/session"
        async with site.session.post(login, json={"username": "admin", "password": "no"}) as reply:
            assert (reply.status, await reply.json()) == (
                401,
                {"errorMessages": ["Login failed"], "errors": {}},
            )
        async with site.session.post(
            login, json={"username": "admin", "password": "admin"}
        ) as reply:
            assert reply.status == 200
            cookie = (await reply.json())["session"]
            assert cookie["name"] == SESSION_COOKIE
        session = {"Cookie": f"{SESSION_COOKIE}={cookie['value']}"}
        status, me = await site.call("GET", "/rest/api/2/myself", headers=session)
        assert (status, me["displayName"]) == (200, "Admin")
        body = {
            "fields": {"project": {"key": "DEMO"}, "summary": "s", "issuetype": {"name": "Task"}}
        }
        assert (await site.call("POST", "/rest/api/2/issue", headers=session, body=body))[0] == 201
        # AP.request from the app's iframe: the user's session, the app's scopes.
        from_app = {**session, "AP-Client-Key": KEY}
        status, answer = await site.call("POST", "/rest/api/2/issue", headers=from_app, body=body)
        assert status == 403
        assert "requires the WRITE scope" in answer["errorMessages"][0]
        assert (await site.call("GET", "/rest/api/2/issue/DEMO-1", headers=from_app))[0] == 200
        assert site.host.record.rest_calls[-1].user == me["accountId"]
        async with site.session.delete(login, headers=session) as reply:
            assert reply.status == 204
        assert (await site.call("GET", "/rest/api/2/myself", headers=session))[0] == 401


# --- Confluence -------------------------------------------------------------------------------


async def test_confluence_content_create_update_get_and_trash() -> None:
    async with emulated_site(context_path="/wiki", product="confluence") as site:
        await site.install(scopes=["delete"])
        changes: list[Change] = []
        site.host.product.subscribe(changes.append)
        status, spaces = await site.call("GET", "/rest/api/space")
        assert [s["key"] for s in spaces["results"]] == ["DEMO"]
        status, home = await site.call(
            "GET", "/rest/api/content?spaceKey=DEMO&title=Demo%20space%20Home"
        )
        home_id = home["results"][0]["id"]

        status, page = await site.call(
            "POST",
            "/rest/api/content",
            body={
                "type": "page",
                "title": "Release plan",
                "space": {"key": "DEMO"},
                "ancestors": [{"id": home_id}],
                "body": {"storage": {"value": "<p>v1</p>", "representation": "storage"}},
            },
        )
        assert status == 200, page
        assert (page["version"]["number"], page["body"]["storage"]["value"]) == (1, "<p>v1</p>")
        assert [a["id"] for a in page["ancestors"]] == [home_id]
        assert page["_links"]["self"] == f"{site.host.base_url}/rest/api/content/{page['id']}"
        path = f"/rest/api/content/{page['id']}"

        update = {
            "version": {"number": 2},
            "title": "Release plan",
            "type": "page",
            "body": {"storage": {"value": "<p>v2</p>", "representation": "storage"}},
        }
        status, updated = await site.call("PUT", path, body=update)
        assert (status, updated["version"]["number"]) == (200, 2)
        status, conflict = await site.call("PUT", path, body=update)
        assert (status, conflict["message"], conflict["statusCode"], conflict["reason"]) == (
            409,
            "Version must be incremented on update. Current version is: 2",
            409,
            "Conflict",
        )
        status, fetched = await site.call("GET", f"{path}?expand=body.storage")
        assert (fetched["body"]["storage"]["value"], fetched["version"]["number"]) == (
            "<p>v2</p>",
            2,
        )
        assert fetched["space"]["key"] == "DEMO"  # expanded by default, as Cloud does

        status, duplicate = await site.call(
            "POST",
            "/rest/api/content",
            body={"type": "page", "title": "Release plan", "space": {"key": "DEMO"}},
        )
        assert status == 400
        assert duplicate["message"].startswith("A page with this title already exists")

        assert (await site.call("DELETE", path))[0] == 204
        status, gone = await site.call("GET", path)
        assert (status, gone["message"]) == (
            404,
            f"No content found with id: ContentId{{id={page['id']}}}",
        )
        assert (await site.call("GET", f"{path}?status=trashed"))[0] == 200
        assert (await site.call("DELETE", f"{path}?status=trashed"))[0] == 204
        assert [c.event for c in changes] == [
            "page_created",
            "page_updated",
            "page_trashed",
            "page_removed",
        ]
        assert all(c.parent is not None and c.parent["key"] == "DEMO" for c in changes)
        assert changes[1].previous is not None
        assert changes[1].previous["body"]["storage"]["value"] == "<p>v1</p>"
        assert changes[0].user["accountType"] == "app"

        # The qsh path is relative to /wiki; the scope applies as on Jira.
        assert site.last_verdict()["canonical_request"] == (
            f"DELETE&/rest/api/content/{page['id']}&status=trashed"
        )
        await site.install("reader", scopes=["read"])
        status, refused = await site.call(
            "POST", "/rest/api/content", as_app="reader", body={"type": "page"}
        )
        assert (status, refused["statusCode"]) == (403, 403)
        assert "requires the WRITE scope" in refused["message"]
        status, me = await site.call("GET", "/rest/api/user/current", headers=ADMIN)
        assert (me["displayName"], me["email"]) == ("Admin", "admin@example.com")


async def test_reset_brings_the_seeded_product_back() -> None:
    async with emulated_site() as site:
        await site.install(scopes=["delete"])
        assert (await site.call("DELETE", "/rest/api/2/issue/DEMO-1"))[0] == 204
        async with site.session.post(f"{site.host.origin}/_emulator/reset") as reply:
            assert reply.status == 200
        assert site.host.product.issue("DEMO-1") is not None
        assert site.host.record.rest_calls == []
        async with site.session.get(f"{site.host.origin}/_emulator/record") as reply:
            assert (await reply.json())["rest_calls"] == []


# --- a real atlassian-connect-express app as the caller ------------------------------------


needs_node = pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run the atlassian-connect-express peer",
)


@needs_node
@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_ace_http_client_calls_are_checked_as_cloud_checks_them(
    ace_modules: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "atlassian-connect.json").write_text(json.dumps(ACE_DESCRIPTOR), encoding="utf-8")
    env = subprocess_keyring_env(tmp_path / "keyring.json")
    proxy_port = free_port()
    async with (
        run_host(require_signed_install=True) as jira,
        ace_app(ace_modules, project, f"http://127.0.0.1:{proxy_port}", jira.keys_url) as (
            ace,
            ace_url,
        ),
        aiohttp.ClientSession() as session,
    ):
        config = write_config(project, ace_url, proxy_port, jira)
        async with connect_dev_up(config, env) as up:
            await up.wait_event("lifecycle", lifecycle_event="installed")
            await ace.wait_event("tenant_saved")

            async def through_ace(method: str, url: str, **extra: Any) -> tuple[int, Any]:
                request = {"clientKey": jira.client_key, "method": method, "url": url, **extra}
                async with session.post(f"{ace_url}/_test/call-site", json=request) as reply:
                    answer = await reply.json()
                    assert reply.status == 200, answer
                    return answer["status"], answer["body"]

            await _ace_calls(jira, through_ace)


async def _ace_calls(
    jira: EmulatedHost, through_ace: Callable[..., Awaitable[tuple[int, Any]]]
) -> None:
    status, me = await through_ace("get", "/rest/api/2/myself")
    assert (status, me["accountType"], me["displayName"]) == (200, "app", "ACE peer")
    verdict = jira.record.rest_calls[-1].verdict
    assert verdict["accepted"] is True
    assert verdict["claims"]["iss"] == "ace-peer"  # the app key, not the clientKey
    assert verdict["claims"]["aud"] == [jira.client_key]
    assert verdict["qsh_received"] == verdict["qsh_expected"]

    # A query with spaces, `=`, and repeated and unsorted parameters: both sides agree on its qsh.
    status, found = await through_ace(
        "get",
        "/rest/api/2/search?jql=project%20%3D%20DEMO%20ORDER%20BY%20created&fields=summary&fields=status",
    )
    assert status == 200, found
    assert [issue["key"] for issue in found["issues"]] == ["DEMO-3", "DEMO-2", "DEMO-1"]
    assert set(found["issues"][0]["fields"]) == {"summary", "status"}
    status, issue = await through_ace("get", "/rest/api/3/issue/DEMO-1")
    assert (status, issue["key"]) == (200, "DEMO-1")

    # Tampered after signing: 401, and the record explains it.
    status, answer = await through_ace("get", "/rest/api/2/myself", tamper="query")
    assert status == 401
    assert answer["errorMessages"][0].startswith("Expecting claim 'qsh' to have value")
    verdict = jira.record.rest_calls[-1].verdict
    assert verdict["canonical_request"] == "GET&/rest/api/2/myself&tampered=1"
    assert verdict["app_canonical_request"] == "GET&/rest/api/2/myself&"
    assert verdict["qsh_received"] == jwt.query_string_hash("GET&/rest/api/2/myself&")

    # The descriptor asks for READ only.
    status, answer = await through_ace(
        "post",
        "/rest/api/2/issue",
        body={
            "fields": {"project": {"key": "DEMO"}, "summary": "x", "issuetype": {"name": "Task"}}
        },
    )
    assert status == 403
    assert "requires the WRITE scope" in answer["errorMessages"][0]
    assert jira.product.issue("DEMO-4") is None

    # App properties need no scope.
    root = "/rest/atlassian-connect/1/addons/ace-peer/properties"
    status, answer = await through_ace("put", f"{root}/config", body={"on": True})
    assert (status, answer) == (201, {"status-code": 201, "message": "Property created."})
    status, answer = await through_ace("get", f"{root}/config")
    assert (status, answer["value"]) == (200, {"on": True})
    status, _ = await through_ace("delete", f"{root}/config")
    assert status == 204
