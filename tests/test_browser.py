"""The emulated site in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright with ``executable_path``; no browser is ever downloaded) opens the site's pages with
Atlassian's own bridge, atlassian-connect-js (installed with npm once per session into the
pytest cache), and two real apps render in them: the bundled demo add-on, and an
atlassian-connect-express 11.5.3 app (tests/ace/app.js).

The apps' pages load the site's ``all.js`` and call ``AP`` as apps do: ``AP.context`` (ACE's
``addon.checkValidToken()`` accepts the token), ``AP.request`` (the site's REST API answers,
as the signed-in user), ``AP.user``, ``AP.resize`` (the iframe changes), ``AP.flag``,
``AP.dialog`` and ``AP.navigator``.

``CONNECT_DEV_SCREENSHOTS=docs/images`` makes ``test_screenshots`` write the screenshots of
docs/emulated-host.md there (they go to a temporary directory otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connect_devloop import jwt
from connect_devloop.demo import sample_descriptor, serve_sample_addon
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.host.connect_js import (
    ACJS_VERSION,
    CACHE_DIR_ENV,
    ConnectJsUnavailable,
    ensure_connect_js,
)
from connect_devloop.host.lifecycle import EMULATED_ACCOUNT_ID

from .ace.npm import NPM_TIMEOUT_S
from .test_ace import ace_app, ace_modules, free_port
from .test_host_pages import install, serving

__all__ = ["ace_modules"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# TESTING.md "Browser": what headless Chromium needs here (root, no GPU, no updates).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DEMO = "connect-devloop-demo"
ACE = "ace-browser"
SCREENSHOTS_ENV = "CONNECT_DEV_SCREENSHOTS"

playwright = pytest.importorskip(
    "playwright.async_api",
    reason="Playwright's Python package drives Chromium: pip install -e '.[test]'",
)
pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)",
)


@pytest.fixture(scope="session")
def connect_js_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """atlassian-connect-js (and jQuery) from npm, installed once and kept in the pytest
    cache, as the site keeps them in the user cache."""
    cache = getattr(request.config, "cache", None)
    name = f"atlassian-connect-js-{ACJS_VERSION}"
    directory = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    try:
        ensure_connect_js(directory)
    except ConnectJsUnavailable as exc:
        pytest.fail(f"{exc.message}\nhint: {exc.hint}")
    return directory


@pytest.fixture
def bridge(connect_js_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(connect_js_dir))
    return connect_js_dir


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def browser_page() -> AsyncIterator[Any]:
    """A page in a fresh headless Chromium; its console errors are printed if a test fails."""
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda error: print(f"page error: {error}"))
        page.on("console", lambda message: print(f"console {message.type}: {message.text}"))
        yield page


async def app_frame(page: Any, app: str, module: str) -> Any:
    """The frame of ``module``'s iframe once connect-host.js has its bridge to it."""
    handle = await page.wait_for_selector(f'iframe[id^="{app}__{module}__"]', state="attached")
    await page.wait_for_function("iframe => iframe.bridgeEstablished === true", arg=handle)
    return await handle.content_frame()


async def resized(page: Any, app: str, module: str, height: str) -> float:
    """Wait until the module's iframe has ``height`` (as ``AP.resize`` set it) and return the
    height it is drawn with, in CSS pixels."""
    selector = f'iframe[id^="{app}__{module}__"]'
    await page.wait_for_function(
        "([selector, height]) => document.querySelector(selector).style.height === height",
        arg=[selector, height],
    )
    box = await (await page.query_selector(selector)).bounding_box()
    return float(box["height"])


# --- the demo add-on --------------------------------------------------------------------------


