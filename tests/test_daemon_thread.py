"""The dashboard's daemon on its own thread and loop (tui/daemon_thread.py), and the loop choice
(eventloop.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from connect_devloop import eventloop
from connect_devloop.tui.daemon_thread import ThreadedDaemon


class RecordingDaemon:
    """Records on which thread and loop each call arrives."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, int]] = []
        self.loop_type = ""
        self.running = threading.Event()

    async def run(self, stop: asyncio.Event) -> int:
        self.loop_type = type(asyncio.get_running_loop()).__module__
        self.running.set()
        if self.fail:
            raise RuntimeError("the daemon broke")
        await stop.wait()
        self.calls.append(("stopped", threading.get_ident()))
        return 7

    def reinstall(self, host: str | None = None, *, reason: str = "manual") -> None:
        self.calls.append((f"reinstall {host} {reason}", threading.get_ident()))

    async def uninstall(self, host: str) -> bool:
        self.calls.append((f"uninstall {host}", threading.get_ident()))
        return host == "jira"

    def validate_now(self) -> None:
        self.calls.append(("validate", threading.get_ident()))


async def test_calls_reach_the_daemon_on_its_own_thread_and_stop_ends_it() -> None:
    inner = RecordingDaemon()
    daemon = ThreadedDaemon(inner)
    stop = asyncio.Event()
    run = asyncio.create_task(daemon.run(stop))
    await asyncio.to_thread(inner.running.wait, 5)
    daemon.reinstall("jira", reason="manual")
    daemon.validate_now()
    assert await daemon.uninstall("jira") is True
    assert await daemon.uninstall("wiki") is False
    stop.set()
    assert await asyncio.wait_for(run, 5) == 7
    names = [name for name, _ in inner.calls]
    assert names == [
        "reinstall jira manual",
        "validate",
        "uninstall jira",
        "uninstall wiki",
        "stopped",
    ]
    threads = {thread for _, thread in inner.calls}
    assert len(threads) == 1
    assert threading.get_ident() not in threads


async def test_a_daemon_failure_reaches_the_dashboard() -> None:
    daemon = ThreadedDaemon(RecordingDaemon(fail=True))
    with pytest.raises(RuntimeError, match="the daemon broke"):
        await asyncio.wait_for(daemon.run(asyncio.Event()), 5)


async def test_calls_before_the_start_and_after_the_end_are_dropped() -> None:
    inner = RecordingDaemon()
    daemon = ThreadedDaemon(inner)
    daemon.reinstall()
    assert await daemon.uninstall("jira") is False
    stop = asyncio.Event()
    stop.set()
    assert await asyncio.wait_for(daemon.run(stop), 5) == 7
    daemon.validate_now()
    assert await daemon.uninstall("jira") is False
    assert [name for name, _ in inner.calls] == ["stopped"]


async def test_the_daemon_runs_on_uvloop_unless_asyncio_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("uvloop")
    for wanted, module in (("", "uvloop"), ("asyncio", "asyncio.unix_events")):
        monkeypatch.setenv(eventloop.EVENT_LOOP_ENV, wanted)
        inner = RecordingDaemon()
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(ThreadedDaemon(inner).run(stop), 5)
        assert inner.loop_type == module
        assert eventloop.loop_name() == module.split(".")[0]
