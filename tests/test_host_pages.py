"""The emulated site's pages (connect_devloop/host/ui), without a browser: the iframe URLs and
tokens a product builds, where each module type renders, what the pages ask the site, and how
the Connect bridge is obtained (with npm, or not).

An app installed through UPM serves its descriptor and checks every JWT the site sends it. The
bridge is a directory of stand-in files here; tests/test_browser.py runs the real one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from connect_devloop import jwt
from connect_devloop.host import EmulatedHost, Installation, run_host
from connect_devloop.host.connect_js import (
    CACHE_DIR_ENV,
    MARKER,
    PACKAGE_JSON,
    PINS,
    ConnectJsUnavailable,
    ensure_connect_js,
)
from connect_devloop.host.iframe import (
    context_claim,
    context_token,
    iframe_url,
    substitute,
)
from connect_devloop.host.lifecycle import EMULATED_ACCOUNT_ID

ADMIN = "Basic " + base64.b64encode(b"admin:admin").decode()
REMOTE_INSTALL = "application/vnd.atl.plugins.remote.install+json"
APP = "com.example.pages"
STAND_IN_IFRAME_JS = "/* stand-in iframe.js */"

# --- an app that checks what the site sends it ------------------------------------------------


@dataclass
class PagesApp:
    """A small Connect app: serves its descriptor, keeps the tenant's secret, verifies the JWT
    of every page request (qsh included) and answers static macros."""

    modules: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    shared_secret: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def descriptor(self) -> dict[str, Any]:
        return {
            "key": APP,
            "name": "Pages app",
            "baseUrl": self.origin + "/app",
            "authentication": {"type": "jwt"},
            "apiMigrations": {"signed-install": True},
            "lifecycle": {"installed": "/installed"},
            "scopes": ["read"],
            "modules": self.modules,
            **self.extra,
        }

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/atlassian-connect.json", self._descriptor)
        app.router.add_post("/app/installed", self._installed)
        app.router.add_get("/app/{path:.*}", self._page)
        app.router.add_post("/app/{path:.*}", self._page)
        return app

    async def _descriptor(self, request: web.Request) -> web.Response:
        return web.json_response(self.descriptor)

    async def _installed(self, request: web.Request) -> web.Response:
        self.shared_secret = (await request.json())["sharedSecret"]
        return web.Response(status=204)

    async def _page(self, request: web.Request) -> web.Response:
        token = jwt.token_from_request(request.headers.get("Authorization"), request.query)
        verdict = "no token"
        if token is not None and self.shared_secret is not None:
            try:
                claims = jwt.decode_hs256(token, self.shared_secret)
                canonical = jwt.canonical_request_from_url(
                    request.method, str(request.rel_url), self.origin + "/app"
                )
                jwt.check_qsh(claims, canonical, allow_context_qsh=True)
                verdict = "verified" if claims["qsh"] != jwt.CONTEXT_QSH else "context token"
            except jwt.JwtVerificationError as exc:
                verdict = f"rejected: {exc.reason}"
        self.requests.append(
            {"path": request.path, "query": dict(request.query), "verdict": verdict}
        )
        if request.path == "/app/macro":
            return web.Response(
                text=f'<p class="from-app">static macro {request.query.get("colour")}: '
                f"{verdict}</p>",
                content_type="text/html",
            )
        if request.path == "/app/broken-macro":
            return web.Response(status=500, text="boom")
        return web.Response(text=f"<p>{request.path}: {verdict}</p>", content_type="text/html")


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def install(host: EmulatedHost, descriptor_url: str, key: str) -> Installation:
    """Install through UPM, as connect-dev up would, and wait until the site lists the app."""
    headers = {"Authorization": ADMIN}
    async with aiohttp.ClientSession() as session:
        async with session.get(host.upm_url, headers=headers) as answer:
            token = answer.headers["upm-token"]
        async with session.post(
            host.upm_url,
            params={"token": token},
            data=json.dumps({"pluginUri": descriptor_url}),
            headers={**headers, "Content-Type": REMOTE_INSTALL},
        ) as answer:
            assert answer.status == 202, await answer.text()
    await host.wait_for(lambda record: any(i.key == key for i in record.installs), timeout=10)
    return host.installations[key]


@asynccontextmanager
async def site_with_app(
    modules: dict[str, Any], *, product: str = "jira", **extra: Any
) -> AsyncIterator[tuple[EmulatedHost, PagesApp]]:
    context_path = "/jira" if product == "jira" else "/wiki"
    app = PagesApp(modules, extra)
    async with (
        run_host(context_path=context_path, product=product) as host,
        serving(app.application()) as origin,
    ):
        app.origin = origin
        await install(host, f"{origin}/atlassian-connect.json", APP)
        yield host, app


@dataclass
class Page:
    status: int
    html: str
    headers: dict[str, str]

    @property
    def config(self) -> dict[str, Any]:
        match = re.search(
            r'<script type="application/json" id="connect-dev-site">(.*?)</script>', self.html
        )
        assert match is not None, self.html
        value = json.loads(match.group(1))
        assert isinstance(value, dict)
        return value

    def iframe(self, key: str) -> dict[str, Any]:
        found = [spec for spec in self.config["iframes"] if spec["key"] == key]
        assert len(found) == 1, self.config["iframes"]
        return found[0]


class Browser:
    """An HTTP client that keeps the site's session cookie (aiohttp's default jar refuses
    cookies of IP hosts)."""

    def __init__(self, host: EmulatedHost) -> None:
        self.host = host
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def get(self, path: str, **kwargs: Any) -> Page:
        url = path if path.startswith("http") else self.host.base_url + path
        async with self.session.get(url, allow_redirects=False, **kwargs) as response:
            return Page(response.status, await response.text(), dict(response.headers))

    async def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.host.base_url + path, json=body) as response:
            return response.status, await response.json()

    async def close(self) -> None:
        await self.session.close()


@asynccontextmanager
async def browsing(host: EmulatedHost) -> AsyncIterator[Browser]:
    browser = Browser(host)
    try:
        yield browser
    finally:
        await browser.close()


def stand_in_bridge(directory: Path) -> Path:
    """A directory that holds the pinned packages as someone installed them by hand, with
    stand-in files: the site reads it and never runs npm."""
    for name, version in PINS.items():
        package = directory / "node_modules" / name
        (package / "dist").mkdir(parents=True)
        (package / "package.json").write_text(json.dumps({"name": name, "version": version}))
    dist = directory / "node_modules" / "atlassian-connect-js" / "dist"
    (dist / "connect-host.js").write_text("/* stand-in connect-host.js */")
    (dist / "connect-host.css").write_text("/* stand-in connect-host.css */")
    (dist / "iframe.js").write_text(STAND_IN_IFRAME_JS)
    jquery = directory / "node_modules" / "jquery" / "dist" / "jquery.min.js"
    jquery.write_text("/* stand-in jquery */")
    (directory / "package.json").write_text('{"name": "installed-by-hand"}')
    return directory


@pytest.fixture
def bridge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = stand_in_bridge(tmp_path / "acjs")
    monkeypatch.setenv(CACHE_DIR_ENV, str(directory))
    return directory


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def claims_of(url: str, secret: str | None) -> dict[str, Any]:
    assert secret is not None
    return jwt.decode_hs256(query_of(url)["jwt"], secret)


def canonical_of(url: str, base_url: str) -> str:
    without_jwt = url.split("&jwt=")[0]
    return jwt.canonical_request_from_url("GET", without_jwt, base_url)


# --- iframe URLs and tokens -------------------------------------------------------------------


def installation(base_url: str, **descriptor: Any) -> Installation:
    document = {"key": APP, "baseUrl": base_url, **descriptor}
    return Installation(
        key=APP,
        descriptor=document,
        descriptor_text=json.dumps(document),
        plugin_uri="http://example.invalid/atlassian-connect.json",
        shared_secret="s3cret-s3cret-s3cret-s3cret-s3cret",
        installation_id="i-1",
    )


VARIABLES = {
    "issue.key": "DEMO-1",
    "issue.id": "10001",
    "issuetype.id": "10001",
    "project.key": "DEMO",
    "project.id": "10000",
    "user.accountId": EMULATED_ACCOUNT_ID,
}


async def test_an_iframe_url_is_base_url_plus_module_url_with_context_and_a_signed_jwt() -> None:
    async with run_host(context_path="/jira") as host:
        app = installation("https://app.example.com/connect/")
        url = iframe_url(
            host,
            app,
            "panel",
            "/panel/{issue.key}?issue={issue.id}&who={user.accountId}",
            VARIABLES,
        )
    base, _, query = url.partition("?")
    assert base == "https://app.example.com/connect/panel/DEMO-1"
    params = parse_qsl(query)
    assert [name for name, _ in params] == [
        "issue",
        "who",
        "xdm_e",
        "xdm_c",
        "cp",
        "lic",
        "cv",
        "jwt",
    ]
    assert dict(params) | {"jwt": "-"} == {
        "issue": "10001",
        "who": EMULATED_ACCOUNT_ID,
        "xdm_e": host.origin,
        "xdm_c": f"channel-{APP}__panel",
        "cp": "/jira",
        "lic": "none",
        "cv": "1001.0.0-SNAPSHOT",
        "jwt": "-",
    }
    claims = claims_of(url, app.shared_secret)
    # The qsh of this very request, relative to the app's base URL (PROTOCOL.md §5).
    canonical = canonical_of(url, "https://app.example.com/connect/")
    assert canonical.startswith("GET&/panel/DEMO-1&cp=%2Fjira&cv=")
    jwt.check_qsh(claims, canonical)
    assert claims["iss"] == host.client_key
    assert claims["sub"] == EMULATED_ACCOUNT_ID
    assert claims["exp"] - claims["iat"] == jwt.DEFAULT_TTL_S
    assert claims["context"] == {
        "jira": {
            "issue": {"id": "10001", "key": "DEMO-1", "issuetype": {"id": "10001"}},
            "project": {"id": "10000", "key": "DEMO"},
        }
    }


async def test_an_app_that_opts_in_gets_context_qsh_in_its_iframe_urls() -> None:
    async with run_host() as host:
        app = installation("https://app.example.com", apiMigrations={"context-qsh": True})
        url = iframe_url(host, app, "page", "/page", VARIABLES)
        claims = claims_of(url, app.shared_secret)
        assert claims["qsh"] == "context-qsh"
        token = jwt.decode_hs256(context_token(host, app, VARIABLES), str(app.shared_secret))
    assert token["qsh"] == "context-qsh"
    assert token["sub"] == EMULATED_ACCOUNT_ID
    assert token["iss"] == host.client_key
    assert "aud" not in token  # ACE would take aud[0] for the clientKey
    assert token["context"] == claims["context"]


async def test_links_out_and_apps_without_a_secret_get_no_jwt() -> None:
    async with run_host() as host:
        app = installation("https://app.example.com", enableLicensing=True)
        assert iframe_url(
            host, app, "w", "https://elsewhere.example/x?k={issue.key}", VARIABLES
        ) == ("https://elsewhere.example/x?k=DEMO-1")
        app.shared_secret = None
        url = iframe_url(host, app, "p", "/p", VARIABLES)
    assert "jwt" not in query_of(url)
    assert query_of(url)["lic"] == "active"


def test_context_variables_are_percent_encoded_and_unknown_ones_are_empty() -> None:
    assert substitute("/p/{issue.key}?q={x.y}&s={space.key}", {"issue.key": "A B/&?"}) == (
        "/p/A%20B%2F%26%3F?q=&s="
    )


def test_the_context_claim_of_a_confluence_macro() -> None:
    variables = {
        "page.id": "65537",
        "page.version": "2",
        "page.type": "page",
        "content.id": "65537",
        "content.version": "2",
        "content.type": "page",
        "space.key": "DEMO",
        "space.id": "98305",
        "macro.id": "m-1",
        "macro.hash": "m-1",
        "output.type": "display",
        "user.accountId": EMULATED_ACCOUNT_ID,
    }
    assert context_claim("confluence", variables) == {
        "confluence": {
            "content": {"id": "65537", "type": "page", "version": "2"},
            "space": {"id": "98305", "key": "DEMO"},
            "macro": {"id": "m-1", "hash": "m-1", "outputType": "display"},
        }
    }


# --- where modules render ---------------------------------------------------------------------

JIRA_MODULES: dict[str, Any] = {
    "generalPages": [{"key": "general", "name": {"value": "General"}, "url": "/general"}],
    "adminPages": [{"key": "admin", "name": {"value": "Admin page"}, "url": "/admin"}],
    "configurePage": {"key": "configure", "name": {"value": "Configure"}, "url": "/configure"},
    "webItems": [
        {
            "key": "top-item",
            "name": {"value": "Top item"},
            "url": "/top",
            "location": "system.top.navigation.bar",
        },
        {
            "key": "issue-dialog",
            "name": {"value": "Issue dialog"},
            "url": "/dialog?issue={issue.key}",
            "location": "operations-top-level",
            "target": {"type": "dialog", "options": {"width": "400px", "height": "300px"}},
        },
        {
            "key": "issue-link",
            "name": {"value": "Issue link"},
            "url": "/link?issue={issue.key}",
            "location": "jira.issue.tools",
        },
        {
            "key": "product-link",
            "name": {"value": "Product link"},
            "url": "/browse/{issue.key}",
            "context": "product",
            "location": "operations-operations",
        },
        {
            "key": "to-dialog-module",
            "name": {"value": "Opens a dialog module"},
            "url": "/unused",
            "location": "operations-top-level",
            "target": {"type": "dialogmodule", "options": {"key": "a-dialog"}},
        },
    ],
    "webPanels": [
        {
            "key": "left-panel",
            "name": {"value": "Left panel"},
            "url": "/left?issue={issue.key}",
            "location": "atl.jira.view.issue.left.context",
        },
        {
            "key": "right-panel",
            "name": {"value": "Right panel"},
            "url": "/right?project={project.key}",
            "location": "atl.jira.view.issue.right.context",
            "layout": {"height": "120px"},
        },
    ],
    "jiraIssueGlances": [
        {
            "key": "glance",
            "name": {"value": "Glance"},
            "icon": {"url": "/icon.svg", "width": 16, "height": 16},
            "content": {"type": "label", "label": {"value": "3 things"}},
            "target": {"type": "web_panel", "url": "/glance?issue={issue.key}"},
        }
    ],
    "jiraIssueContents": [
        {
            "key": "content",
            "name": {"value": "Quick add"},
            "icon": {"url": "/icon.svg", "width": 16, "height": 16},
            "tooltip": {"value": "Add it"},
            "target": {"type": "web_panel", "url": "/content?issue={issue.key}"},
        }
    ],
    "dialogs": [
        {
            "key": "a-dialog",
            "url": "/a-dialog",
            "options": {"size": "medium", "header": {"value": "A dialog"}},
        }
    ],
}


async def test_the_issue_page_shows_panels_glances_contents_and_web_items(bridge: Path) -> None:
    async with site_with_app(JIRA_MODULES) as (host, app), browsing(host) as browser:
        page = await browser.get("/browse/DEMO-2")
        assert page.status == 200
        assert "Login page is blank in Safari" in page.html
        # The bridge's scripts, then the site's.
        assert page.html.index("/s/connect-dev/jquery.js") < page.html.index(
            "/s/connect-dev/connect-host.js"
        )
        left, right = page.iframe("left-panel"), page.iframe("right-panel")
        assert left["url"].startswith(f"{app.origin}/app/left?issue=DEMO-2&xdm_e=")
        assert right["url"].startswith(f"{app.origin}/app/right?project=DEMO&xdm_e=")
        assert right["options"]["height"] == "120px"
        assert left["options"]["productContext"] == {
            "issue.key": "DEMO-2",
            "issue.id": "10002",
            "issuetype.id": "10002",
            "project.key": "DEMO",
            "project.id": "10000",
        }
        # Left panels are in the main column, right ones in the side column.
        main, side = page.html.split('<aside class="cd-issue-side">')
        assert 'data-module="left-panel"' in main
        assert 'data-module="right-panel"' in side
        assert (
            'data-ac-open="issue-glance" data-ac-app="com.example.pages" data-ac-key="glance"'
            in side
        )
        assert "3 things" in side
        assert f'<img src="{app.origin}/app/icon.svg"' in side
        assert 'data-ac-open="issue-contents"' in main
        assert 'title="Add it"' in main
        # The issue's Apps menu: dialogs are buttons, links lead where their context says.
        menu = main.split('class="cd-menu cd-issue-menu"')[1]
        assert 'data-ac-dialog="com.example.pages" data-ac-key="issue-dialog"' in menu
        assert (
            f'href="/jira/plugins/servlet/connect-dev/redirect/{APP}/issue-link?issue.key=DEMO-2'
            in menu
        )
        assert 'href="/jira/browse/DEMO-2"' in menu
        # The top bar's Apps menu: general pages and top web items.
        top = page.html.split('id="cd-apps-menu"')[1].split("</details>")[0]
        assert f'href="/jira/plugins/servlet/ac/{APP}/general">General</a>' in top
        assert f"/plugins/servlet/connect-dev/redirect/{APP}/top-item" in top
        assert page.config["dialogModules"] == {
            APP: {"a-dialog": {"options": {"size": "medium", "header": {"value": "A dialog"}}}}
        }
        assert page.headers["Set-Cookie"].startswith("cloud.session.token=")

        # The app accepts every iframe URL the page holds.
        async with aiohttp.ClientSession() as session:
            for spec in page.config["iframes"]:
                async with session.get(URL(spec["url"], encoded=True)) as answer:
                    assert answer.status == 200
        assert [r["verdict"] for r in app.requests] == ["verified", "verified"]

        missing = await browser.get("/browse/NOPE-1")
        assert missing.status == 404
        assert "No issue NOPE-1." in missing.html


async def test_page_modules_have_their_page_under_plugins_servlet_ac(bridge: Path) -> None:
    async with site_with_app(JIRA_MODULES) as (host, app), browsing(host) as browser:
        general = await browser.get(f"/plugins/servlet/ac/{APP}/general?project.key=DEMO&ac.x=1")
        assert general.status == 200
        spec = general.iframe("general")
        url = spec["url"]
        assert url.startswith(f"{app.origin}/app/general?ac.x=1&xdm_e=")
        assert spec["options"]["isFullPage"] is True
        assert general.config["context"] == {"project.key": "DEMO"}
        assert claims_of(url, app.shared_secret)["context"] == {
            "jira": {"project": {"key": "DEMO"}}
        }
        assert '<aside class="cd-sidebar">' not in general.html

        admin = await browser.get(f"/plugins/servlet/ac/{APP}/admin")
        assert admin.iframe("admin")["url"].startswith(f"{app.origin}/app/admin?")
        sidebar = admin.html.split('<aside class="cd-sidebar">')[1].split("</aside>")[0]
        assert f'href="/jira/plugins/servlet/ac/{APP}/admin" aria-current=page' in sidebar

        manage = await browser.get("/plugins/servlet/upm")
        assert f'<a class="cd-button" href="/jira/plugins/servlet/ac/{APP}/configure">' in (
            manage.html
        )
        assert "<code>jiraIssueGlances</code> Glance: the issue page&#x27;s right column" in (
            manage.html
        )
        configure = await browser.get(f"/plugins/servlet/ac/{APP}/configure")
        assert configure.iframe("configure")["url"].startswith(f"{app.origin}/app/configure?")

        for path in (f"/plugins/servlet/ac/{APP}/left-panel", f"/plugins/servlet/ac/{APP}/x"):
            assert (await browser.get(path)).status == 404
        host.installations[APP].enabled = False
        assert (await browser.get(f"/plugins/servlet/ac/{APP}/general")).status == 404


async def test_a_web_item_link_to_the_app_is_signed_when_followed(bridge: Path) -> None:
    async with site_with_app(JIRA_MODULES) as (host, app), browsing(host) as browser:
        answer = await browser.get(
            f"/plugins/servlet/connect-dev/redirect/{APP}/issue-link?issue.key=DEMO-1"
        )
        assert answer.status == 302
        target = answer.headers["Location"]
        assert target.startswith(f"{app.origin}/app/link?issue=DEMO-1&xdm_e=")
        jwt.check_qsh(
            claims_of(target, app.shared_secret), canonical_of(target, app.origin + "/app")
        )


async def test_the_pages_ask_the_site_for_tokens_and_iframes_as_the_signed_in_user(
    bridge: Path,
) -> None:
    async with site_with_app(JIRA_MODULES) as (host, app), browsing(host) as browser:
        context = {"issue.key": "DEMO-1", "issue.id": "10001"}
        # Not signed in yet: no tokens.
        status, answer = await browser.post_json(
            "/rest/connect-dev/1/context", {"app": APP, "context": context}
        )
        assert (status, answer) == (
            401,
            {"error": "not signed in: open one of the site's pages first"},
        )
        await browser.get("/")  # signs the viewer in
        status, answer = await browser.post_json(
            "/rest/connect-dev/1/context",
            {"app": APP, "context": {**context, "user.accountId": "forged"}},
        )
        assert status == 200
        assert answer["context"] == {"jira": {"issue": {"id": "10001", "key": "DEMO-1"}}}
        token = jwt.decode_hs256(answer["token"], str(app.shared_secret))
        assert (token["qsh"], token["sub"]) == ("context-qsh", EMULATED_ACCOUNT_ID)

        status, answer = await browser.post_json(
            "/rest/connect-dev/1/iframe",
            {"app": APP, "module": "to-dialog-module", "context": context},
        )
        assert status == 200
        assert answer["key"] == "a-dialog"
        assert answer["type"] == "dialogs"
        assert answer["url"].startswith(f"{app.origin}/app/a-dialog?xdm_e=")
        assert answer["dialog"] == {
            "chrome": True,
            "size": "medium",
            "header": {"value": "A dialog"},
        }

        status, answer = await browser.post_json(
            "/rest/connect-dev/1/iframe", {"app": APP, "module": "issue-dialog", "context": context}
        )
        assert answer["url"].startswith(f"{app.origin}/app/dialog?issue=DEMO-1&xdm_e=")
        assert answer["dialog"] == {"width": "400px", "height": "300px", "chrome": True}

        for body, expected in [
            ({"app": APP, "module": "nope", "context": {}}, 404),
            ({"app": "other", "module": "general", "context": {}}, 404),
            ({"app": APP, "module": "general", "context": {"a": 1}}, 400),
        ]:
            assert (await browser.post_json("/rest/connect-dev/1/iframe", body))[0] == expected
        async with browser.session.post(
            host.base_url + "/rest/connect-dev/1/context", data="app=x"
        ) as refused:
            assert refused.status == 415


async def test_the_issue_page_fires_each_declared_webhook_on_demand(bridge: Path) -> None:
    modules = {
        "webhooks": [
            {"event": "jira:issue_created", "url": "/hook?issue={issue.key}"},
            {"event": "jira:issue_updated", "url": "/hook"},
        ]
    }
    async with site_with_app(modules) as (host, app), browsing(host) as browser:
        page = await browser.get("/browse/DEMO-2")
        side = page.html.split('<aside class="cd-issue-side">')[1]
        for event in ("jira:issue_created", "jira:issue_updated"):
            assert f'data-cd-fire="{event}" data-cd-app="{APP}" data-cd-issue="DEMO-2"' in side
        assert 'id="cd-webhook-deliveries"' in side

        status, answer = await browser.post_json(
            "/rest/connect-dev/1/webhooks/fire",
            {"event": "jira:issue_created", "issue": "DEMO-2", "app": APP},
        )
        assert status == 200, answer
        [delivery] = answer["deliveries"]
        assert delivery["event"] == "jira:issue_created"
        assert delivery["url"] == f"{app.origin}/app/hook?issue=DEMO-2"
        assert delivery["status"] == 200
        assert answer["skipped"] == []
        # The app got it, signed for its URL; the site's record has it as fired.
        assert app.requests[-1]["path"] == "/app/hook"
        assert app.requests[-1]["verdict"] == "verified"
        assert [(d.event, d.trigger) for d in host.record.webhooks] == [
            ("jira:issue_created", "fire")
        ]

        for body, expected in [
            ({"event": "jira:issue_created", "issue": "NOPE-9"}, 404),
            ({"event": "confluence:page_created"}, 400),
            ({"event": 3}, 400),
        ]:
            assert (await browser.post_json("/rest/connect-dev/1/webhooks/fire", body))[0] == (
                expected
            )
    async with run_host() as bare, browsing(bare) as stranger:
        # Not signed in (no page opened): nothing is sent.
        status, answer = await stranger.post_json(
            "/rest/connect-dev/1/webhooks/fire", {"event": "jira:issue_created"}
        )
        assert (status, answer) == (
            401,
            {"error": "not signed in: open one of the site's pages first"},
        )


# --- Confluence macros ------------------------------------------------------------------------

CONFLUENCE_MODULES: dict[str, Any] = {
    "staticContentMacros": [
        {
            "key": "static-macro",
            "name": {"value": "Static macro"},
            "url": "/macro?colour={colour}&page={page.id}",
            "parameters": [
                {"identifier": "colour", "name": {"value": "Colour"}, "type": "enum",
                 "values": ["blue", "red"]},
            ],
        },
        {"key": "broken", "name": {"value": "Broken macro"}, "url": "/broken-macro"},
    ],
    "dynamicContentMacros": [
        {
            "key": "dynamic-macro",
            "name": {"value": "Dynamic macro"},
            "url": "/dynamic?macro={macro.id}&space={space.key}&out={output.type}",
            "width": "300px",
            "height": "200px",
        }
    ],
}  # fmt: skip


async def test_confluence_renders_static_macros_itself_and_dynamic_ones_in_iframes(
    bridge: Path,
) -> None:
    async with (
        site_with_app(CONFLUENCE_MODULES, product="confluence") as (host, app),
        browsing(host) as browser,
    ):
        home = host.product.page(str(host.product.spaces["DEMO"].homepage_id))
        assert home is not None
        host.product.update_page(
            home,
            host.product.default_user(),
            body='<p>Before.</p><ac:structured-macro ac:name="static-macro" ac:schema-version="1">'
            '<ac:parameter ac:name="colour">red</ac:parameter></ac:structured-macro>'
            "<p>After.</p>",
        )
        page = await browser.get(f"/spaces/DEMO/pages/{home.id}")
        assert page.status == 200
        body = page.html.split('<div class="cd-page-body">')[1].split(
            '<section class="cd-showcase">'
        )
        # The macro the page uses, in place, rendered by the app with a verified JWT.
        assert re.search(
            r"<p>Before.</p><div class=\"cd-macro cd-static\" data-macro=\"static-macro\">"
            r".*<p class=\"from-app\">static macro red: verified</p></div><p>After.</p>",
            body[0],
        )
        # The others once, in the showcase: a failing static one says why.
        assert (
            "Error rendering macro <strong>Broken macro</strong>: the app answered HTTP 500"
            in (body[1])
        )
        dynamic = page.iframe("dynamic-macro")
        assert dynamic["url"].startswith(
            f"{app.origin}/app/dynamic?macro={home.id}-2&space=DEMO&out=display&xdm_e="
        )
        assert (dynamic["options"]["width"], dynamic["options"]["height"]) == ("300px", "200px")
        claims = claims_of(dynamic["url"], app.shared_secret)
        assert claims["context"]["confluence"]["content"] == {
            "id": home.id,
            "type": "page",
            "version": "2",
        }
        macro_request = next(r for r in app.requests if r["path"] == "/app/macro")
        assert macro_request["query"] == {"colour": "red", "page": home.id}

        # Server's page URL, and a space's home.
        viewed = await browser.get(f"/pages/viewpage.action?pageId={home.id}")
        assert (viewed.status, viewed.headers["Location"]) == (
            302,
            f"/wiki/spaces/DEMO/pages/{home.id}",
        )
        assert (await browser.get("/spaces/DEMO")).headers["Location"] == (
            f"/wiki/spaces/DEMO/pages/{home.id}"
        )


# --- the bridge -------------------------------------------------------------------------------


async def test_all_js_is_iframe_js_then_the_sites_request_glue(bridge: Path) -> None:
    async with run_host() as host, browsing(host) as browser:
        for name in ("all.js", "all-debug.js"):
            script = await browser.get(f"/atlassian-connect/{name}")
            assert script.status == 200
            assert script.headers["Content-Type"].startswith("application/javascript")
            assert script.html.startswith(STAND_IN_IFRAME_JS + "\n;\n/*\n * connect-devloop")
        assert (await browser.get("/atlassian-connect/all.css")).status == 200
        assert "stand-in jquery" in (await browser.get("/s/connect-dev/jquery.js")).html
        assert "connectHost" in (await browser.get("/s/connect-dev/site.js")).html
        assert (await browser.get("/s/connect-dev/nope.js")).status == 404
        # The home page shows no app: no bridge, no banner.
        home = await browser.get("/")
        assert "connect-host.js" not in home.html
        assert home.config["bridge"] is False
        root = await browser.get("")
        assert (root.status, root.headers["Location"]) == (302, "/jira/")


async def test_without_the_bridge_pages_say_why_and_frame_apps_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory of someone else's, without the packages: the site does not run npm there.
    directory = tmp_path / "theirs"
    directory.mkdir()
    (directory / "package.json").write_text('{"name": "theirs"}')
    monkeypatch.setenv(CACHE_DIR_ENV, str(directory))
    async with site_with_app(JIRA_MODULES) as (host, _), browsing(host) as browser:
        page = await browser.get("/browse/DEMO-1")
        assert page.status == 200
        assert "No Connect bridge on this page:" in page.html
        assert f"{directory} has a package.json of its own but not atlassian-connect-js@" in (
            unescape(page.html)
        )
        assert "connect-host.js" not in page.html
        assert page.config["bridge"] is False
        left = page.iframe("left-panel")
        assert (
            f'<div class="ac-slot" id="{left["id"]}"><iframe class="ap-iframe" src="' in page.html
        )
        script = await browser.get("/atlassian-connect/all.js")
        assert script.status == 503
        assert script.html.startswith('console.error("connect-devloop: no Connect bridge: ')


# --- obtaining atlassian-connect-js with npm ---------------------------------------------------


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH, where a test writes its own `npm`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def write_npm(bin_dir: Path, script: str) -> None:
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + script)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)


INSTALLS_PINNED = "".join(
    f'mkdir -p node_modules/{name}/dist && echo \'{{"version": "{version}"}}\' '
    f"> node_modules/{name}/package.json\n"
    for name, version in PINS.items()
) + (
    'for f in connect-host.js connect-host.css iframe.js; do echo "/* $f */" '
    "> node_modules/atlassian-connect-js/dist/$f; done\n"
    "echo '/* jq */' > node_modules/jquery/dist/jquery.min.js\n"
    'echo "$@" >> calls\n'
)


def test_npm_installs_the_bridge_once_into_the_cache(fake_npm: Path, tmp_path: Path) -> None:
    write_npm(fake_npm, INSTALLS_PINNED)
    directory = tmp_path / "cache" / "acjs"
    bridge = ensure_connect_js(directory)
    assert (bridge.version, bridge.iframe_js, bridge.jquery_js) == (
        PINS["atlassian-connect-js"],
        b"/* iframe.js */\n",
        b"/* jq */\n",
    )
    assert (directory / "package.json").read_text() == PACKAGE_JSON
    assert json.loads(PACKAGE_JSON)["dependencies"] == dict(PINS)
    assert (directory / MARKER).exists()
    ensure_connect_js(directory)  # reused: npm is not run again
    calls = (directory / "calls").read_text().splitlines()
    assert calls == ["install --no-audit --no-fund --no-progress --loglevel=error "
                     "--ignore-scripts --prefer-offline"]  # fmt: skip
    # An install that stopped half way (no marker) is done again.
    (directory / MARKER).unlink()
    ensure_connect_js(directory)
    assert len((directory / "calls").read_text().splitlines()) == 2


def test_without_npm_or_offline_the_error_says_what_to_do(fake_npm: Path, tmp_path: Path) -> None:
    with pytest.raises(ConnectJsUnavailable) as missing:
        ensure_connect_js(tmp_path / "a")
    assert missing.value.message.startswith("npm is not installed, so the site's pages cannot get")
    assert missing.value.hint is not None
    assert "apt-get install npm" in missing.value.hint
    assert CACHE_DIR_ENV in missing.value.hint

    write_npm(
        fake_npm,
        "echo 'npm error code ENOTFOUND' >&2\n"
        "echo 'npm error request to https://registry.npmjs.org/jquery failed' >&2\nexit 1\n",
    )
    with pytest.raises(ConnectJsUnavailable) as offline:
        ensure_connect_js(tmp_path / "b")
    assert offline.value.message.startswith(
        "npm could not reach its registry while installing atlassian-connect-js@"
    )
    assert "ENOTFOUND" in offline.value.message
    assert offline.value.hint is not None
    assert offline.value.hint.startswith("The machine looks offline: connect it once")

    write_npm(fake_npm, "exit 0\n")
    with pytest.raises(ConnectJsUnavailable, match=r"npm install finished but .* does not hold"):
        ensure_connect_js(tmp_path / "c")


async def test_a_failure_is_remembered_so_pages_do_not_wait_for_npm_again(
    fake_npm: Path, tmp_path: Path
) -> None:
    from connect_devloop.host.connect_js import ConnectJsSource

    write_npm(fake_npm, f'echo "$@" >> "{tmp_path}/npm-calls"; exit 1\n')
    source = ConnectJsSource(tmp_path / "acjs")
    results = await asyncio.gather(source.get(), source.get(), return_exceptions=True)
    assert all(isinstance(result, ConnectJsUnavailable) for result in results)
    with pytest.raises(ConnectJsUnavailable):
        await source.get()
    assert len((tmp_path / "npm-calls").read_text().splitlines()) == 1