def demo_descriptor(addon_url: str) -> dict[str, Any]:
    """The bundled sample descriptor (a general page), with a module for each place of the
    issue page: a web panel, an issue glance, a web item opening a dialog module."""
    document: dict[str, Any] = json.loads(
        sample_descriptor().replace("{{localBaseUrl}}", addon_url).replace("{{appKey}}", DEMO)
    )
    document["modules"].update(
        {
            "webPanels": [
                {
                    "key": "hello-panel",
                    "name": {"value": "Hello panel"},
                    "url": "/hello?issue={issue.key}",
                    "location": "atl.jira.view.issue.right.context",
                }
            ],
            "jiraIssueGlances": [
                {
                    "key": "hello-glance",
                    "name": {"value": "Hello glance"},
                    "icon": {"url": "/icon.svg", "width": 16, "height": 16},
                    "content": {"type": "label", "label": {"value": "1 tenant"}},
                    "target": {"type": "web_panel", "url": "/hello?glance={issue.key}"},
                }
            ],
            "dialogs": [
                {
                    "key": "hello-dialog",
                    "url": "/hello?in=dialog",
                    "options": {"size": "medium", "header": {"value": "Hello dialog"}},
                }
            ],
            "webItems": [
                {
                    "key": "open-hello-dialog",
                    "name": {"value": "Say hello"},
                    "url": "/unused",
                    "location": "operations-top-level",
                    "target": {"type": "dialogmodule", "options": {"key": "hello-dialog"}},
                }
            ],
            "configurePage": {"key": "configure", "url": "/hello?configure=1"},
        }
    )
    return document


@asynccontextmanager
async def demo_site() -> AsyncIterator[EmulatedHost]:
    """The emulated Jira with the demo add-on installed through UPM."""
    async with run_host(context_path="/jira") as host, serve_sample_addon(host.keys_url) as addon:
        document = demo_descriptor(addon)

        async def serve_descriptor(request: web.Request) -> web.Response:
            return web.json_response(document)

        descriptor = web.Application()
        descriptor.router.add_get("/atlassian-connect.json", serve_descriptor)
        async with serving(descriptor) as origin:
            await install(host, f"{origin}/atlassian-connect.json", DEMO)
            yield host


@pytest.mark.timeout(120)
async def test_the_demo_add_on_renders_and_uses_ap_in_chromium(bridge: Path) -> None:
    async with demo_site() as host, browser_page() as page:
        secret = host.installations[DEMO].shared_secret
        assert secret is not None

        # The general page, at /plugins/servlet/ac/{appKey}/{moduleKey}.
        await page.goto(f"{host.base_url}/plugins/servlet/ac/{DEMO}/hello-page")
        general = await app_frame(page, DEMO, "hello-page")
        text = await general.inner_text("body")
        assert f"JWT verified for tenant {host.base_url}" in text
        assert f"xdm_e={host.origin}, xdm_c=channel-{DEMO}__hello-page, cp=/jira" in text

        # The issue page's web panel, with its context substituted.
        await page.goto(f"{host.base_url}/browse/DEMO-1")
        panel = await app_frame(page, DEMO, "hello-panel")
        assert "query: issue=DEMO-1, xdm_e=" in await panel.inner_text("body")

        # AP.resize changes the iframe.
        await panel.evaluate("AP.resize('100%', '321px')")
        assert await resized(page, DEMO, "hello-panel", "321px") == 321

        # AP.context: a context token for this tenant and viewer, and the context.
        token = await panel.evaluate("AP.context.getToken()")
        claims = jwt.decode_hs256(token, secret)
        assert (claims["iss"], claims["sub"], claims["qsh"]) == (
            host.client_key,
            EMULATED_ACCOUNT_ID,
            "context-qsh",
        )
        context = await panel.evaluate("new Promise(r => AP.context.getContext(r))")
        assert context == {
            "jira": {
                "issue": {"id": "10001", "key": "DEMO-1", "issuetype": {"id": "10001"}},
                "project": {"id": "10000", "key": "DEMO"},
            }
        }
        assert claims["context"] == context

        # AP.request reaches the site's REST API as the signed-in user, for this app.
        answer = await panel.evaluate(
            "AP.request({url: '/rest/api/3/myself', success: () => {}})"
            ".then(r => ({status: r.xhr.status, body: JSON.parse(r.body),"
            " type: r.xhr.getResponseHeader('Content-Type')}))"
        )
        assert answer["status"] == 200
        assert answer["body"]["accountId"] == EMULATED_ACCOUNT_ID
        assert answer["type"].startswith("application/json")
        call = [c for c in host.record.rest_calls if c.path.endswith("/rest/api/3/myself")][-1]
        assert (call.status, call.auth, call.app_key, call.user) == (
            200,
            "session",
            DEMO,
            EMULATED_ACCOUNT_ID,
        )
        refused = await panel.evaluate(
            "new Promise(r => AP.request({url: '/rest/api/3/issue/NOPE-9', "
            "error: (xhr, status, err) => r({status: xhr.status, err})}))"
        )
        assert refused["status"] == 404

        assert await panel.evaluate("AP.user.getCurrentUser()") == {
            "atlassianAccountId": EMULATED_ACCOUNT_ID
        }
        assert await panel.evaluate("AP.user.getTimeZone()") == "Etc/UTC"

        # AP.flag: the site shows it.
        await panel.evaluate("AP.flag.create({title: 'Saved', body: 'All good', type: 'success'})")
        flag = await page.wait_for_selector("#cd-flags .cd-flag-success")
        assert "Saved" in await flag.inner_text()

        # AP.dialog: the app opens its dialog module; the dialog closes itself.
        await panel.evaluate("AP.dialog.create({key: 'hello-dialog'})")
        dialog = await app_frame(page, DEMO, "hello-dialog")
        assert "query: in=dialog" in await dialog.inner_text("body")
        assert await page.inner_text(".cd-dialog-header h2") == "Hello dialog"
        await dialog.evaluate("AP.dialog.close()")
        await page.wait_for_selector(".cd-dialog", state="detached")

        # A web item opens the same dialog from the Apps menu.
        await page.click(".cd-issue-menu summary")
        await page.click("text=Say hello")
        await app_frame(page, DEMO, "hello-dialog")
        await page.keyboard.press("Escape")
        await page.wait_for_selector(".cd-dialog", state="detached")

        # An issue glance opens its panel.
        await page.click("button.cd-glance")
        glance = await app_frame(page, DEMO, "hello-glance")
        assert "query: glance=DEMO-1" in await glance.inner_text("body")

        # AP.navigator goes to another issue.
        await panel.evaluate("AP.navigator.go('issue', {issueKey: 'DEMO-2'})")
        await page.wait_for_url(f"{host.base_url}/browse/DEMO-2")
        await app_frame(page, DEMO, "hello-panel")


