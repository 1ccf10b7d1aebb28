"""The real `connect-dev` as a subprocess: signals, crash recovery, exit codes, messages."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connect_devloop.descriptor import digest_of
from connect_devloop.host import run_host
from connect_devloop.ledger import Ledger

from .conftest import descriptor_text
from .e2e import CONNECT_DEV, host_toml, recording_addon, run_cli, write_config


class Daemon:
    """`connect-dev up --log-format json` in a subprocess, with its events parsed as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def wait_event(self, name: str, timeout: float = 20.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            for event in self.events:
                if event["event"] == name:
                    return event
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    stderr = await self.process.stderr.read() if self.process.stderr else b""
                    raise AssertionError(f"exited before {name}: {stderr.decode()}")
                event = json.loads(line)
                self.events.append(event)
                if event["event"] == name:
                    return event

    async def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        self.events.extend(json.loads(line) for line in out.decode().splitlines() if line)
        assert self.process.returncode is not None
        return self.process.returncode, err.decode()


async def start_daemon(config: Path) -> Daemon:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "up",
        "--no-tui",
        "--log-format",
        "json",
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,  # never a terminal: `up` must not prompt
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Daemon(process)


@pytest.fixture
async def setup(project: Path) -> AsyncIterator[tuple[Path, Any]]:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        jira.addon = addon  # type: ignore[attr-defined] - lets a test slow the add-on down
        yield config, jira


async def test_sigint_uninstalls_everywhere_and_exits_zero(setup: tuple[Path, Any]) -> None:
    config, jira = setup
    daemon = await start_daemon(config)
    await daemon.wait_event("ready")
    assert list(jira.record.plugins) == ["test-addon"]
    daemon.process.send_signal(signal.SIGINT)
    code, stderr = await daemon.finish()
    assert code == 0, stderr
    assert "SIGINT: uninstalling" in stderr
    assert [u.key for u in jira.record.uninstalls] == ["test-addon"]
    assert jira.record.plugins == {}
    names = [
        e["event"]
        for e in daemon.events
        if e["event"] not in ("request", "lifecycle")
        and not e.get("message", "").startswith("tenant secrets are kept in")
    ]
    lifecycles = [
        (e["lifecycle_event"], e["verified"]) for e in daemon.events if e["event"] == "lifecycle"
    ]
    assert lifecycles == [("installed", True), ("uninstalled", True)]
    assert names == [
        "descriptor_loaded",
        "warning",
        "tunnel_opened",
        "registering",
        "registered",
        "ready",
        "deregistered",
        "tunnel_closed",
        "stopped",
    ] or names == [
        "descriptor_loaded",
        "tunnel_opened",
        "registering",
        "registered",
        "ready",
        "deregistered",
        "tunnel_closed",
        "stopped",
    ]
    assert all("ts" in e and "event" in e for e in daemon.events)
    assert Ledger(config.parent / ".connect-dev" / "ledger.json").entries() == []


async def test_sigterm_does_the_same(setup: tuple[Path, Any]) -> None:
    config, jira = setup
    daemon = await start_daemon(config)
    await daemon.wait_event("ready")
    daemon.process.send_signal(signal.SIGTERM)
    code, _ = await daemon.finish()
    assert code == 0
    assert jira.record.plugins == {}


async def test_second_sigint_quits_at_once_and_leaves_the_ledger(
    setup: tuple[Path, Any],
) -> None:
    config, jira = setup
    jira.addon.uninstalled_delay = 5.0  # the host's DELETE waits on this callback
    daemon = await start_daemon(config)
    await daemon.wait_event("ready")
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.process.stderr is not None
    first = await asyncio.wait_for(daemon.process.stderr.readline(), 10)
    assert b"SIGINT: uninstalling (press Ctrl-C again to quit at once)" in first
    daemon.process.send_signal(signal.SIGINT)
    code, stderr = await daemon.finish(timeout=4)
    assert code == 130
    assert "forced exit; run `connect-dev down` to remove what is left." in stderr
    ledger = Ledger(config.parent / ".connect-dev" / "ledger.json")
    assert [(e.host, e.key) for e in ledger.entries()] == [("jira", "test-addon")]


async def test_kill_9_then_down_removes_the_install(setup: tuple[Path, Any]) -> None:
    config, jira = setup
    daemon = await start_daemon(config)
    await daemon.wait_event("ready")
    daemon.process.kill()
    await daemon.process.wait()
    assert list(jira.record.plugins) == ["test-addon"]
    ledger = Ledger(config.parent / ".connect-dev" / "ledger.json")
    assert [(e.host, e.key) for e in ledger.entries()] == [("jira", "test-addon")]
    assert oct(ledger.path.stat().st_mode & 0o777) == "0o600"
    assert oct((ledger.path.parent / "lock").stat().st_mode & 0o777) == "0o600"

    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "down",
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    assert "[jira]  uninstalled test-addon (down)" in out.decode() or (
        "[jira]  uninstalled test-addon (recovery)" in out.decode()
    )
    assert "removed 1 install(s); 0 left" in out.decode()
    assert jira.record.plugins == {}
    assert ledger.entries() == []


async def test_up_after_a_crash_first_removes_what_was_left(setup: tuple[Path, Any]) -> None:
    config, jira = setup
    first = await start_daemon(config)
    await first.wait_event("ready")
    first.process.kill()
    await first.process.wait()
    second = await start_daemon(config)
    await second.wait_event("ready")
    recovery = [e for e in second.events if e["event"] == "deregistered"]
    assert recovery == [{**recovery[0], "host": "jira", "key": "test-addon", "reason": "recovery"}]
    assert [u.key for u in jira.record.uninstalls] == ["test-addon"]
    assert len(jira.record.installs) == 2
    second.process.send_signal(signal.SIGINT)
    code, _ = await second.finish()
    assert code == 0
    assert jira.record.plugins == {}


async def test_second_up_in_the_same_project_is_refused(setup: tuple[Path, Any]) -> None:
    config, _ = setup
    first = await start_daemon(config)
    await first.wait_event("ready")
    try:
        second = await start_daemon(config)
        code, stderr = await second.finish()
        assert code == 1
        assert (
            f"another connect-dev is already running in this project (pid {first.process.pid})"
            in stderr
        )
    finally:
        first.process.send_signal(signal.SIGINT)
        await first.finish()


def test_config_error_exits_2_with_file_line_key_and_hint(project: Path) -> None:
    config = project / "connect-dev.toml"
    config.write_text('[addon]\nurl = "http://localhost:3000"\n[proxy]\nprot = 8000\n')
    result = run_cli("up", "--no-tui", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        f"connect-dev: error: {config}:4: proxy.prot: unknown key\n  hint: did you mean 'port'?\n"
    )
    assert result.stdout == ""


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = run_cli("up", "--no-tui", cwd=tmp_path)
    assert result.returncode == 2
    assert "connect-dev.toml: config file not found" in result.stderr
    assert "  hint: Write one with `connect-dev init`" in result.stderr


def test_validate_reports_each_problem_with_its_path_and_exits_1(project: Path) -> None:
    path = project / "atlassian-connect.json"
    path.write_text(descriptor_text(key="bad key!", scopes=["read", "wirte"]))
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"{path}:2:3: $.key: 'bad key!' may contain only letters, digits, '-', '.' and '_'",
        f"{path}:17:5: $.scopes[1]: 'wirte' is not a Connect scope (did you mean 'write'?)",
    ]
    assert result.stderr == f"{path}: 2 errors\n"


