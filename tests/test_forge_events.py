"""Forge hosts in every view: the registrar and the running CLI step in ``State``, the dashboard's
wording of a step and its elapsed time, and a kept install in the teardown panel."""

from __future__ import annotations

from pathlib import Path

from connect_devloop.config import Config, HostConfig
from connect_devloop.events import (
    Deregistered,
    ForgeStep,
    Kept,
    Registered,
    Registering,
    RegistrationFailed,
)
from connect_devloop.state import HostState, HostStatus, State, reduce
from connect_devloop.tui import DashboardApp
from connect_devloop.tui.format import elapsed, host_state_label
from connect_devloop.tui.hosts import HostsTable
from connect_devloop.tui.model import Teardown, TeardownStep, teardown_steps, track_teardown

from .test_tui_model import shown

TS = 1_700_000_000.0
FORGE = HostConfig(
    "cloud",
    "https://acme.atlassian.net",
    "jira",
    "",
    registrar="forge",
    site="acme.atlassian.net",
)
CONFIG = Config(
    path=Path("/p/connect-dev.toml"),
    descriptor_path=Path("/p/atlassian-connect.json"),
    hosts=(HostConfig("jira", "http://localhost:2990/jira", "jira", "admin"), FORGE),
)


def replay(*events: object) -> State:
    state = State.initial(["jira", "cloud"])
    for event in events:
        state = reduce(state, event)  # type: ignore[arg-type]
    return state


def test_the_state_keeps_each_hosts_registrar_and_its_running_step() -> None:
    state = replay(
        Registering(ts=TS, host="jira", reason="startup"),
        Registering(ts=TS, host="cloud", reason="startup", registrar="forge"),
        ForgeStep(ts=TS + 1, host="cloud", step="validate", state="started"),
        ForgeStep(ts=TS + 2, host="cloud", step="validate", state="done", duration_ms=1000),
        ForgeStep(ts=TS + 3, host="cloud", step="deploy", state="started"),
    )
    assert state.hosts["jira"].registrar == "upm"
    cloud = state.hosts["cloud"]
    assert (cloud.registrar, cloud.state, cloud.step, cloud.step_started) == (
        "forge",
        HostState.INSTALLING,
        "deploy",
        TS + 3,
    )

    state = reduce(state, ForgeStep(ts=TS + 40, host="cloud", step="deploy", state="done"))
    assert (state.hosts["cloud"].step, state.hosts["cloud"].step_started) == ("", None)


def test_an_outcome_ends_the_step_and_a_done_of_another_step_does_not() -> None:
    state = replay(
        Registering(ts=TS, host="cloud", reason="startup", registrar="forge"),
        ForgeStep(ts=TS, host="cloud", step="install", state="started"),
        ForgeStep(ts=TS, host="cloud", step="deploy", state="done"),
    )
    assert state.hosts["cloud"].step == "install"
    failed = reduce(
        state, RegistrationFailed(ts=TS, host="cloud", error="e", registrar="forge")
    ).hosts["cloud"]
    assert (failed.state, failed.step, failed.step_started) == (HostState.FAILED, "", None)
    installed = reduce(
        state, Registered(ts=TS, host="cloud", key="k", duration_ms=1, registrar="forge")
    ).hosts["cloud"]
    assert (installed.state, installed.step) == (HostState.INSTALLED, "")
    uninstalling = reduce(
        reduce(state, Registered(ts=TS, host="cloud", key="k", duration_ms=1)),
        ForgeStep(ts=TS, host="cloud", step="uninstall", state="started"),
    )
    assert uninstalling.hosts["cloud"].step == "uninstall"
    gone = reduce(uninstalling, Deregistered(ts=TS, host="cloud", key="k")).hosts["cloud"]
    assert (gone.state, gone.step) == (HostState.UNINSTALLED, "")


def test_elapsed_times() -> None:
    assert [elapsed(s) for s in (-1, 0, 9.9, 59.99, 60, 65, 600, 3725)] == [
        "0 s",
        "0 s",
        "9 s",
        "59 s",
        "1:00",
        "1:05",
        "10:00",
        "62:05",
    ]


def test_the_state_cell_shows_the_step_and_how_long_it_has_run() -> None:
    deploying = HostStatus(
        "cloud", state=HostState.INSTALLING, registrar="forge", step="deploy", step_started=TS
    )
    assert host_state_label(deploying, 0, now=TS + 12.4) == "⠋ deploy 12 s"
    assert host_state_label(deploying, 1, now=TS + 125) == "⠙ deploy 2:05"
    assert host_state_label(deploying) == "⠋ deploy"
    # Every step and time fits the 16 columns of the state cell.
    longest = HostStatus("c", step="uninstall", step_started=TS)
    assert len(host_state_label(longest, 0, now=TS + 599)) == 16


def test_a_kept_host_shows_as_kept_in_the_teardown() -> None:
    state = replay(Registered(ts=TS, host="jira", key="k", duration_ms=1))
    outcomes = track_teardown({}, Deregistered(ts=TS, host="jira", key="k"))
    outcomes = track_teardown(outcomes, Kept(ts=TS, host="cloud", key="k", revision="r"))
    assert teardown_steps(state, outcomes) == [
        TeardownStep("jira", Teardown.UNINSTALLED, "k"),
        TeardownStep("cloud", Teardown.KEPT, "k"),
    ]


async def test_the_hosts_table_counts_the_step_with_the_apps_clock() -> None:
    now = [TS + 7]
    app = DashboardApp(CONFIG, daemon=None, clock=lambda: now[0])
    async with app.run_test(size=(120, 40)) as pilot:
        app.feed(
            Registering(ts=TS, host="cloud", reason="startup", registrar="forge"),
            ForgeStep(ts=TS, host="cloud", step="deploy", state="started"),
        )
        await shown(pilot)
        table = app.query_one(HostsTable)
        assert table.get_cell("cloud", "state").plain == "⠋ deploy 7 s"
        assert table.get_cell("cloud", "url").plain == "acme.atlassian.net"
        now[0] = TS + 75
        app.feed(ForgeStep(ts=TS + 75, host="cloud", step="deploy", state="done"))
        app.feed(ForgeStep(ts=TS + 75, host="cloud", step="install", state="started"))
        await shown(pilot)
        assert table.get_cell("cloud", "state").plain == "⠋ install 0 s"
