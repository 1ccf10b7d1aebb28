"""Every long-running command stops on SIGINT and SIGTERM, even when started with both ignored.

A background job of a non-interactive shell (`connect-dev host &` in a CI script) inherits
SIGINT as SIG_IGN, and Python then installs no KeyboardInterrupt handler: only the explicit
handlers the commands install can stop them. So each test starts the real `connect-dev` with
both signals ignored, as `sh -c 'trap "" INT TERM; exec connect-dev ...'` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connect_devloop.host import run_host
from connect_devloop.ledger import Ledger

from .e2e import CONNECT_DEV, host_toml, recording_addon, write_config
from .test_tui_terminal import demo_on_a_terminal

SIGNALS = [signal.SIGINT, signal.SIGTERM]


def ignore_stop_signals() -> None:
    """Runs in the child before exec: what the shell of a background job does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Command:
    """A `connect-dev` subprocess with its stdout read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[str] = []

    async def read_until(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("exited early:\n" + "".join(self.seen))
                self.seen.append(line)
                match = re.search(pattern, line)
                if match:
                    return match

    async def stop_with(self, signum: int, timeout: float = 15.0) -> tuple[int, str, str]:
        """Send ``signum``; the exit code, all stdout and stderr once it has exited."""
        self.process.send_signal(signum)
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        assert self.process.returncode is not None
        return self.process.returncode, "".join(self.seen) + out.decode(), err.decode()


@contextlib.asynccontextmanager
async def connect_dev(*args: str) -> AsyncIterator[Command]:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=ignore_stop_signals,
    )
    try:
        yield Command(process)
    finally:
        # A failed assertion must not leave a process behind: it would ignore the signals
        # that stop the rest of the suite, and keep its port.
        if process.returncode is None:
            process.kill()
            await process.communicate()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_host_stops_on_the_signal_and_says_so(signum: signal.Signals) -> None:
    async with connect_dev("host", "--port", "0") as host:
        port = int((await host.read_until(r"at http://127\.0\.0\.1:(\d+)/jira"))[1])
        assert _listening(port)
        code, _, stderr = await host.stop_with(signum)
    assert code == 0, stderr
    assert stderr == f"connect-dev host: {signum.name}: stopping\n"
    assert not _listening(port)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_up_uninstalls_on_the_signal_and_exits_zero(
    project: Path, signum: signal.Signals
) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with connect_dev("up", "--no-tui", "--config", str(config)) as up:
            await up.read_until(r"^\S+ ready ")
            assert list(jira.record.plugins) == ["test-addon"]
            code, out, stderr = await up.stop_with(signum)
        assert code == 0, stderr
        assert (
            f"connect-dev: {signum.name}: uninstalling (press Ctrl-C again to quit at once)\n"
            in stderr
        )
        assert [u.key for u in jira.record.uninstalls] == ["test-addon"]
        assert jira.record.plugins == {}
    assert "[jira]  uninstalled test-addon" in out
    assert out.rstrip().endswith("stopped")
    assert Ledger(project / ".connect-dev" / "ledger.json").entries() == []


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_demo_uninstalls_on_the_signal_and_exits_zero(
    tmp_path: Path, signum: signal.Signals
) -> None:
    async with connect_dev("demo", "--no-tui", "--dir", str(tmp_path)) as demo:
        await demo.read_until(r"^\S+ ready ")
        code, out, stderr = await demo.stop_with(signum)
    assert code == 0, stderr
    assert (
        f"connect-dev: {signum.name}: uninstalling (press Ctrl-C again to quit at once)\n" in stderr
    )
    assert "[demo-jira]  uninstalled connect-devloop-demo" in out
    assert out.rstrip().endswith("stopped")
    assert Ledger(tmp_path / ".connect-dev" / "ledger.json").entries() == []


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
async def test_the_dashboard_uninstalls_on_the_signal_and_exits_zero(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """`kill -TERM` (or a SIGINT not typed on its terminal) reaches the dashboard too."""
    async with demo_on_a_terminal(tmp_path, preexec_fn=ignore_stop_signals) as terminal:
        await terminal.wait_for("● ready")
        terminal.process.send_signal(signum)
        assert await terminal.exit_code() == 0, terminal.text()
        await terminal.wait_for("stopped")
    assert "uninstalled connect-devloop-demo" in terminal.text()
    assert Ledger(tmp_path / ".connect-dev" / "ledger.json").entries() == []
