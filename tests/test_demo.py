"""`connect-dev demo` as a newcomer runs it: a subprocess, text output, edit, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest


async def read_until(
    stream: asyncio.StreamReader, pattern: str, seen: list[str], timeout: float = 20.0
) -> re.Match[str]:
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("demo exited early:\n" + "".join(seen))
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match


async def fetch_record(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        data: dict[str, Any] = await response.json()
        return data


async def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        data: dict[str, Any] = await response.json()
        return data


async def check_all_three_directions(control: str) -> None:
    """The sample add-on takes a webhook (JWT verified), calls the product's REST API as the
    app from its page, and the page asks for the same issue with AP.request."""
    fired = await post_json(
        f"{control}/webhooks/fire", {"event": "jira:issue_created", "issue": "DEMO-1"}
    )
    [delivery] = fired["deliveries"]
    assert delivery["url"].endswith("/webhook/issue-created")
    assert delivery["status"] == 204, delivery
    page = await post_json(f"{control}/send", {"key": "connect-devloop-demo", "path": "/hello"})
    assert page["status"] == 200
    body = page["body"]
    assert '<p id="rest-server"><code>GET /rest/api/2/issue/DEMO-1</code>' in body
    assert "HTTP 200: <strong>DEMO-1</strong>" in body
    assert "AP.request({url: '/rest/api/2/issue/DEMO-1'" in body
    webhooks = body.split('<ul id="webhooks">')[1]
    assert "<code>jira:issue_created</code> DEMO-1 " in webhooks
    assert ": verified for http://127.0.0.1:" in webhooks
    record = await fetch_record(f"{control}/record")
    [call] = record["rest_calls"]
    assert (call["method"], call["path"], call["status"]) == (
        "GET",
        "/jira/rest/api/2/issue/DEMO-1",
        200,
    )
    assert (call["auth"], call["app_key"]) == ("jwt", "connect-devloop-demo")


async def test_demo_installs_reinstalls_on_edit_and_cleans_up(tmp_path: Path) -> None:
    process = await start_demo(tmp_path, "--dir", str(tmp_path))
    assert process.stdout is not None
    seen: list[str] = []
    try:
        record_url = (await read_until(process.stdout, r"installed: (http://\S+)\)", seen))[1]
        descriptor = Path((await read_until(process.stdout, r"descriptor:\s+(\S+)", seen))[1])
        assert descriptor == tmp_path / "atlassian-connect.json"
        await read_until(process.stdout, r"^\S+ ready ", seen)
        record = await fetch_record(record_url)
        assert [i["key"] for i in record["installs"]] == ["connect-devloop-demo"]
        # The sample add-on verified the RS256 install signature and answered 204.
        assert record["installs"][0]["signed"] == "RS256"
        assert record["installs"][0]["callback_status"] == 204
        await check_all_three_directions(record_url.removesuffix("/record"))

        document = json.loads(descriptor.read_text())
        document["name"] = "edited by the test"
        descriptor.write_text(json.dumps(document, indent=2))
        await read_until(process.stdout, r"installed connect-devloop-demo in \d+ ms", seen)
        record = await fetch_record(record_url)
        assert record["installs"][-1]["descriptor"]["name"] == "edited by the test"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    output = "".join(seen) + out.decode()
    assert process.returncode == 0, err.decode()
    assert "[demo-jira]  uninstalled connect-devloop-demo" in output
    assert output.rstrip().endswith("stopped")
    # --dir: the project stays.
    assert (tmp_path / "connect-dev.toml").is_file()
    assert (tmp_path / "atlassian-connect.json").is_file()


async def test_demo_forge_deploys_installs_redeploys_on_edit_and_uninstalls(
    tmp_path: Path,
) -> None:
    """`connect-dev demo --forge`: the same loop through the Forge CLI's emulation."""
    process = await start_demo(tmp_path, "--forge", "--dir", str(tmp_path))
    assert process.stdout is not None
    seen: list[str] = []
    try:
        forge_url = (await read_until(process.stdout, r"Forge's state: (http://\S+)\)", seen))[1]
        await read_until(process.stdout, r"\[demo-forge\]  forge deploy done in \d+ ms", seen)
        await read_until(process.stdout, r"\[demo-forge\]  installed connect-devloop-demo", seen)
        # The site's signed `installed` callback reached the add-on through the proxy.
        assert any(
            re.search(r"\[demo-forge\]  lifecycle installed from \S+ \(verified\)", line)
            for line in seen
        ), seen
        assert any("[demo-forge]  forge install done in" in line for line in seen), seen
        manifest = (tmp_path / "manifest.yml").read_text()
        assert "baseUrl: ${CONNECT_DEV_BASE_URL}" in manifest
        assert "app/c0ffee00-" in manifest

        descriptor = tmp_path / "atlassian-connect.json"
        document = json.loads(descriptor.read_text())
        document["modules"]["generalPages"][0]["name"]["value"] = "Edited by the test"
        descriptor.write_text(json.dumps(document, indent=2))
        await read_until(process.stdout, r"\[demo-forge\]  forge deploy started", seen)
        await read_until(process.stdout, r"\[demo-forge\]  installed connect-devloop-demo", seen)
        assert "Edited by the test" in (tmp_path / "manifest.yml").read_text()
        state = await fetch_record(forge_url)
        (environment,) = state["environments"]
        assert [v["version"] for v in environment["versions"]] == ["1.0.0", "1.1.0"], state
    finally:
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    output = "".join(seen) + out.decode()
    assert process.returncode == 0, err.decode()
    assert "[demo-forge]  forge uninstall done in" in output, output
    assert "[demo-forge]  uninstalled connect-devloop-demo" in output
    assert output.rstrip().endswith("stopped")


