"""Nothing dies silently: hostile saves, crashing tasks, moved files and a host that never answers.

The loop is driven the way a user drives it: saves on disk while `up` runs (in this event loop
or as a real `connect-dev` subprocess), against the emulated host on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from connect_devloop import supervisor as supervisor_module
from connect_devloop.events import Error
from connect_devloop.host import run_host
from connect_devloop.tasks import keep_running

from .conftest import descriptor_text, eventually
from .e2e import (
    Process,
    connect_dev_up,
    host_toml,
    recording_addon,
    running_up,
    save,
    write_config,
)
from .keyrings import subprocess_keyring_env

# Saves that once made the parser or validator raise something else than DescriptorError, or
# that are hostile in shape, size, depth or encoding. Each must be reported as invalid.
HOSTILE_SAVES: list[bytes] = [
    descriptor_text(authentication={"type": ["jwt"]}).encode(),
    descriptor_text(scopes=[["read"]]).encode(),
    descriptor_text(lifecycle=["installed"]).encode(),
    descriptor_text(baseUrl={"url": "http://x"}, modules=[]).encode(),
    descriptor_text(key=None).encode(),
    b"[" * 100_000 + b"]" * 100_000,
    b'{"key": ' + b"9" * 10_000 + b"}",
    b'{"key": NaN, "baseUrl": Infinity}',
    b'{"key": "\\ud800"}',
    b"\xff\xfe{\x00}\x00",
    b"\x00" * 1000,
    b"",
]


def test_keep_running_reports_each_crash_and_restarts() -> None:
    reported: list[Any] = []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError(f"crash {calls}")

    asyncio.run(keep_running("flaky task", flaky, reported.append, first_delay=0.01))

    assert calls == 3
    assert [type(event) for event in reported] == [Error, Error]
    first = reported[0]
    assert first.task == "flaky task"
    assert re.fullmatch(
        r"flaky task stopped on an unexpected error: RuntimeError "
        r"\(raised at test_resilience\.py:\d+\)",
        first.message,
    )
    assert "crash 1" not in first.message  # an error's text may quote a secret
    assert "It restarts in 0.01 s" in first.hint
    assert "restarts in 0.02 s" in reported[1].hint


async def test_a_crash_inside_the_watch_is_reported_and_the_watch_restarts(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_watch_file = supervisor_module.watch_file
    crashes = 0

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal crashes
        if crashes == 0:
            crashes += 1
            raise RuntimeError("the watch broke")
        return real_watch_file(*args, **kwargs)

    monkeypatch.setattr(supervisor_module, "watch_file", crash_once)
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up:
            error = await up.events.wait_event("error", timeout=10)
            assert error.task == "descriptor watcher"  # type: ignore[attr-defined]
            assert error.message.startswith(  # type: ignore[attr-defined]
                "descriptor watcher stopped on an unexpected error: RuntimeError (raised at "
            )
            await asyncio.sleep(0.8)  # the restart pause, then the watch is back
            save(project / "atlassian-connect.json", descriptor_text(name="After the crash"))
            await eventually(lambda: len(jira.record.installs) == 2)
    assert jira.record.installs[-1].descriptor["name"] == "After the crash"


async def test_a_validator_bug_costs_the_save_not_the_watch(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_parse = supervisor_module.descriptors.parse

    def parse(raw: bytes, *, path: str = "") -> Any:
        if b"trigger-bug" in raw:
            raise TypeError("unhashable type: 'list'")
        return real_parse(raw, path=path)

    monkeypatch.setattr(supervisor_module.descriptors, "parse", parse)
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up:
            save(project / "atlassian-connect.json", descriptor_text(name="trigger-bug"))
            invalid = await up.events.wait_event("descriptor_invalid")
            message = invalid.errors[0]["message"]  # type: ignore[attr-defined]
            assert message == "could not be checked: TypeError: unhashable type: 'list'"
            assert up.events.of("error")
            save(project / "atlassian-connect.json", descriptor_text(name="Fixed"))
            await eventually(lambda: len(jira.record.installs) == 2)
    assert jira.record.installs[-1].descriptor["name"] == "Fixed"


# --- through the real `connect-dev up` -----------------------------------------------------------


@contextlib.asynccontextmanager
async def up_in(project: Path, tmp_path: Path) -> AsyncIterator[Process]:
    """`connect-dev up` for ``project``, with a keyring of its own."""
    env = subprocess_keyring_env(tmp_path / "keyring.json")
    async with connect_dev_up(project / "connect-dev.toml", env) as process:
        yield process


@pytest.mark.timeout(120)
async def test_hostile_saves_during_up_are_reported_and_the_next_good_save_installs(
    project: Path, tmp_path: Path
) -> None:
    descriptor = project / "atlassian-connect.json"
    async with recording_addon() as addon, run_host() as jira:
        write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with up_in(project, tmp_path) as up:
            await up.wait_event("ready")
            for number, hostile in enumerate(HOSTILE_SAVES, start=1):
                descriptor.write_bytes(hostile)
                await up.wait_event_count("descriptor_invalid", number, timeout=20)
                invalid = up.events("descriptor_invalid")[-1]
                assert invalid["errors"], invalid
                assert all(problem["path"] for problem in invalid["errors"]), invalid
            save(descriptor, descriptor_text(name="Good again"))
            await eventually(lambda: len(jira.record.installs) == 2, timeout=20)
            assert up.events("error") == []
            stderr = await up.stop()
    assert jira.record.installs[-1].descriptor["name"] == "Good again"
    assert "Traceback" not in stderr
    assert up.process.returncode == 0


@pytest.mark.timeout(60)
async def test_a_symlinked_descriptor_outside_the_project_is_followed(
    project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "real-descriptor.json"
    target.write_text(descriptor_text(), encoding="utf-8")
    link = project / "atlassian-connect.json"
    link.unlink()
    link.symlink_to(target)
    async with recording_addon() as addon, run_host() as jira:
        write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with up_in(project, tmp_path) as up:
            await up.wait_event("ready")
            save(target, descriptor_text(name="Edited through the link"))
            await eventually(lambda: len(jira.record.installs) == 2, timeout=20)
            assert jira.record.installs[-1].descriptor["name"] == "Edited through the link"
            target.unlink()
            invalid = await up.wait_event("descriptor_invalid", timeout=20)
            message = invalid["errors"][0]["message"]
            assert message == f"is a broken symbolic link (to {target}, which does not exist)"
            assert invalid["kept_digest"]  # the last good revision stays installed


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback port that accepts TCP connections (the kernel completes the handshake) and
    never answers: a host behind a firewall that drops replies, or a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/jira"


@pytest.mark.timeout(90)
async def test_a_host_that_never_answers_holds_up_nothing(
    project: Path, tmp_path: Path, blackhole: str
) -> None:
    async with recording_addon() as addon, run_host() as jira:
        write_config(
            project,
            addon.url,
            [host_toml("jira", jira.base_url), host_toml("silent", blackhole)],
        )
        async with up_in(project, tmp_path) as up:
            registered = await up.wait_event("registered", host="jira", timeout=20)
            silent = await up.wait_event("host_answering", host="silent", timeout=20)
            # The healthy host did not wait for the silent one.
            assert registered["ts"] < silent["ts"]
            assert silent["answering"] is False
            ready = await up.wait_event("ready", timeout=20)
            assert ready["installed"] == 1
            assert ready["hosts"] == 2
            assert ready["waiting"] == ["silent"]
            # `ready` came at the silence bound, not after the 15 s request timeout.
            assert ready["ts"] - registered["ts"] < 10
            started = time.monotonic()
            up.process.send_signal(signal.SIGINT)
            await asyncio.wait_for(up.process.wait(), 30)
            exit_seconds = time.monotonic() - started
    # Nothing of the silent host is in the ledger: its pending install is cancelled at once.
    assert exit_seconds < 5, f"SIGINT -> exit took {exit_seconds:.1f} s"
    assert up.process.returncode == 0
    assert up.events("deregistered")[0]["host"] == "jira"
    ledger = project / ".connect-dev" / "ledger.json"
    assert not ledger.exists() or json.loads(ledger.read_text())["entries"] == []


@pytest.mark.timeout(60)
async def test_ready_with_nothing_installed_says_what_it_waits_for(
    project: Path, tmp_path: Path
) -> None:
    async with recording_addon() as addon, run_host(dev_mode=False) as jira:
        write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with up_in(project, tmp_path) as up:
            ready = await up.wait_event("ready")
    assert (ready["installed"], ready["hosts"], ready["waiting"]) == (0, 1, [])


async def test_a_save_seen_half_written_is_not_reported_invalid(project: Path) -> None:
    """The watcher acts on the first change it sees: an editor that truncates the file, then
    writes it, can be seen in between. Only what the file ends up as is reported."""
    descriptor = project / "atlassian-connect.json"
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up:
            full = descriptor_text(name="Written in two steps").encode()
            with descriptor.open("r+b") as handle:
                handle.truncate(0)
                handle.flush()
                await asyncio.sleep(0.01)  # longer than the watcher's quiet step
                handle.write(full[:40])
                handle.flush()
                await asyncio.sleep(0.01)
                handle.write(full[40:])
            await eventually(lambda: len(jira.record.installs) == 2)
            await asyncio.sleep(0.2)  # longer than INVALID_CONFIRM_SECONDS
            assert up.events.of("descriptor_invalid") == []
    assert jira.record.installs[-1].descriptor["name"] == "Written in two steps"
