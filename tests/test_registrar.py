"""The per-host state machine: single flight, latest wins, leading edge, settle, teardown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connect_devloop.config import HostConfig
from connect_devloop.errors import AuthenticationError, CredentialsError, HostUnreachableError
from connect_devloop.events import Deregistered, DeregistrationFailed, Registered
from connect_devloop.ledger import Ledger, new_entry
from connect_devloop.registrar import HostRegistrar, Target

from .conftest import EventLog, FakeUpm, eventually

HOST = HostConfig(name="h1", url="http://127.0.0.1:1/jira", product="jira", username="admin")


def target(n: int, key: str = "test-addon", url: str = "http://127.0.0.1:9") -> Target:
    return Target(key=key, digest=f"digest{n:06d}", public_url=url)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / ".connect-dev" / "ledger.json")


def make(fake: FakeUpm, ledger: Ledger, events: EventLog, **kwargs: Any) -> HostRegistrar:
    registrar = HostRegistrar(HOST, fake, ledger, events, **kwargs)  # type: ignore[arg-type]
    registrar.start()
    return registrar


async def test_first_request_installs_without_waiting_for_settle(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(fake_upm, ledger, events, settle=30.0)
    registrar.request(target(1), "startup")
    # With a 30 s settle window, only the leading edge can make this finish in time.
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert fake_upm.installs == ["http://127.0.0.1:9/atlassian-connect.json"]
    registered = events.of("registered")
    assert len(registered) == 1
    assert registered[0].digest == "digest000001"  # type: ignore[attr-defined]
    assert [e.name for e in events.events] == ["registering", "registered"]
    assert events.events[0].reason == "startup"  # type: ignore[attr-defined]
    await registrar.close(5)


async def test_requests_during_an_install_coalesce_into_one_install_of_the_latest(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.gate = asyncio.Event()
    registrar = make(fake_upm, ledger, events, settle=0.01)
    registrar.request(target(1), "startup")
    await events.wait_event("registering")
    for n in range(2, 8):
        registrar.request(target(n), "descriptor_changed")
    await asyncio.sleep(0.05)
    assert len(fake_upm.installs) == 1, "a second install started while one was in flight"
    fake_upm.gate.set()
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert len(fake_upm.installs) == 2
    assert fake_upm.max_in_flight == 1
    digests = [e.digest for e in events.of("registered")]  # type: ignore[attr-defined]
    assert digests == ["digest000001", "digest000007"]
    assert registrar.installed == target(7)
    await registrar.close(5)


async def test_burst_of_requests_installs_first_at_once_and_last_after_quiet(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(fake_upm, ledger, events, settle=0.1)
    for n in range(1, 21):
        registrar.request(target(n), "descriptor_changed")
        await asyncio.sleep(0.01)
    await asyncio.wait_for(registrar.wait_idle(), 5)
    digests = [e.digest for e in events.of("registered")]  # type: ignore[attr-defined]
    assert digests == ["digest000001", "digest000020"]
    await registrar.close(5)


async def test_same_target_is_not_reinstalled_unless_forced(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    registrar.request(target(1), "descriptor_changed")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert len(fake_upm.installs) == 1
    registrar.request(target(1), "manual", force=True)
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert len(fake_upm.installs) == 2
    assert [e.reason for e in events.of("registering")] == ["startup", "manual"]  # type: ignore[attr-defined]
    await registrar.close(5)


async def test_a_new_public_url_is_a_new_target(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    registrar.request(target(1, url="https://new.example"), "tunnel_changed")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert fake_upm.installs[-1] == "https://new.example/atlassian-connect.json"
    await registrar.close(5)


async def test_failure_is_reported_with_hint_and_the_next_request_retries(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.install_error = AuthenticationError("401 from host", hint="check the API token")
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    failed = events.of("registration_failed")
    assert len(failed) == 1
    assert failed[0].error == "401 from host"  # type: ignore[attr-defined]
    assert failed[0].hint == "check the API token"  # type: ignore[attr-defined]
    fake_upm.install_error = None
    registrar.request(target(1), "manual")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert len(events.of("registered")) == 1
    await registrar.close(5)


async def test_ledger_records_the_install_before_the_post(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.gate = asyncio.Event()
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await events.wait_event("registering")
    await eventually(lambda: fake_upm.installs)
    assert len(fake_upm.installs) == 1
    assert [(e.url, e.key) for e in ledger.entries()] == [(HOST.base_url, "test-addon")]
    fake_upm.gate.set()
    await registrar.close(5)
    assert ledger.entries() == []


async def test_close_waits_for_the_running_install_then_uninstalls(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.gate = asyncio.Event()
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await eventually(lambda: fake_upm.in_flight == 1)  # its POST went out: the host may have it
    closing = asyncio.create_task(registrar.close(5))
    await asyncio.sleep(0.02)
    assert not closing.done()
    fake_upm.gate.set()
    await closing
    assert fake_upm.uninstalls == ["test-addon"]
    assert events.names() == ["registering", "registered", "deregistered"]
    registrar.request(target(2), "descriptor_changed")  # ignored once closed
    await asyncio.sleep(0.01)
    assert len(fake_upm.installs) == 1


async def test_close_is_bounded_and_keeps_the_ledger_entry(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    fake_upm.uninstall_hangs = True
    await asyncio.wait_for(registrar.close(0.1), 5)
    failed = events.of("deregistration_failed")
    assert len(failed) == 1
    assert isinstance(failed[0], DeregistrationFailed)
    assert failed[0].error == "uninstall did not finish within 0.1 s"
    assert "connect-dev down" in (failed[0].hint or "")
    assert len(ledger.entries()) == 1


async def test_renamed_key_uninstalls_the_old_key_after_installing_the_new_one(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.key_for_uri = lambda uri: "renamed" if "new" in uri else "test-addon"
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    registrar.request(target(2, key="renamed", url="http://new"), "descriptor_changed")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert fake_upm.uninstalls == ["test-addon"]
    gone = [e for e in events.events if isinstance(e, Deregistered)]
    assert [(e.key, e.reason) for e in gone] == [("test-addon", "key_changed")]
    assert [e.key for e in ledger.entries()] == ["renamed"]
    await registrar.close(5)


async def test_host_without_credentials_reports_why_on_every_request(
    ledger: Ledger, events: EventLog
) -> None:
    error = CredentialsError("environment variable JIRA_TOKEN is not set", hint="export it")
    registrar = HostRegistrar(HOST, None, ledger, events, settle=0.0, unavailable=error)
    registrar.start()
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    failed = events.of("registration_failed")
    assert [(e.error, e.hint) for e in failed] == [  # type: ignore[attr-defined]
        ("environment variable JIRA_TOKEN is not set", "export it")
    ]
    assert ledger.entries() == []
    await registrar.close(5)


async def test_uninstall_all_removes_entries_of_an_earlier_run(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    ledger.record(new_entry("h1", HOST.base_url, "admin", "left-over"))
    registrar = make(fake_upm, ledger, events, settle=0.0)
    assert await registrar.uninstall_all(reason="recovery")
    assert fake_upm.uninstalls == ["left-over"]
    assert [(e.key, e.reason) for e in events.events if isinstance(e, Deregistered)] == [
        ("left-over", "recovery")
    ]
    assert ledger.entries() == []
    assert not any(isinstance(e, Registered) for e in events.events)
    await registrar.close(5)


async def test_a_host_that_refuses_our_credentials_is_never_in_the_ledger(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.credentials_error = AuthenticationError("401", hint="token")
    registrar = make(fake_upm, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert ledger.entries() == []
    await registrar.close(5)
    assert fake_upm.uninstalls == []
    assert events.names() == ["registering", "registration_failed"]


async def test_a_crashed_worker_is_reported_restarted_and_installs_what_was_asked(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.record(new_entry("h1", HOST.base_url, "admin", "left-by-a-crash"))
    registrar = HostRegistrar(HOST, fake_upm, ledger, events, settle=0.0)  # type: ignore[arg-type]
    real_install = registrar._install
    calls = 0

    async def install_crashing_the_second_time(target: Target, reason: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("a bug in the worker")
        await real_install(target, reason)

    monkeypatch.setattr(registrar, "_install", install_crashing_the_second_time)
    registrar.start(recover=True)
    registrar.request(target(1), "startup")
    await events.wait_event("registered", timeout=5)
    registrar.request(target(2), "descriptor_changed")
    await events.wait_event("error")
    await events.wait_for(lambda log: len(log.of("registered")) == 2, timeout=5)
    # Recovery ran once, at start: after the crash this run's own install (in the ledger
    # too) was not taken for a leftover and uninstalled, and the asked revision installed.
    assert fake_upm.uninstalls == ["left-by-a-crash"]
    assert registrar.installed == target(2)
    assert [e.name for e in events.events] == [
        "deregistered",
        "registering",
        "registered",
        "error",
        "registering",
        "registered",
    ]
    await registrar.close(5)


async def test_a_silent_host_is_reported_and_then_said_to_answer_again(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.silent_until = asyncio.Event()
    registrar = make(fake_upm, ledger, events, settle=0.0, silence=0.05)
    registrar.request(target(1), "startup")
    silent = await events.wait_event("host_answering")
    assert silent.answering is False  # type: ignore[attr-defined]
    assert silent.seconds >= 0.05  # type: ignore[attr-defined]
    assert registrar.silent_for() is not None
    fake_upm.silent_until.set()
    await asyncio.wait_for(registrar.wait_idle(), 5)
    answering = events.of("host_answering")[-1]
    assert answering.answering is True  # type: ignore[attr-defined]
    assert events.names() == ["registering", "host_answering", "host_answering", "registered"]
    assert registrar.silent_for() is None
    await registrar.close(5)


async def test_an_unreachable_host_is_tried_again_until_it_answers(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.install_error = HostUnreachableError("connection refused", hint="Start it.")
    registrar = make(fake_upm, ledger, events, settle=0.0, retry_first=0.05)
    registrar.request(target(1), "startup")
    failed = await events.wait_event("registration_failed")
    assert failed.hint == "Start it. connect-dev tries again in 0.05 s."  # type: ignore[attr-defined]
    await events.wait_for(lambda log: len(log.of("registration_failed")) == 2, timeout=5)
    assert "tries again in 0.1 s" in events.of("registration_failed")[1].hint  # type: ignore[attr-defined]
    fake_upm.install_error = None
    await events.wait_event("registered", timeout=5)
    assert [e.reason for e in events.of("registering")][1:] == ["retry"] * 2  # type: ignore[attr-defined]
    await registrar.close(5)


async def test_an_install_the_host_did_not_finish_is_not_retried(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    fake_upm.install_error = HostUnreachableError("still installing", retry=False)
    registrar = make(fake_upm, ledger, events, settle=0.0, retry_first=0.01)
    registrar.request(target(1), "startup")
    await events.wait_event("registration_failed")
    await asyncio.sleep(0.1)
    assert events.names() == ["registering", "registration_failed"]
    await registrar.close(5)
