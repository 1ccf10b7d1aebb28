"""Secrets never show: known secrets go through every path — `connect-dev up` as a subprocess
with -v in both log formats, a wrong password, 500s from the host and from the add-on, failed
JWT checks, a damaged tenant store, `login`/`token`/`open`/`logout` — and all output and every
file the project holds is searched for them.

The only places a secret may be are the keychain (here the test's file keyring), the inline
passwords the user wrote into connect-dev.toml, and, on a machine without a keychain,
``.connect-dev/tenant-secrets.json`` (mode 0600).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from connect_devloop import jwt
from connect_devloop.host import EmulatedHost, run_host

from .conftest import descriptor_text
from .keyrings import REPO_ROOT, memory_keyring, subprocess_keyring_env
from .servers import serve

__all__ = ["memory_keyring"]

CONNECT_DEV = [sys.executable, "-m", "connect_devloop"]
API_TOKEN = "ATATT3xFfGF0-api-token-from-the-environment"
WRONG_INLINE_PASSWORD = "wrong-inline-password-4711"
FLAKY_INLINE_PASSWORD = "flaky-inline-password-0815"
NGROK_AUTHTOKEN = "2ngrokAuthtoken_abcdefghijklmnopqrstuvwxyz"


@contextlib.asynccontextmanager
async def addon_server() -> AsyncIterator[str]:
    """Accepts lifecycle callbacks; /boom answers 500 with a stack-trace-like body."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if request.path == "/boom":
            return web.Response(status=500, text="Traceback: KeyError('tenant')")
        return web.Response(status=204 if request.method == "POST" else 200, text="")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve(app) as url:
        yield url


def write_project(project: Path, addon_url: str, good: str, bad: str, flaky: str) -> Path:
    descriptor = json.loads(descriptor_text())
    descriptor["lifecycle"]["enabled"] = "/enabled"
    (project / "atlassian-connect.json").write_text(json.dumps(descriptor), encoding="utf-8")
    config = project / "connect-dev.toml"
    config.write_text(
        f'[addon]\nurl = "{addon_url}"\n[proxy]\nport = 0\n[tunnel]\nprovider = "none"\n'
        f'[[hosts]]\nname = "good"\nurl = "{good}"\nusername = "admin"\n'
        'password_env = "REDACTION_TEST_API_TOKEN"\n'
        f'[[hosts]]\nname = "bad"\nurl = "{bad}"\nusername = "admin"\n'
        f'password = "{WRONG_INLINE_PASSWORD}"\n'
        f'[[hosts]]\nname = "flaky"\nurl = "{flaky}"\nusername = "admin"\n'
        f'password = "{FLAKY_INLINE_PASSWORD}"\n',
        encoding="utf-8",
    )
    return config


def forms(secret: str) -> list[str]:
    """A secret as it could leak: itself, in Basic auth, percent- or JSON-escaped."""
    return [
        secret,
        base64.b64encode(f"admin:{secret}".encode()).decode(),
        json.dumps(secret)[1:-1],
    ]


async def run_up(
    config: Path, env: dict[str, str], log_format: str, good: EmulatedHost, public: list[str]
) -> tuple[str, str]:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "-v",
        "up",
        "--no-tui",
        "--log-format",
        log_format,
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )
    assert process.stdout is not None
    lines: list[bytes] = []
    async with asyncio.timeout(30):
        while True:
            line = await process.stdout.readline()
            assert line, f"up exited early: {b''.join(lines).decode()}"
            lines.append(line)
            if b'"event": "ready"' in line or b" ready " in line:
                break
    ready = lines[-1].decode()
    public.append(
        json.loads(ready)["public_url"] if log_format == "json" else ready.split(" at ")[1]
    )
    public[-1] = public[-1].split("/atlassian-connect.json")[0].strip()
    await exercise(good, public[-1])
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return b"".join(lines).decode() + out.decode(), err.decode()


