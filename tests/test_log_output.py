"""The log is buffered, prompt and complete, and a host's lines keep their causal order.

`up` writes its log lines in batches (one write and flush per turn of the event loop, see
render/output.py). These tests count lines: every event emitted is on stdout after SIGINT,
SIGTERM, a forced exit (second SIGINT), with stdout redirected to a file, and a line reaches
the stream promptly when nothing else happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connect_devloop.events import EventBus, RequestServed, Stopped, Warning
from connect_devloop.host import run_host
from connect_devloop.render import JsonLinesRenderer, TextRenderer, flush_all
from connect_devloop.render import output as output_module

from .conftest import descriptor_text, eventually
from .e2e import (
    CONNECT_DEV,
    Process,
    RecordingAddon,
    connect_dev_up,
    host_toml,
    recording_addon,
    save,
    write_config,
)
from .keyrings import REPO_ROOT, subprocess_keyring_env

TS = 1_700_000_000.25


class Recording(io.StringIO):
    """A stream that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def request(number: int) -> RequestServed:
    return RequestServed(ts=TS, method="GET", path=f"/page-{number}", status=200, duration_ms=0.4)


# --- the buffered output ------------------------------------------------------------------------


async def test_a_buffered_line_is_flushed_promptly_without_further_events() -> None:
    stream = Recording()
    renderer = TextRenderer(stream, buffered=True)

    renderer(Stopped(ts=TS))
    started = time.monotonic()
    await eventually(lambda: stream.getvalue().endswith(" stopped\n"), timeout=0.5)

    assert time.monotonic() - started < 0.5
    assert stream.flushes == 1


async def test_a_burst_in_one_turn_of_the_loop_is_one_write_and_one_flush() -> None:
    stream = Recording()
    renderer = JsonLinesRenderer(stream, buffered=True)

    for number in range(200):
        renderer(request(number))
    assert stream.getvalue() == ""  # held until the end of this turn of the loop
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["path"] for line in lines] == [f"/page-{n}" for n in range(200)]
    assert (stream.writes, stream.flushes) == (1, 1)


async def test_a_large_batch_is_written_before_the_turn_ends() -> None:
    stream = Recording()
    renderer = TextRenderer(stream, buffered=True)

    number = 0
    while stream.writes == 0:
        renderer(request(number))
        number += 1
        assert number < 100_000
    assert renderer.output.pending < output_module.BATCH_LIMIT
    assert len(stream.getvalue()) >= output_module.BATCH_LIMIT


def test_without_a_running_loop_each_line_is_written_at_once() -> None:
    stream = Recording()
    TextRenderer(stream, buffered=True)(Stopped(ts=TS))
    assert stream.getvalue().endswith(" stopped\n")
    assert stream.flushes == 1


async def test_flush_all_writes_what_every_output_holds() -> None:
    text, lines = Recording(), Recording()
    TextRenderer(text, buffered=True)(Stopped(ts=TS))
    JsonLinesRenderer(lines, buffered=True)(Stopped(ts=TS))

    flush_all()

    assert text.getvalue().endswith(" stopped\n")
    assert json.loads(lines.getvalue())["event"] == "stopped"


class ClosedPipe(io.StringIO):
    attempts = 0

    def write(self, text: str) -> int:
        self.attempts += 1
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("buffered", [True, False])
async def test_a_closed_pipe_ends_the_log_quietly(buffered: bool) -> None:
    stream = ClosedPipe()
    bus = EventBus()
    bus.subscribe(TextRenderer(stream, buffered=buffered))

    bus.emit(Warning(ts=TS, message="first"))
    flush_all()
    bus.emit(Warning(ts=TS, message="second"))
    flush_all()
    await asyncio.sleep(0)

    assert stream.attempts == 1  # nothing more is tried once the reader is gone


