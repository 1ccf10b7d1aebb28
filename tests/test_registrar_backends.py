"""The install worker against a scripted backend: the protocol every registrar kind implements.

``ScriptedBackend`` plays a slow, Forge-like backend (prepare = validate, the point of no return
= starting the deploy, a revision per target) without any process: each test drives it with
gates, so what is under test is the worker's logic, not timing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from connect_devloop.config import HostConfig, site_url
from connect_devloop.errors import DevloopError
from connect_devloop.events import Kept, Registered, Registering, RegistrationFailed
from connect_devloop.ledger import Ledger, LedgerEntry, new_entry
from connect_devloop.registrar import HostRegistrar, Target
from connect_devloop.registrars import Commit, Installed, RegistrarBackend, UpmBackend

from .conftest import EventLog, FakeUpm, eventually

HOST = HostConfig(
    name="cloud",
    url=site_url("acme.atlassian.net", "jira"),
    product="jira",
    username="",
    registrar="forge",
    site="acme.atlassian.net",
)


def target(n: int, key: str = "test-addon", url: str = "https://tunnel.example") -> Target:
    return Target(key=key, digest=f"digest{n:06d}", public_url=url)


@dataclass
class ScriptedBackend:
    """A backend scripted by the test. ``prepare_gate`` holds the attempt before its point of
    no return (validate), ``gate`` after it (a deploy); each records what happened."""

    ledger_path: Path
    kind: str = "forge"
    keep_on_exit: bool = False
    interruptible: bool = False
    last_reply_at: float | None = None
    prepare_gate: asyncio.Event | None = None
    gate: asyncio.Event | None = None
    prepare_error: DevloopError | None = None
    installs: list[Target] = field(default_factory=list)  # past the point of no return
    finished: list[Target] = field(default_factory=list)
    uninstalls: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    on_disk_at_commit: list[list[LedgerEntry]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def prepare(self, target: Target) -> Target:
        try:
            if self.prepare_gate is not None:
                await self.prepare_gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append("prepare")
            raise
        if self.prepare_error is not None:
            raise self.prepare_error
        # As if the manifest rendered for this target were digested: same digest, same revision.
        return replace(target, revision=f"m-{target.digest[-2:]}")

    def ledger_entry(self, target: Target) -> LedgerEntry:
        return new_entry(
            HOST.name,
            HOST.base_url,
            "",
            target.key,
            registrar=self.kind,
            site="acme.atlassian.net",
            product="jira",
            environment="development",
            revision=target.revision,
        )

    async def install(self, target: Target, commit: Commit) -> Installed:
        await commit()
        # What any other process would see at the point of no return (a kill -9 here).
        self.on_disk_at_commit.append(Ledger(self.ledger_path).entries())
        self.installs.append(target)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append("install")
            raise
        finally:
            self.in_flight -= 1
        self.finished.append(target)
        return Installed(key=target.key)

    async def uninstall(self, entry: LedgerEntry) -> bool:
        self.uninstalls.append(entry.key)
        return True

    def kept_revision(self, entry: LedgerEntry) -> str | None:
        if not self.keep_on_exit:
            return None
        return entry.revision if entry.confirmed else ""


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / ".connect-dev" / "ledger.json")


@pytest.fixture
def backend(ledger: Ledger) -> ScriptedBackend:
    return ScriptedBackend(ledger.path)


def make(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog, **kwargs: object
) -> HostRegistrar:
    registrar = HostRegistrar(HOST, backend, ledger, events, **kwargs)  # type: ignore[arg-type]
    registrar.start(recover=bool(ledger.entries()))
    return registrar


def test_both_backends_implement_the_protocol(ledger: Ledger) -> None:
    assert isinstance(ScriptedBackend(ledger.path), RegistrarBackend)
    assert isinstance(UpmBackend(HOST, FakeUpm()), RegistrarBackend)
    assert not isinstance(FakeUpm(), RegistrarBackend)


async def test_a_upm_client_is_taken_as_the_upm_backend(
    fake_upm: FakeUpm, ledger: Ledger, events: EventLog
) -> None:
    registrar = HostRegistrar(HOST, fake_upm, ledger, events)
    assert isinstance(registrar.backend, UpmBackend)
    registrar.start()
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert [e.registrar for e in events.of("registered")] == ["upm"]  # type: ignore[attr-defined]
    assert [e.registrar for e in ledger.entries()] == ["upm"]
    await registrar.close(5)


async def test_the_first_request_installs_at_once_and_events_name_the_registrar(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(backend, ledger, events, settle=30.0)
    registrar.request(target(1), "startup")
    # With a 30 s settle window, only the leading edge can make this finish in time.
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert [t.digest for t in backend.installs] == ["digest000001"]
    registering, registered = events.events
    assert isinstance(registering, Registering)
    assert (registering.reason, registering.registrar) == ("startup", "forge")
    assert isinstance(registered, Registered)
    assert (registered.registrar, registered.unchanged) == ("forge", False)
    assert registrar.installed == target(1)
    await registrar.close(5)


async def test_a_burst_during_a_slow_install_costs_one_more_install_of_the_newest(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.gate = asyncio.Event()
    registrar = make(backend, ledger, events, settle=0.01)
    registrar.request(target(1), "startup")
    await eventually(lambda: backend.installs)
    for n in range(2, 30):
        registrar.request(target(n), "descriptor_changed")
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    assert len(backend.installs) == 1, "a second install started while one was in flight"
    backend.gate.set()
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert [t.digest for t in backend.installs] == ["digest000001", "digest000029"]
    assert backend.max_in_flight == 1
    assert registrar.installed == target(29)
    await registrar.close(5)


async def test_the_ledger_entry_is_on_disk_before_the_point_of_no_return(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    [on_disk] = backend.on_disk_at_commit
    assert [(e.url, e.key, e.registrar, e.revision, e.confirmed) for e in on_disk] == [
        (HOST.base_url, "test-addon", "forge", "m-01", False)
    ]
    # Once the host confirmed it, the ledger says what is installed at which revision.
    [entry] = Ledger(ledger.path).entries()
    assert (entry.site, entry.product, entry.environment) == (
        "acme.atlassian.net",
        "jira",
        "development",
    )
    assert (entry.revision, entry.confirmed) == ("m-01", True)
    await registrar.close(5)


async def test_a_failed_preflight_stops_before_the_point_of_no_return(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    async def tunnel_down(target: Target) -> None:
        raise DevloopError("the tunnel does not serve this proxy", hint="Restart it.")

    registrar = make(backend, ledger, events, settle=0.0, preflight=tunnel_down)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    [failed] = events.of("registration_failed")
    assert isinstance(failed, RegistrationFailed)
    assert (failed.error, failed.registrar) == ("the tunnel does not serve this proxy", "forge")
    assert backend.installs == []
    await registrar.close(5)


async def test_closing_cancels_an_install_before_its_point_of_no_return_at_once(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.prepare_gate = asyncio.Event()  # validating, forever
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await events.wait_event("registering")
    await asyncio.wait_for(registrar.close(5), 1)
    assert backend.cancelled == ["prepare"]
    assert backend.installs == []
    assert ledger.entries() == []


async def test_a_running_install_past_its_point_of_no_return_is_waited_for_beyond_the_bound(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.gate = asyncio.Event()  # a deploy that takes its time
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await eventually(lambda: backend.installs)
    registrar.request(target(2), "descriptor_changed")  # pending when closing: never started
    closing = asyncio.create_task(registrar.close(0.05))
    await asyncio.sleep(0.2)  # four times the bound
    assert not closing.done()
    assert backend.cancelled == []
    backend.gate.set()
    await asyncio.wait_for(closing, 5)
    assert backend.cancelled == []
    assert [t.digest for t in backend.finished] == ["digest000001"]
    assert backend.uninstalls == ["test-addon"]
    assert events.names() == ["registering", "registered", "deregistered"]
    assert ledger.entries() == []


async def test_an_interruptible_install_is_cancelled_at_the_bound(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.interruptible = True  # as UPM: the host finishes the install by itself
    backend.gate = asyncio.Event()
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await eventually(lambda: backend.installs)
    await asyncio.wait_for(registrar.close(0.05), 5)
    assert backend.cancelled == ["install"]
    failed = events.of("deregistration_failed")
    assert [e.error for e in failed] == ["uninstall did not finish within 0.05 s"]  # type: ignore[attr-defined]
    assert len(ledger.entries()) == 1  # for `connect-dev down`


async def test_recovery_runs_once_even_after_the_worker_crashed(
    backend: ScriptedBackend,
    ledger: Ledger,
    events: EventLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger.record(new_entry(HOST.name, HOST.base_url, "", "left-by-a-crash", registrar="forge"))
    registrar = HostRegistrar(HOST, backend, ledger, events, settle=0.0)
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
    assert backend.uninstalls == ["left-by-a-crash"]
    assert [e.reason for e in events.of("deregistered")] == ["recovery"]  # type: ignore[attr-defined]
    assert [e.key for e in ledger.entries()] == ["test-addon"]
    await registrar.close(5)


async def test_with_keep_closing_leaves_the_install_and_says_so(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.keep_on_exit = True
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    await registrar.close(5)
    assert backend.uninstalls == []
    [kept] = events.of("kept")
    assert isinstance(kept, Kept)
    assert (kept.host, kept.key, kept.revision) == ("cloud", "test-addon", "m-01")
    assert events.names() == ["registering", "registered", "kept"]
    [entry] = ledger.entries()
    assert registrar.keeps(entry)
    assert (entry.revision, entry.confirmed) == ("m-01", True)


async def test_the_next_run_takes_over_a_kept_install_and_deploys_nothing_unchanged(
    ledger: Ledger, events: EventLog
) -> None:
    first = ScriptedBackend(ledger.path, keep_on_exit=True)
    registrar = make(first, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    await registrar.close(5)

    events.events.clear()
    second = ScriptedBackend(ledger.path, keep_on_exit=True)
    registrar = make(second, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert second.installs == []
    assert second.uninstalls == []
    [registered] = events.of("registered")
    assert isinstance(registered, Registered)
    assert registered.unchanged
    assert registrar.installed == target(1)

    # A new revision is deployed; a forced request deploys even an unchanged one.
    registrar.request(target(2), "descriptor_changed")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    registrar.request(target(2), "manual", force=True)
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert [t.revision for t in second.installs] == ["m-02", "m-02"]
    assert [e.unchanged for e in events.of("registered")] == [True, False, False]  # type: ignore[attr-defined]
    await registrar.close(5)
    [entry] = ledger.entries()
    assert (entry.revision, entry.confirmed) == ("m-02", True)


async def test_a_kept_install_whose_deploy_did_not_finish_is_installed_again(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.keep_on_exit = True
    unconfirmed = new_entry(
        HOST.name, HOST.base_url, "", "test-addon", registrar="forge", revision="m-01"
    )
    ledger.record(unconfirmed)
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert backend.uninstalls == []
    assert [t.revision for t in backend.installs] == ["m-01"]
    assert events.names() == ["registering", "registered"]
    await registrar.close(5)


async def test_down_uninstalls_a_kept_install(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.keep_on_exit = True
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert await registrar.uninstall_all(reason="manual")
    assert backend.uninstalls == ["test-addon"]
    assert ledger.entries() == []
    await registrar.close(5)
    assert events.of("kept") == []


async def test_a_failed_prepare_is_reported_with_its_hint(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    backend.prepare_error = DevloopError("manifest.yml:3: app.id is missing", hint="forge register")
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    [failed] = events.of("registration_failed")
    assert (failed.error, failed.hint) == ("manifest.yml:3: app.id is missing", "forge register")  # type: ignore[attr-defined]
    assert ledger.entries() == []
    await registrar.close(5)


async def test_after_a_failure_past_the_point_of_no_return_nothing_is_skipped(
    backend: ScriptedBackend, ledger: Ledger, events: EventLog
) -> None:
    registrar = make(backend, ledger, events, settle=0.0)
    registrar.request(target(1), "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)

    async def deploy_then_fail(target: Target, commit: Commit) -> Installed:
        await commit()  # the deploy of revision 2 may have landed; its install then failed
        raise DevloopError("forge install failed", hint="See the output with -v.")

    real_install = backend.install
    backend.install = deploy_then_fail  # type: ignore[method-assign]
    registrar.request(target(2), "descriptor_changed")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    [entry] = ledger.entries()
    assert (entry.revision, entry.confirmed) == ("m-02", False)

    backend.install = real_install  # type: ignore[method-assign]
    registrar.request(target(1), "descriptor_changed")  # back to what was installed before
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert [t.revision for t in backend.installs] == ["m-01", "m-01"]
    assert [e.unchanged for e in events.of("registered")] == [False, False]  # type: ignore[attr-defined]
    await registrar.close(5)
