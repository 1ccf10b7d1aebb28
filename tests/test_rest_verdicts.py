"""`up` reports an emulated site's verdicts on the app's REST calls as `rest_call` events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from connect_devloop import jwt
from connect_devloop.config import HostConfig
from connect_devloop.demo import prepare_project, serve_sample_addon
from connect_devloop.events import Event
from connect_devloop.host import run_host
from connect_devloop.rest_verdicts import RestVerdictWatch, emulated_site_origin

from .e2e import connect_dev_up
from .keyrings import subprocess_keyring_env

APP_KEY = "connect-devloop-demo"
ISSUE = "/rest/api/2/issue/DEMO-1"


async def call(url: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"JWT {token}"}) as answer,
    ):
        return answer.status


async def test_up_reports_a_refused_rest_call_with_both_qsh(tmp_path: Path) -> None:
    async with (
        run_host(context_path="/jira") as host,
        serve_sample_addon(host.keys_url) as addon,
    ):
        config = prepare_project(tmp_path, addon_url=addon, host_url=host.base_url)
        env = subprocess_keyring_env(None)
        async with connect_dev_up(config, env) as up:
            await up.wait_event("registered", host="demo-jira")
            secret = host.installations[APP_KEY].shared_secret
            assert secret is not None
            # The usual mistake: the qsh over the path with the context path in it.
            wrong = jwt.make_claims(APP_KEY, "GET", "/jira" + ISSUE)
            assert await call(host.base_url + ISSUE, jwt.encode_hs256(wrong, secret)) == 401
            right = jwt.make_claims(APP_KEY, "GET", ISSUE)
            assert await call(host.base_url + ISSUE, jwt.encode_hs256(right, secret)) == 200

            refused = await up.wait_event("rest_call", accepted=False)
            accepted = await up.wait_event("rest_call", accepted=True)
        assert refused == {
            "ts": refused["ts"],
            "event": "rest_call",
            "host": "demo-jira",
            "method": "GET",
            "path": "/jira" + ISSUE,
            "status": 401,
            "accepted": False,
            "reason": "qsh mismatch",
            "qsh_expected": jwt.query_string_hash(f"GET&{ISSUE}&"),
            "qsh_received": wrong["qsh"],
            "canonical_request": f"GET&{ISSUE}&",
            "app_canonical_request": f"GET&/jira{ISSUE}&",
            "message": f"Expecting claim 'qsh' to have value "
            f"'{jwt.query_string_hash(f'GET&{ISSUE}&')}' but instead it has the value "
            f"'{wrong['qsh']}'",
            "explanation": refused["explanation"],
            "app_key": APP_KEY,
            "auth": "jwt",
            "required_scope": None,
        }
        assert "context path" in refused["explanation"]
        assert (accepted["status"], accepted["reason"]) == (200, "accepted")
        # Each call once, in order; calls made before `up` started are not reported.
        assert [e["accepted"] for e in up.events("rest_call")] == [False, True]


async def test_only_emulated_sites_on_loopback_are_asked() -> None:
    def host(url: str, registrar: str = "upm") -> HostConfig:
        return HostConfig(name=url, url=url, product="jira", username="", registrar=registrar)

    assert emulated_site_origin(host("https://example.atlassian.net")) is None
    assert emulated_site_origin(host("http://127.0.0.1:2990/jira", "forge")) is None
    assert emulated_site_origin(host("http://localhost:2990/jira")) == "http://localhost:2990"

    emitted: list[Event] = []
    async with run_host(context_path="/jira") as site, aiohttp.ClientSession() as session:
        # A loopback port that answers nothing: tried once, then never again.
        watch = RestVerdictWatch(
            [host("http://127.0.0.1:9/jira"), host("https://example.atlassian.net")],
            session,
            emitted.append,
        )
        await asyncio.wait_for(watch.run(), 5)
        assert emitted == []
        found = RestVerdictWatch([host(site.base_url)], session, emitted.append, interval=0.01)
        task = asyncio.create_task(found.run())
        try:
            await asyncio.sleep(0.05)
            assert not task.done()  # an emulated site: watched
        finally:
            task.cancel()