def test_a_forced_exit_writes_every_line_emitted_before_it() -> None:
    """The second signal calls os._exit, which flushes nothing: lines emitted in the same turn
    of the loop as the signal's handler, still held for the end of that turn, go out first.

    The script emits 20 lines per turn of the loop while the signal's handler is queued; on
    stderr it says how many it emitted, so the test knows what must be on stdout."""
    script = """
import asyncio, os, signal, sys
from connect_devloop import daemon
from connect_devloop.events import EventBus, Warning

async def main():
    bus = EventBus()
    daemon.attach_log(bus, sys.stdout, "json", True)
    stop = asyncio.Event()
    daemon.install_signal_handlers(stop)
    stop.set()  # already tearing down: the next signal is the second one
    os.kill(os.getpid(), signal.SIGINT)
    for turn in range(10):
        for number in range(turn * 20, turn * 20 + 20):
            bus.emit(Warning(message=str(number)))
        print(f"emitted {turn * 20 + 20}", file=sys.stderr, flush=True)
        await asyncio.sleep(0)
    await asyncio.sleep(5)

asyncio.run(main())
"""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 130, result.stderr
    emitted = [int(line.split()[1]) for line in result.stderr.splitlines() if "emitted" in line]
    assert emitted, result.stderr
    messages = [json.loads(line)["message"] for line in result.stdout.splitlines()]
    assert messages == [str(number) for number in range(emitted[-1])]
    assert result.stderr.endswith("forced exit; run `connect-dev down` to remove what is left.\n")


# --- through the real `connect-dev up` ------------------------------------------------------------

FLOOD = 300


async def flood(base_url: str, count: int = FLOOD) -> None:
    """``count`` requests through the proxy, 20 at a time, each answered 200 by the add-on."""
    limit = asyncio.Semaphore(20)
    async with aiohttp.ClientSession() as session:

        async def one(number: int) -> None:
            async with limit, session.get(f"{base_url}/page-{number}") as response:
                assert response.status == 200
                await response.read()

        await asyncio.gather(*(one(number) for number in range(count)))


def served_paths(process: Process) -> list[str]:
    """The flood's requests in the log (not the host's descriptor fetches and callbacks)."""
    return [
        event["path"] for event in process.events("request") if event["path"].startswith("/page-")
    ]


