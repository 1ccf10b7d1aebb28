"""The traffic inspector through the real daemon: `connect-dev up` (a subprocess) in front of a
real atlassian-connect-express app, installed by the emulated host; `connect-dev requests` and
`connect-dev replay` (subprocesses too) ask it over its control socket.

A JSON POST signed with a short-lived token is captured with its bodies; once the token has
expired, ACE rejects the request sent unchanged and accepts the replay re-signed by connect-dev;
an edited replay (another query) is accepted too (qsh recomputed); a token of a tenant nobody
knows is not re-signed, and is sent unchanged only when asked. The HAR holds none of the
credentials that went by (the install's sharedSecret, the tokens). The control socket is 0600,
refuses another user and stays with the first `up` when a second one starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connect_devloop import jwt
from connect_devloop.host import run_host

from .ace.npm import NPM_TIMEOUT_S
from .e2e import CONNECT_DEV, Process, connect_dev_up
from .keyrings import REPO_ROOT, subprocess_keyring_env
from .test_ace import DESCRIPTOR, ace_app, ace_modules, free_port, write_config
from .test_har import har_validator_modules, validate

__all__ = ["ace_modules", "har_validator_modules"]

pytestmark = pytest.mark.skipif(
    not (os.environ.get("PATH") and __import__("shutil").which("node")),
    reason="node and npm are needed to run the atlassian-connect-express peer (CI has them)",
)

# Rewrites the query of the request line in the file it is given: n=1 → n=2 (an $EDITOR).
EDITOR = (
    "import pathlib, sys\n"
    "path = pathlib.Path(sys.argv[1])\n"
    "text = path.read_text()\n"
    "assert 'n=1' in text, text\n"
    "path.write_text(text.replace('n=1', 'n=2', 1))\n"
)


async def run(*args: str, env: dict[str, str], check: bool = True) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    code = process.returncode
    assert code is not None
    if check:
        assert code == 0, (out.decode(), err.decode())
    return code, out.decode(), err.decode()


async def post_json(url: str, token: str, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"Authorization": f"JWT {token}"}) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def request_event(up: Process, path_prefix: str, count: int) -> dict[str, Any]:
    """The ``count``-th request event whose path starts with ``path_prefix``."""
    async with asyncio.timeout(15):
        while True:
            found = [e for e in up.events("request") if e["path"].startswith(path_prefix)]
            if len(found) >= count:
                return found[count - 1]
            up.changed.clear()
            await up.changed.wait()


@pytest.mark.timeout(NPM_TIMEOUT_S + 150)
async def test_replays_through_the_daemon_are_accepted_by_ace(
    ace_modules: Path, har_validator_modules: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "atlassian-connect.json").write_text(json.dumps(DESCRIPTOR), encoding="utf-8")
    env = subprocess_keyring_env(tmp_path / "keyring.json")
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR, encoding="utf-8")
    env["EDITOR"] = f"{sys.executable} {editor}"
    env.pop("VISUAL", None)
    proxy_port = free_port()
    public_url = f"http://127.0.0.1:{proxy_port}"
    async with (
        run_host(require_signed_install=True) as jira,
        ace_app(ace_modules, project, public_url, jira.keys_url) as (ace, ace_url),
    ):
        config = write_config(project, ace_url, proxy_port, jira)
        cfg = ("--config", str(config))
        async with connect_dev_up(config, env) as up:
            await up.wait_event("ready")
            await ace.wait_event("tenant_saved")
            shared_secret = jira.installations[DESCRIPTOR["key"]].shared_secret
            socket_path = project / ".connect-dev" / "control.sock"
            mode = stat.S_IMODE(socket_path.stat().st_mode)
            assert stat.S_ISSOCK(socket_path.stat().st_mode)
            assert mode == 0o600, oct(mode)
            assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700

            # A JSON POST with a token that lives 2 s: accepted while fresh.
            _, token, _ = await run("token", *cfg, "--ttl", "2", "POST", "/echo?n=1", env=env)
            token = token.strip()
            body = {"issue": {"key": "DEV-1"}, "note": "captured with its body"}
            status, answer = await post_json(f"{public_url}/echo?n=1", token, body)
            assert status == 200, answer
            assert answer["body"] == body
            original = await request_event(up, "/echo", 1)
            number = original["id"]
            assert number > 0
            assert original["jwt"]["verdict"] == "verified"

            # Captured with both bodies (masked: the token is not in it).
            _, out, _ = await run("requests", *cfg, "--json", env=env)
            listed = {item["id"]: item for item in map(json.loads, out.splitlines())}
            assert listed[number]["method"] == "POST"
            assert listed[number]["request_size"] == len(json.dumps(body).encode())
            assert listed[number]["jwt"] == "verified"
            assert token not in out

            await asyncio.sleep(2.5)  # the token has expired
            # Unchanged, ACE refuses it; re-signed by connect-dev, ACE takes it.
            _, out, _ = await run("replay", *cfg, str(number), "--unchanged", "--json", env=env)
            unchanged = json.loads(out)
            assert unchanged["signing"] == "unchanged"
            assert unchanged["replay"]["status"] == 401, unchanged
            assert unchanged["replay"]["jwt"] == "expired"

            _, out, _ = await run("replay", *cfg, str(number), "--json", env=env)
            resigned = json.loads(out)
            assert resigned["signing"] == "re-signed", resigned
            assert resigned["replay"]["status"] == 200, resigned
            assert resigned["replay"]["jwt"] == "verified"
            assert resigned["replay"]["replay_of"] == number
            assert resigned["body_diff"] == ""  # ACE answered exactly as it did the original
            assert "qsh recomputed for 'POST&/echo&n=1'" in resigned["note"]
            event = await request_event(up, "/echo", 3)
            assert (event["replay_of"], event["status"]) == (number, 200)

            # The text form: the two side by side.
            _, out, _ = await run("replay", *cfg, str(number), env=env)
            assert "status  200" in out, out
            assert "body    the same" in out, out

            # Edited: another query; the qsh is computed for it, and ACE agrees.
            _, out, _ = await run("replay", *cfg, str(number), "--edit", "--json", env=env)
            edited = json.loads(out)
            assert edited["replay"]["status"] == 200, edited
            assert edited["replay"]["path"] == "/echo?n=2"
            assert "'POST&/echo&n=2'" in edited["note"]
            assert '"n": "2"' in edited["body_diff"]

            # A tenant connect-dev never saw: not re-signed, sent unchanged only when asked.
            stranger = jwt.encode_hs256(
                jwt.make_claims("not-installed-here", "POST", "/echo", "n=1"), "x" * 32
            )
            status, _ = await post_json(f"{public_url}/echo?n=1", stranger, body)
            assert status in (400, 401)
            unknown = (await request_event(up, "/echo", 6))["id"]
            code, out, err = await run("replay", *cfg, str(unknown), env=env, check=False)
            assert code == 1, (out, err)
            assert f"request {unknown} cannot be re-signed" in err
            assert "no sharedSecret is stored for clientKey 'not-installed-here'" in err
            assert f"connect-dev replay {unknown} --unchanged" in err
            assert len([e for e in up.events("request") if e["path"].startswith("/echo")]) == 6
            _, out, _ = await run("replay", *cfg, str(unknown), "--unchanged", "--json", env=env)
            assert json.loads(out)["replay"]["replay_of"] == unknown

            # HAR 1.2 of it all: no credential that went by, unless asked.
            har_path = tmp_path / "traffic.har"
            _, out, _ = await run("requests", *cfg, "--har", str(har_path), env=env)
            assert "credentials masked" in out
            assert stat.S_IMODE(har_path.stat().st_mode) == 0o600
            har_text = har_path.read_text(encoding="utf-8")
            har = json.loads(har_text)
            await validate(har_validator_modules, har)  # npm har-validator: HAR 1.2 as specified
            methods = [entry["request"]["method"] for entry in har["log"]["entries"]]
            assert "POST" in methods
            for secret in (shared_secret, token, stranger):
                assert secret not in har_text
            installed = [
                e for e in har["log"]["entries"] if e["request"]["url"].endswith("/installed")
            ]
            assert installed
            assert "sharedSecret" in installed[0]["request"]["postData"]["text"]
            _, _, _ = await run(
                "requests", *cfg, "--har", str(har_path), "--include-secrets", env=env
            )
            assert shared_secret in har_path.read_text(encoding="utf-8")

            # A second `up` in the project is refused, and the socket stays the first one's.
            code, _, err = await run("up", "--no-tui", *cfg, env=env, check=False)
            assert code == 1, err
            assert "another connect-dev is already running" in err
            _, out, _ = await run("requests", *cfg, "--json", env=env)
            assert len(out.splitlines()) >= 9

            # Another user is refused (as root: `nobody`, by the file system's 0700/0600).
            if os.getuid() == 0:
                code, _, err = await run_as_nobody(socket_path)
                assert code != 0
                assert "Permission denied" in err, err
        assert not socket_path.exists()  # removed when the run ended


async def run_as_nobody(socket_path: Path) -> tuple[int, str, str]:
    script = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({str(socket_path)!r})\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
