"""A real atlassian-connect-express app behind `connect-dev up`.

ACE 11.5.3 (npm, installed once per session into the pytest cache) is an add-on server written by
others. The emulated host installs it through `connect-dev up`; ACE itself verifies the RS256
`installed` callback with the key it fetches from the emulated host (CONNECT_KEYS_CDN_URL), and
a request signed by `connect-dev token` to an `addon.authenticate()` route gets 200 from ACE.
The proxy's verdicts agree with what ACE decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from connect_devloop import jwt
from connect_devloop.host import EmulatedHost, run_host

from .ace.npm import ACE_VERSION, NPM_TIMEOUT_S, AceUnavailable, ensure_ace
from .e2e import CONNECT_DEV, Process, connect_dev_up
from .keyrings import REPO_ROOT, memory_keyring, subprocess_keyring_env

__all__ = ["memory_keyring"]

APP_DIR = Path(__file__).parent / "ace"
ADDON_KEY = "ace-peer"
DESCRIPTOR: dict[str, Any] = {
    "key": ADDON_KEY,
    "name": "ACE peer",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "jwt"},
    "apiMigrations": {"signed-install": True},
    "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
    "scopes": ["read"],
    "modules": {
        "generalPages": [
            {
                "key": "hello",
                "name": {"value": "Hello"},
                "url": "/hello",
                "location": "system.top.navigation.bar",
            }
        ]
    },
}

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run the atlassian-connect-express peer (CI has them)",
)


@pytest.fixture(scope="session")
def ace_modules(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node_modules with atlassian-connect-express and express, installed from the npm registry
    once and kept in the pytest cache between sessions."""
    cache = getattr(request.config, "cache", None)
    directory = (
        cache.mkdir(f"ace-{ACE_VERSION}")
        if cache is not None
        else tmp_path_factory.mktemp(f"ace-{ACE_VERSION}")
    )
    try:
        return ensure_ace(directory)
    except AceUnavailable as exc:
        pytest.fail(str(exc))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def ace_app(
    modules: Path, project: Path, public_url: str, keys_url: str
) -> AsyncIterator[tuple[Process, str]]:
    env = {
        **os.environ,
        "NODE_PATH": str(modules),
        "NODE_ENV": "development",
        "AC_LOCAL_BASE_URL": public_url,
        "CONNECT_KEYS_CDN_URL": keys_url,
    }
    process = Process(
        await asyncio.create_subprocess_exec(
            "node",
            str(APP_DIR / "app.js"),
            cwd=project,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    )
    process.start_reading()
    try:
        listening = await process.wait_event("listening")
        yield process, f"http://127.0.0.1:{listening['port']}"
    finally:
        await process.stop(signal.SIGTERM, timeout=10)


async def connect_dev(*args: str, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


def write_config(project: Path, addon_url: str, proxy_port: int, host: EmulatedHost) -> Path:
    """connect-dev.toml beside ACE's own atlassian-connect.json: one descriptor for both."""
    config = project / "connect-dev.toml"
    config.write_text(
        f'[addon]\nurl = "{addon_url}"\n[proxy]\nport = {proxy_port}\n[tunnel]\nprovider = "none"\n'
        f'[[hosts]]\nname = "jira"\nurl = "{host.base_url}"\nusername = "admin"\n'
        'password = "admin"\n',
        encoding="utf-8",
    )
    return config


async def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"JWT {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text()


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_ace_accepts_the_install_and_a_token_signed_by_connect_dev(
    ace_modules: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "atlassian-connect.json").write_text(json.dumps(DESCRIPTOR), encoding="utf-8")
    env = subprocess_keyring_env(tmp_path / "keyring.json")
    proxy_port = free_port()
    public_url = f"http://127.0.0.1:{proxy_port}"
    async with (
        run_host(require_signed_install=True) as jira,
        ace_app(ace_modules, project, public_url, jira.keys_url) as (ace, ace_url),
    ):
        config = write_config(project, ace_url, proxy_port, jira)
        async with connect_dev_up(config, env) as up:
            await up.wait_event("ready")
            lifecycle = await up.wait_event("lifecycle", lifecycle_event="installed")
            assert lifecycle["verified"] is True, lifecycle
            assert lifecycle["client_key"] == jira.client_key

            # ACE verified the RS256 callback itself and stored the tenant.
            saved = await ace.wait_event("tenant_saved")
            assert saved["clientKey"] == jira.client_key
            assert (jira.record.installs[-1].signed, jira.record.installs[-1].callback_status) == (
                "RS256",
                204,
            )
            status, body = await get(f"{ace_url}/_test/tenants")
            assert (status, json.loads(body)) == (200, [jira.client_key])

            # A token from `connect-dev token`, through the proxy, to addon.authenticate().
            token = await connect_dev(
                "token", "--config", str(config), "GET", "/hello?greeting=hi&lang=en", env=env
            )
            status, body = await get(f"{public_url}/hello?lang=en&greeting=hi", token)
            assert status == 200, body
            assert json.loads(body)["clientKey"] == jira.client_key

            # `connect-dev open`: the whole signed URL, as an iframe would load it.
            url = await connect_dev("open", "--config", str(config), "/hello?x=1", env=env)
            assert url.startswith(f"{public_url}/hello?x=1&jwt=")
            status, body = await get(url)
            assert status == 200, body

            # The host's own iframe request.
            answer = await jira.send_request(ADDON_KEY, "/hello", query={"q": "a b"})
            assert answer.status == 200, answer.body

            # What ACE rejects, the proxy's verdict explains.
            tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            tampered_status, body = await get(f"{public_url}/hello?lang=en&greeting=hi", tampered)
            assert tampered_status == 400, body  # ACE: "Unable to decodeSymmetric JWT token"
            assert "Unable to decodeSymmetric JWT token" in body
            status, body = await get(f"{public_url}/hello?lang=fr&greeting=hi", token)
            assert status == 401
            assert "query hash does not match" in body

            async with asyncio.timeout(10):
                while len([e for e in up.events("request") if e["path"].startswith("/hello")]) < 5:
                    up.changed.clear()
                    await up.changed.wait()
            verdicts = [
                (e["status"], (e.get("jwt") or {}).get("verdict"))
                for e in up.events("request")
                if e["path"].startswith("/hello")
            ]
            assert verdicts == [
                (200, "verified"),
                (200, "verified"),
                (200, "verified"),
                (400, "bad signature"),
                (401, "qsh mismatch"),
            ]
            claims = jwt.unverified_claims(token)
            assert claims["iss"] == jira.client_key
        # SIGINT: the host uninstalls; ACE verifies the RS256 `uninstalled` callback too.
        deleted = await ace.wait_event("tenant_deleted")
        assert deleted["clientKey"] == jira.client_key
        assert [(c.event, c.status) for c in jira.record.callbacks][-1] == ("uninstalled", 204)
        lifecycles = [(e["lifecycle_event"], e["verified"]) for e in up.events("lifecycle")]
        assert lifecycles == [("installed", True), ("uninstalled", True)]


# Characters that percent-encoding reorders ("%" sorts before "-", "~" and letters), separators,
# "+" (a space in a query), and text beyond ASCII.
TRICKY = ["a", "b", "Z", "0", "-", "_", ".", "~", "/", ":", "?", "@", "!", "*", "'", "(", ")",
          ",", ";", "=", "&", "+", " ", "%", "é", "€", "\u00a0", "日", "😀"]  # fmt: skip


def tricky_urls(count: int, seed: int) -> list[str]:
    """URLs with repeated, reordered and oddly spelled query parameters (same list every run)."""
    rng = random.Random(seed)

    def text(shortest: int) -> str:
        return "".join(rng.choice(TRICKY) for _ in range(rng.randint(shortest, 4)))

    urls = []
    for _ in range(count):
        keys = [text(1) for _ in range(rng.randint(1, 3))]
        pairs = []
        for _ in range(rng.randint(1, 5)):
            value = quote(text(0), safe="")
            if rng.random() < 0.2:
                value = value.replace("%20", "+")
            pairs.append(f"{quote(rng.choice(keys), safe='')}={value}")
        urls.append("/p/x?" + "&".join(pairs))
    return urls


def test_canonical_requests_agree_with_npm_atlassian_jwt(ace_modules: Path) -> None:
    """The qsh connect-dev signs and checks is the one ACE computes, for any query."""
    urls = tricky_urls(1000, seed=20261122)
    result = subprocess.run(
        ["node", str(APP_DIR / "canonical.js"), str(ace_modules)],
        input=json.dumps(urls),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)
    ours = [jwt.canonical_request_from_url("GET", url) for url in urls]
    disagreements = [(url, a, b) for url, a, b in zip(urls, theirs, ours, strict=True) if a != b]
    assert disagreements == [], f"{len(disagreements)} of {len(urls)}: {disagreements[:3]}"