@contextlib.asynccontextmanager
async def up_with_a_host(
    project: Path, tmp_path: Path
) -> AsyncIterator[tuple[Process, RecordingAddon, str]]:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        env = subprocess_keyring_env(tmp_path / "keyring.json")
        async with connect_dev_up(config, env) as up:
            ready = await up.wait_event("ready")
            yield up, addon, ready["public_url"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
async def test_no_line_is_lost_on_the_signal(
    project: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    async with up_with_a_host(project, tmp_path) as (up, _, url):
        await flood(url)
        stderr = await up.stop(signum)
    assert up.process.returncode == 0, stderr
    assert sorted(served_paths(up)) == sorted(f"/page-{n}" for n in range(FLOOD))
    assert len(up.events("deregistered")) == 1
    assert json.loads(up.lines[-1])["event"] == "stopped"


@pytest.mark.timeout(90)
async def test_a_second_sigint_exits_at_once_with_every_line_emitted_before_it(
    project: Path, tmp_path: Path
) -> None:
    async with up_with_a_host(project, tmp_path) as (up, addon, url):
        addon.uninstalled_delay = 10.0  # the teardown hangs on the add-on's callback
        await flood(url)
        up.process.send_signal(signal.SIGINT)
        await eventually(lambda: any("/uninstalled" in path for path, _ in addon.callbacks))
        stderr = await up.stop(signal.SIGINT)
    assert up.process.returncode == 130, stderr
    assert "forced exit" in stderr
    assert sorted(served_paths(up)) == sorted(f"/page-{n}" for n in range(FLOOD))
    assert up.events("stopped") == []  # it did not wait for the teardown


@pytest.mark.timeout(90)
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_every_line_reaches_a_file(project: Path, tmp_path: Path, log_format: str) -> None:
    log = tmp_path / "up.log"
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        with log.open("wb") as stdout:
            process = await asyncio.create_subprocess_exec(
                *CONNECT_DEV,
                "up",
                "--no-tui",
                "--log-format",
                log_format,
                "--config",
                str(config),
                cwd=REPO_ROOT,
                env=subprocess_keyring_env(tmp_path / "keyring.json"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=asyncio.subprocess.PIPE,
            )
        try:
            await eventually(lambda: _ready_url(log, log_format) is not None, timeout=30)
            url = _ready_url(log, log_format)
            assert url is not None
            await flood(url)
            process.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.communicate()
    assert process.returncode == 0, stderr.decode()
    lines = log.read_text(encoding="utf-8").splitlines()
    if log_format == "json":
        paths = [data.get("path", "") for data in map(json.loads, lines)]
        assert json.loads(lines[-1])["event"] == "stopped"
    else:
        paths = [line.split()[3] for line in lines if line.split()[1:2] == ["request"]]
        assert lines[-1].endswith(" stopped")
    paths = [path for path in paths if path.startswith("/page-")]
    assert sorted(paths) == sorted(f"/page-{n}" for n in range(FLOOD))


def _ready_url(log: Path, log_format: str) -> str | None:
    for line in log.read_text(encoding="utf-8").splitlines():
        if log_format == "json":
            data: dict[str, Any] = json.loads(line)
            if data["event"] == "ready":
                return str(data["public_url"])
        elif " ready " in line:
            return line.split("descriptor at ", 1)[1].split("/atlassian-connect.json")[0]
    return None


# --- causal order of a host's events --------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_a_hosts_lifecycle_installed_line_precedes_its_installed_line(
    project: Path, tmp_path: Path
) -> None:
    installs = 8
    # pingAfter 1 ms: the registrar sees the install done right after the host answered.
    async with (
        recording_addon() as addon,
        run_host(ping_after_ms=1) as jira,
        run_host(ping_after_ms=1) as confluence,
    ):
        config = write_config(
            project,
            addon.url,
            [host_toml("jira", jira.base_url), host_toml("other", confluence.base_url)],
        )
        env = subprocess_keyring_env(tmp_path / "keyring.json")
        async with connect_dev_up(config, env) as up:
            await up.wait_event_count("registered", 2)
            for number in range(1, installs):
                save(project / "atlassian-connect.json", descriptor_text(name=f"Save {number}"))
                await up.wait_event_count("registered", 2 * (number + 1), timeout=30)
            await up.stop()
    order = [
        (data["event"], data["host"])
        for data in (json.loads(line) for line in up.lines)
        if data["event"] == "registered"
        or (data["event"] == "lifecycle" and data["lifecycle_event"] == "installed")
    ]
    for host in ("jira", "other"):
        seen = [event for event, name in order if name == host]
        assert seen == ["lifecycle", "registered"] * installs, seen


@pytest.mark.timeout(90)
async def test_a_closed_pipe_neither_raises_nor_hangs(project: Path, tmp_path: Path) -> None:
    """`connect-dev up | head -3`: the reader goes away, the flood goes on, SIGINT still
    uninstalls, and nothing is printed about the pipe."""
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with connect_dev_up(config, subprocess_keyring_env(tmp_path / "k.json")) as up:
            url = (await up.wait_event("ready"))["public_url"]
            stdout = up.process.stdout
            assert stdout is not None
            transport = getattr(stdout, "_transport", None)
            assert transport is not None
            transport.close()  # what `head` does once it has its lines
            await flood(url)
            stderr = await up.stop(signal.SIGINT)
        assert up.process.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert "Exception ignored" not in stderr
        assert "Broken pipe" not in stderr
        assert [u.key for u in jira.record.uninstalls] == ["test-addon"]