async def start_demo(temp: Path, *args: str) -> asyncio.subprocess.Process:
    """`connect-dev demo --no-tui` without --dir, its temporary directory made in ``temp``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connect_devloop",
        "demo",
        "--no-tui",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(temp)},
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_demo_removes_its_temporary_directory_when_stopped(
    tmp_path: Path, signum: signal.Signals
) -> None:
    process = await start_demo(tmp_path)
    assert process.stdout is not None
    seen: list[str] = []
    try:
        project = Path((await read_until(process.stdout, r"project:\s+(\S+)", seen))[1])
        assert seen[-1].endswith("(temporary: removed on exit; --dir DIR keeps one)\n")
        assert project.parent == tmp_path
        await read_until(process.stdout, r"^\S+ ready ", seen)
        assert (project / "connect-dev.toml").is_file()
        assert seen[-1].rstrip().endswith("; Ctrl-C: uninstall and quit")
    finally:
        process.send_signal(signum)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    assert "[demo-jira]  uninstalled connect-devloop-demo" in out.decode()
    assert list(tmp_path.iterdir()) == []


async def test_demo_removes_its_temporary_directory_when_stopped_during_start_up(
    tmp_path: Path,
) -> None:
    """SIGTERM as soon as the banner shows: before or after `up` took the signals over."""
    process = await start_demo(tmp_path)
    assert process.stdout is not None
    await read_until(process.stdout, r"^connect-dev demo: ", [])
    assert len(list(tmp_path.iterdir())) == 1
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode in (0, 130), err.decode()
    assert list(tmp_path.iterdir()) == []


async def test_demo_removes_its_temporary_directory_on_a_forced_exit(tmp_path: Path) -> None:
    """A second Ctrl-C during the teardown quits at once (os._exit): the directory goes first.
    (The teardown may also be done before the second signal lands: then it exits 0.)"""
    process = await start_demo(tmp_path)
    assert process.stdout is not None
    assert process.stderr is not None
    await read_until(process.stdout, r"^\S+ ready ", [])
    process.send_signal(signal.SIGINT)
    await read_until(process.stderr, r"SIGINT: uninstalling", [])
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode in (0, 130), err.decode()
    if process.returncode == 130:
        assert "forced exit: the emulated host and the sample add-on end with it." in err.decode()
    assert list(tmp_path.iterdir()) == []


def test_demo_removes_its_temporary_directory_on_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    import connect_devloop.demo as demo

    made: list[Path] = []

    async def failing(directory: Path, *args: object, **kwargs: object) -> int:
        made.append(directory)
        (directory / "connect-dev.toml").write_text("", encoding="utf-8")
        raise RuntimeError("the demo broke")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(demo, "_demo", failing)
    with pytest.raises(RuntimeError, match="the demo broke"):
        demo.run_demo(project_dir=None, log_format=None, no_tui=True)
    assert [path.parent for path in made] == [tmp_path.resolve()]
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # put back as it was


async def test_demo_json_log_says_where_things_are_on_stderr(tmp_path: Path) -> None:
    process = await start_demo(tmp_path, "--log-format", "json")
    assert process.stdout is not None
    assert process.stderr is not None
    banner: list[str] = []
    try:
        await read_until(process.stderr, r"Ctrl-C: uninstall and quit\.$", banner)
        await read_until(process.stdout, r'"event": "ready"', [])
    finally:
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    assert [line.split(":")[0].strip() for line in banner] == [
        "connect-dev demo",
        "emulated Jira",
        "sample add-on",
        "descriptor",
        "project",
        "Edit the descriptor and save it",
    ]
    events = [json.loads(line) for line in out.decode().splitlines()]  # stdout: JSON only
    assert events[-1]["event"] == "stopped"
    assert list(tmp_path.iterdir()) == []