async def exercise(good: EmulatedHost, public_url: str) -> None:
    """Signed requests that pass, fail the add-on, and fail the JWT checks."""
    assert (await good.send_request("test-addon", "/page", query={"q": "1"})).status == 200
    hook = await good.send_request("test-addon", "/hook", method="POST", style="webhook")
    assert hook.status == 204
    assert (await good.send_request("test-addon", "/boom")).status == 500
    secret = good.installations["test-addon"].shared_secret
    assert secret is not None
    claims = jwt.make_claims(good.client_key, "GET", "/page", "q=2")
    expired = jwt.make_claims(good.client_key, "GET", "/page", now=1_600_000_000)
    tokens = [
        jwt.encode_hs256(claims, secret)[:-4] + "AAAA",  # tampered signature
        jwt.encode_hs256(expired, secret),
        jwt.encode_hs256(claims, secret),  # qsh for q=2, sent with q=3
    ]
    async with aiohttp.ClientSession() as session:
        for token in tokens:
            async with session.get(
                f"{public_url}/page?q=3", headers={"Authorization": f"JWT {token}"}
            ) as response:
                await response.read()


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> tuple[str, str, int]:
    result = subprocess.run(
        [*CONNECT_DEV, "-v", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    return result.stdout, result.stderr, result.returncode


def project_files(project: Path, allowed: set[Path]) -> dict[str, str]:
    return {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for path in project.rglob("*")
        if path.is_file() and path not in allowed
    }


@pytest.mark.timeout(180)
@pytest.mark.parametrize("keychain", ["file keyring", "no keychain"])
async def test_no_secret_in_any_output_or_file(tmp_path: Path, keychain: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    keyring_file = tmp_path / "keyring.json" if keychain == "file keyring" else None
    env = subprocess_keyring_env(keyring_file)
    env["REDACTION_TEST_API_TOKEN"] = API_TOKEN
    env["NGROK_AUTHTOKEN"] = NGROK_AUTHTOKEN
    outputs: dict[str, str] = {}
    public: list[str] = []
    async with (
        addon_server() as addon_url,
        run_host(users={"admin": API_TOKEN}) as good,
        run_host(users={"admin": "the-right-password-99"}) as bad,
        run_host(users={"admin": FLAKY_INLINE_PASSWORD}) as flaky,
    ):
        config = write_project(project, addon_url, good.base_url, bad.base_url, flaky.base_url)
        tenant_secrets: list[str] = []
        for log_format in ("text", "json"):
            flaky.fail_next(20, 500, f"Internal error; request had {FLAKY_INLINE_PASSWORD}")
            out, err = await run_up(config, env, log_format, good, public)
            outputs[f"up {log_format} stdout"] = out
            outputs[f"up {log_format} stderr"] = err
            tenant_secrets += [i.shared_secret or "" for i in good.record.installs]
            assert "lifecycle" in out
            assert "rejected the login" in out
        # A damaged tenant store: `up` warns and carries on.
        (project / ".connect-dev" / "tenants.json").write_text("{damaged", encoding="utf-8")
        flaky.fail_next(20, 500)
        out, err = await run_up(config, env, "json", good, public)
        outputs["up damaged store stdout"], outputs["up damaged store stderr"] = out, err
        assert "tenant store:" in out
        tenant_secrets += [i.shared_secret or "" for i in good.record.installs]
        (project / ".connect-dev" / "tenants.json").unlink()
        out, err = await run_up(config, env, "json", good, public)
        outputs["up again stdout"], outputs["up again stderr"] = out, err
        tenant_secrets += [i.shared_secret or "" for i in good.record.installs]

    secrets_file = project / ".connect-dev" / "tenant-secrets.json"
    if keychain == "no keychain":
        assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600
    else:
        assert not secrets_file.exists()

    # The commands that handle secrets, with -v.
    commands = {
        "login --ngrok": (["login", "--ngrok", "--password-stdin"], NGROK_AUTHTOKEN + "\n"),
        "login": (["login", "good", "--no-check", "--password-stdin", "--config", str(config)],
                  API_TOKEN + "\n"),
        "token": (["token", "--config", str(config), "GET", "/page?q=1"], ""),
        "open": (["open", "--config", str(config), "/page"], ""),
        "token unknown": (["token", "--tenant", "nobody", "--config", str(config), "GET", "/"],
                          ""),
        "logout": (["logout", "--config", str(config)], ""),
        "logout --ngrok --tenants": (["logout", "--ngrok", "--tenants", "--config", str(config)],
                                     ""),
    }  # fmt: skip
    for name, (args, stdin) in commands.items():
        out, err, code = run_cli(*args, env=env, stdin=stdin)
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = out, err
        if keychain == "no keychain" and name in ("login --ngrok", "login"):
            assert code == 1
            assert "the OS keychain is not available here" in err
        elif name == "token unknown":
            assert code == 1
        else:
            assert code == 0, (name, err)
    token = outputs["token stdout"].strip()
    assert jwt.unverified_claims(token)["qsh"] == jwt.query_string_hash("GET&/page&q=1")
    assert outputs["open stdout"].startswith(f"{public[-1]}/page?jwt=")

    # The user's own config holds the inline passwords; the secrets file is the 0600 fallback.
    allowed = {secrets_file, config}
    files = project_files(project, allowed)
    assert str(project / ".connect-dev" / "ledger.json") in files
    secrets = [API_TOKEN, WRONG_INLINE_PASSWORD, FLAKY_INLINE_PASSWORD, NGROK_AUTHTOKEN]
    secrets += [secret for secret in tenant_secrets if secret]
    assert len(set(tenant_secrets)) == 4, "each install issues a new sharedSecret"
    everything = {**outputs, **files}
    for secret in secrets:
        for form in forms(secret):
            leaks = [name for name, text in everything.items() if form in text]
            assert leaks == [], f"{form!r} ({secret[:6]}...) shows in {leaks}"
    # The searched output is the real thing: verdicts and failures are in it.
    joined = "\n".join(outputs.values())
    for expected in ("bad signature", "expired", "qsh mismatch", "HTTP 500", "-> 500"):
        assert expected in joined, expected
    assert not secrets_file.exists(), "logout --tenants forgets the secrets"
    if keyring_file is not None:
        assert NGROK_AUTHTOKEN not in keyring_file.read_text(encoding="utf-8")  # logged out
        assert "tenant test-addon" not in keyring_file.read_text(encoding="utf-8")