# --- a real atlassian-connect-express app -----------------------------------------------------

ACE_DESCRIPTOR: dict[str, Any] = {
    "key": ACE,
    "name": "ACE in the browser",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "jwt"},
    "apiMigrations": {"signed-install": True},
    "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
    "scopes": ["read"],
    "modules": {
        "generalPages": [
            {"key": "ace-page", "name": {"value": "ACE page"}, "url": "/browser/page"}
        ],
        "webPanels": [
            {
                "key": "ace-panel",
                "name": {"value": "ACE panel"},
                "url": "/browser/page?issue={issue.key}",
                "location": "atl.jira.view.issue.left.context",
            }
        ],
    },
}


@pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run the atlassian-connect-express peer (CI has them)",
)
@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_an_ace_app_renders_and_accepts_the_context_token_in_chromium(
    bridge: Path, ace_modules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "ace"
    project.mkdir()
    (project / "atlassian-connect.json").write_text(json.dumps(ACE_DESCRIPTOR), encoding="utf-8")
    port = free_port()
    ace_url = f"http://127.0.0.1:{port}"
    async with run_host(context_path="/jira") as host:
        monkeypatch.setenv("PORT", str(port))
        # Offline, an ACE app loads all.js from the site instead of Atlassian's CDN.
        monkeypatch.setenv("AC_HOST_SCRIPT_URL", f"{host.base_url}/atlassian-connect/all.js")
        async with ace_app(ace_modules, project, ace_url, host.keys_url) as (ace, _):
            await install(host, f"{ace_url}/atlassian-connect.json", ACE)
            saved = await ace.wait_event("tenant_saved")
            assert saved["clientKey"] == host.client_key
            async with browser_page() as page:
                # The general page: ACE's addon.authenticate() accepted the iframe URL's JWT.
                await page.goto(f"{host.base_url}/plugins/servlet/ac/{ACE}/ace-page")
                general = await app_frame(page, ACE, "ace-page")
                assert await general.inner_text("h1") == "Hello from ACE"
                assert await general.inner_text("#client-key") == host.client_key

                # AP.context.getToken(): ACE's addon.checkValidToken() accepts the token.
                checked = await general.evaluate(
                    "AP.context.getToken().then(token => fetch('/browser/check-token',"
                    " {headers: {Authorization: 'JWT ' + token}}))"
                    ".then(async r => ({status: r.status, body: await r.json()}))"
                )
                assert checked == {
                    "status": 200,
                    "body": {
                        "clientKey": host.client_key,
                        "userAccountId": EMULATED_ACCOUNT_ID,
                        "context": {"jira": {}},
                    },
                }
                # A token ACE did not get from the site is refused.
                forged = await general.evaluate(
                    "AP.context.getToken().then(token => fetch('/browser/check-token',"
                    " {headers: {Authorization: 'JWT ' + token.slice(0, -4) + 'AAAA'}}))"
                    ".then(r => r.status)"
                )
                assert 400 <= forged < 500

                # AP.request: the site's REST API, as the user, in the app's scopes.
                myself = await general.evaluate(
                    "AP.request('/rest/api/3/myself').then(r => JSON.parse(r.body))"
                )
                assert myself["accountId"] == EMULATED_ACCOUNT_ID

                # The issue page's panel, with ACE checking the qsh over the context.
                await page.goto(f"{host.base_url}/browse/DEMO-2")
                panel = await app_frame(page, ACE, "ace-panel")
                assert await panel.inner_text("h1") == "Hello from ACE"
                assert json.loads(await panel.inner_text("#query"))["issue"] == "DEMO-2"
                panel_token = await panel.evaluate(
                    "AP.context.getToken().then(token => fetch('/browser/check-token',"
                    " {headers: {Authorization: 'JWT ' + token}})).then(r => r.json())"
                )
                assert panel_token["context"] == {
                    "jira": {
                        "issue": {"id": "10002", "key": "DEMO-2", "issuetype": {"id": "10002"}},
                        "project": {"id": "10000", "key": "DEMO"},
                    }
                }

                # AP.resize, from ACE's page.
                await panel.evaluate("AP.resize('100%', '222px')")
                assert await resized(page, ACE, "ace-panel", "222px") == 222


# --- screenshots for the docs -----------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_screenshots(bridge: Path, tmp_path: Path) -> None:
    """The pictures of docs/emulated-host.md, taken from the demo add-on on the site."""
    directory = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    async with demo_site() as host, browser_page() as page:
        await page.goto(f"{host.base_url}/browse/DEMO-2")
        panel = await app_frame(page, DEMO, "hello-panel")
        await page.click("button.cd-glance")
        await app_frame(page, DEMO, "hello-glance")
        # all.js sizes each iframe to its content once it has loaded.
        for module in ("hello-panel", "hello-glance"):
            await page.wait_for_function(
                "selector => document.querySelector(selector).style.height !== ''",
                arg=f'iframe[id^="{DEMO}__{module}__"]',
            )
        await page.screenshot(path=str(directory / "site-issue.png"))

        await panel.evaluate(
            "AP.flag.create({title: 'Hello from the demo add-on', body: 'AP.flag, through "
            "the site', type: 'success'})"
        )
        await panel.evaluate("AP.dialog.create({key: 'hello-dialog'})")
        await app_frame(page, DEMO, "hello-dialog")
        await page.screenshot(path=str(directory / "site-dialog.png"))

        await page.goto(f"{host.base_url}/plugins/servlet/ac/{DEMO}/hello-page")
        await app_frame(page, DEMO, "hello-page")
        await page.screenshot(path=str(directory / "site-general-page.png"))

        await page.goto(f"{host.base_url}/plugins/servlet/upm")
        await page.screenshot(path=str(directory / "site-manage-apps.png"))
    for name in ("site-issue", "site-dialog", "site-general-page", "site-manage-apps"):
        assert (directory / f"{name}.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(120)
async def test_the_fire_button_delivers_a_webhook_the_demo_add_on_verifies(bridge: Path) -> None:
    """Product → app from the site's UI: the issue page's Fire button sends the declared
    webhook, the demo add-on verifies its JWT, and the page lists the delivery."""
    async with demo_site() as host, browser_page() as page:
        await page.goto(f"{host.base_url}/browse/DEMO-1")
        await page.click('[data-cd-fire="jira:issue_updated"]')
        delivered = await page.wait_for_selector("#cd-webhook-deliveries li")
        text = await delivered.inner_text()
        assert text.startswith("jira:issue_updated → "), text
        assert ": HTTP 204 in " in text, text
        (delivery,) = [d for d in host.record.webhooks if d.event == "jira:issue_updated"]
        assert delivery.status == 204
        assert delivery.trigger == "fire"
        # The add-on lists the verified delivery on its general page.
        await page.goto(f"{host.base_url}/plugins/servlet/ac/{DEMO}/hello-page")
        general = await app_frame(page, DEMO, "hello-page")
        assert "jira:issue_updated" in await general.inner_text("body")
