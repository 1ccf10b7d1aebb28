"""`connect-dev demo` as a newcomer runs it: a subprocess, text output, edit, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp


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


async def test_demo_installs_reinstalls_on_edit_and_cleans_up(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connect_devloop",
        "demo",
        "--no-tui",
        "--dir",
        str(tmp_path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
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


async def test_demo_forge_deploys_installs_redeploys_on_edit_and_uninstalls(
    tmp_path: Path,
) -> None:
    """`connect-dev demo --forge`: the same loop through the Forge CLI's emulation."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connect_devloop",
        "demo",
        "--forge",
        "--no-tui",
        "--dir",
        str(tmp_path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
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