def test_validate_ok_uses_the_config_descriptor(project: Path) -> None:
    (project / "connect-dev.toml").write_text('descriptor = "atlassian-connect.json"\n')
    result = run_cli("validate", cwd=project)
    assert result.returncode == 0, result.stderr
    digest = digest_of((project / "atlassian-connect.json").read_bytes())
    assert result.stdout.endswith(f"ok: test-addon (digest {digest})\n")


def test_help_does_not_import_the_heavy_modules() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from connect_devloop import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "heavy = [m for m in ('aiohttp', 'watchfiles', 'textual', 'pyngrok', 'jwt', 'keyring')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_console_script_is_installed() -> None:
    # Next to the interpreter: the venv's bin/ need not be on PATH.
    beside = Path(sys.executable).parent / "connect-dev"
    executable = str(beside) if beside.exists() else shutil.which("connect-dev")
    assert executable is not None, "pip install -e . should install the connect-dev script"
    result = subprocess.run(
        [executable, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0
    for command in ("up", "down", "validate", "host", "demo"):
        assert command in result.stdout


def test_a_taken_proxy_port_names_the_file_line_and_key(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = project / "connect-dev.toml"
        config.write_text(f'[addon]\nurl = "http://127.0.0.1:9"\n\n[proxy]\nport = {port}\n')
        result = run_cli("up", "--no-tui", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"connect-dev: error: {config}:5: proxy.port: proxy port {port} on 127.0.0.1 is not "
        "available"
    )
    assert "  hint: Set [proxy] port to a free port, or 0 to pick any free port." in result.stderr


async def test_host_command_serves_upm_at_its_context_path() -> None:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "host",
        "--port",
        "0",
        "--context",
        "/wiki",
        "--user",
        "ada:s3cret",
        "--require-signed-install",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert first.startswith("emulated confluence (cloud) at http://127.0.0.1:")
        base_url = first.split(" at ", 1)[1].strip()
        assert base_url.endswith("/wiki")
        auth = {"Authorization": "Basic " + base64.b64encode(b"ada:s3cret").decode()}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base_url}/rest/plugins/1.0/", headers=auth) as response:
                assert response.status == 200
                assert response.headers["upm-token"].lstrip("-").isdigit()
            async with session.get(f"{base_url}/rest/plugins/1.0/") as response:
                assert response.status == 401
            origin = base_url.removesuffix("/wiki")
            async with session.get(f"{origin}/_emulator") as response:
                assert (await response.json())["require_signed_install"] is True
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), 20)
        finally:
            # Whatever failed above, no host is left running (and holding its port).
            if process.returncode is None:
                process.kill()
                await process.communicate()
    assert process.returncode == 0
    assert stderr.decode() == "connect-dev host: SIGINT: stopping\n"


async def test_sigterm_still_stops_up_when_its_output_pipes_are_closed(
    setup: tuple[Path, Any],
) -> None:
    """`connect-dev up 2>&1 | head -1`: once the reader is gone, writes fail; signals must
    still stop the daemon and uninstall."""
    config, jira = setup
    daemon = await start_daemon(config)
    await daemon.wait_event("ready")
    assert daemon.process.stdout is not None
    assert daemon.process.stderr is not None
    # Close our read ends, as `head` does when it has its line.
    daemon.process.stdout.feed_eof()
    for transport_pipe in (daemon.process.stdout, daemon.process.stderr):
        transport = getattr(transport_pipe, "_transport", None)
        if transport is not None:
            transport.close()
    await asyncio.sleep(0.1)
    daemon.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(daemon.process.wait(), 20)
    assert jira.record.plugins == {}
    assert [u.key for u in jira.record.uninstalls] == ["test-addon"]
