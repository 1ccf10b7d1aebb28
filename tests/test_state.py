"""state.py: the pure reducer from events to what the dev loop looks like."""

from __future__ import annotations

import copy
import dataclasses
from functools import reduce as fold

import pytest

from connect_devloop.events import (
    ConfigChanged,
    ConfigReloaded,
    Deregistered,
    DeregistrationFailed,
    DescriptorInvalid,
    DescriptorLoaded,
    Event,
    Lifecycle,
    Ready,
    Registered,
    Registering,
    RegistrationFailed,
    RequestServed,
    Stopped,
    TunnelClosed,
    TunnelOpened,
    Warning,
)
from connect_devloop.state import MAX_RECENT_REQUESTS, HostState, HostStatus, State, reduce

TS = 1_700_000_000.25
JIRA = "dev-jira"
CONFLUENCE = "local-confluence"
INVALID = [
    {
        "path": "$.key",
        "message": "required field is missing",
        "line": 1,
        "column": 1,
        "severity": "error",
    }
]


def replay(state: State, *events: Event) -> State:
    return fold(reduce, events, state)


def test_initial_state() -> None:
    state = State.initial([JIRA, CONFLUENCE])

    assert state == State(
        hosts={JIRA: HostStatus(name=JIRA), CONFLUENCE: HostStatus(name=CONFLUENCE)}
    )
    assert state.hosts[JIRA].state == HostState.PENDING == "pending"
    assert (state.key, state.digest, state.descriptor_valid) == ("", "", None)
    assert (state.tunnel_open, state.ready, state.stopped, state.request_count) == (
        False,
        False,
        False,
        0,
    )
    assert not state.all_hosts_settled()
    assert list(State.initial((CONFLUENCE, JIRA)).hosts) == [CONFLUENCE, JIRA]


def test_no_hosts_are_trivially_settled() -> None:
    assert State.initial([]).all_hosts_settled()


def test_a_whole_session() -> None:
    state = State.initial([JIRA, CONFLUENCE])

    state = replay(
        state,
        DescriptorLoaded(ts=TS, key="my-addon", digest="aaaaaaaaaaaa", path="a.json"),
        TunnelOpened(ts=TS, url="https://abc.ngrok.app", provider="ngrok"),
        Registering(ts=TS, host=JIRA, reason="startup", digest="aaaaaaaaaaaa"),
        Registering(ts=TS, host=CONFLUENCE, reason="startup"),
    )
    assert (state.key, state.digest, state.descriptor_valid) == ("my-addon", "aaaaaaaaaaaa", True)
    assert (state.tunnel_url, state.tunnel_provider, state.tunnel_open) == (
        "https://abc.ngrok.app",
        "ngrok",
        True,
    )
    assert state.hosts[JIRA] == HostStatus(name=JIRA, state="installing", reason="startup")
    assert not state.all_hosts_settled()

    state = replay(
        state,
        Registered(ts=TS, host=JIRA, key="my-addon", duration_ms=61, digest="aaaaaaaaaaaa"),
    )
    assert state.hosts[JIRA] == HostStatus(
        name=JIRA,
        state="installed",
        reason="startup",
        key="my-addon",
        digest="aaaaaaaaaaaa",
        duration_ms=61,
        enabled=True,
    )
    assert not state.all_hosts_settled()

    state = replay(
        state,
        RegistrationFailed(ts=TS, host=CONFLUENCE, error="401 Unauthorized", hint="Check it."),
    )
    assert state.hosts[CONFLUENCE] == HostStatus(
        name=CONFLUENCE,
        state="failed",
        reason="startup",
        error="401 Unauthorized",
        hint="Check it.",
    )
    assert state.all_hosts_settled()

    state = replay(
        state,
        Ready(ts=TS, public_url="https://abc.ngrok.app"),
        RequestServed(
            ts=TS, method="GET", path="/atlassian-connect.json", status=200, duration_ms=1.5
        ),
    )
    assert state.ready
    assert state.request_count == 1

    # An invalid save keeps the last good key and digest: they are what stays installed.
    state = replay(state, DescriptorInvalid(ts=TS, errors=INVALID, path="a.json"))
    assert (state.key, state.digest, state.descriptor_valid) == ("my-addon", "aaaaaaaaaaaa", False)
    assert state.descriptor_errors == tuple(INVALID)
    assert state.hosts[JIRA].state == "installed"

    # Fixed: a new revision, re-installed everywhere; the failed host recovers.
    state = replay(
        state,
        DescriptorLoaded(ts=TS, key="my-addon", digest="bbbbbbbbbbbb"),
        Registering(ts=TS, host=JIRA, reason="descriptor_changed"),
        Registering(ts=TS, host=CONFLUENCE, reason="recovery"),
    )
    assert (state.digest, state.descriptor_valid, state.descriptor_errors) == (
        "bbbbbbbbbbbb",
        True,
        (),
    )
    assert state.hosts[CONFLUENCE] == HostStatus(
        name=CONFLUENCE, state="installing", reason="recovery"
    )
    assert state.hosts[JIRA].state == "installing"
    assert state.hosts[JIRA].digest == "aaaaaaaaaaaa"  # until the new install ends
    assert not state.all_hosts_settled()

    state = replay(
        state,
        Registered(ts=TS, host=JIRA, key="my-addon", duration_ms=40, digest="bbbbbbbbbbbb"),
        Registered(
            ts=TS,
            host=CONFLUENCE,
            key="my-addon",
            duration_ms=70,
            digest="bbbbbbbbbbbb",
            enabled=False,
        ),
    )
    assert state.hosts[CONFLUENCE] == HostStatus(
        name=CONFLUENCE,
        state="installed",
        reason="recovery",
        key="my-addon",
        digest="bbbbbbbbbbbb",
        duration_ms=70,
        enabled=False,
    )
    assert state.hosts[JIRA].duration_ms == 40
    assert state.all_hosts_settled()

    # Teardown.
    state = replay(
        state,
        Deregistered(ts=TS, host=JIRA, key="my-addon"),
        DeregistrationFailed(
            ts=TS, host=CONFLUENCE, error="timed out", key="my-addon", hint="Retry."
        ),
        TunnelClosed(ts=TS, provider="ngrok"),
        Stopped(ts=TS),
    )
    assert state.hosts[JIRA] == HostStatus(
        name=JIRA,
        state="uninstalled",
        reason="descriptor_changed",
        key="my-addon",
        digest="bbbbbbbbbbbb",
        duration_ms=40,
        enabled=None,
    )
    assert state.hosts[CONFLUENCE] == HostStatus(
        name=CONFLUENCE,
        state="uninstall_failed",
        reason="recovery",
        key="my-addon",
        digest="bbbbbbbbbbbb",
        duration_ms=70,
        enabled=False,
        error="timed out",
        hint="Retry.",
    )
    assert state.all_hosts_settled()
    assert (state.tunnel_open, state.tunnel_url) == (False, "https://abc.ngrok.app")
    assert state.stopped
    assert state.ready


def test_registering_clears_the_last_error() -> None:
    state = replay(
        State.initial([JIRA]),
        RegistrationFailed(ts=TS, host=JIRA, error="boom", hint="Do this."),
        Registering(ts=TS, host=JIRA, reason="manual"),
    )
    assert state.hosts[JIRA] == HostStatus(name=JIRA, state="installing", reason="manual")


def test_registered_clears_the_last_error() -> None:
    state = replay(
        State.initial([JIRA]),
        RegistrationFailed(ts=TS, host=JIRA, error="boom", hint="Do this."),
        Registered(ts=TS, host=JIRA, key="k", duration_ms=1),
    )
    assert (state.hosts[JIRA].error, state.hosts[JIRA].hint) == ("", None)


def test_deregistered_clears_the_last_error() -> None:
    state = replay(
        State.initial([JIRA]),
        RegistrationFailed(ts=TS, host=JIRA, error="boom", hint="Do this."),
        Deregistered(ts=TS, host=JIRA),
    )
    assert state.hosts[JIRA].state == "uninstalled"
    assert (state.hosts[JIRA].error, state.hosts[JIRA].hint) == ("", None)


def test_events_for_an_unknown_host_add_it() -> None:
    state = reduce(State.initial([JIRA]), Registering(ts=TS, host="surprise", reason="manual"))
    assert list(state.hosts) == [JIRA, "surprise"]
    assert state.hosts["surprise"] == HostStatus(
        name="surprise", state="installing", reason="manual"
    )


def test_tunnel_reopened_with_a_new_url() -> None:
    state = replay(
        State(),
        TunnelOpened(ts=TS, url="https://one.ngrok.app", provider="ngrok"),
        TunnelClosed(ts=TS, provider="ngrok", reason="died"),
        TunnelOpened(ts=TS, url="https://two.ngrok.app", provider="ngrok"),
    )
    assert (state.tunnel_url, state.tunnel_open) == ("https://two.ngrok.app", True)


def test_the_ngrok_inspector_url_is_kept_and_follows_each_reopen() -> None:
    state = replay(
        State(),
        TunnelOpened(
            ts=TS, url="https://one", provider="ngrok", inspector_url="http://127.0.0.1:4040"
        ),
        TunnelClosed(ts=TS, provider="ngrok", reason="exited"),
    )
    assert state.tunnel_inspector_url == "http://127.0.0.1:4040"
    reopened = replay(
        state,
        TunnelOpened(
            ts=TS, url="https://two", provider="ngrok", inspector_url="http://127.0.0.1:4041"
        ),
    )
    assert reopened.tunnel_inspector_url == "http://127.0.0.1:4041"
    # A provider without one clears it (the field defaults to "").
    ssh = replay(state, TunnelOpened(ts=TS, url="https://x", provider="ssh"))
    assert ssh.tunnel_inspector_url == ""


@pytest.mark.parametrize(
    "event",
    [
        Lifecycle(ts=TS, host=JIRA, event="installed", client_key="c", verified=True),
        Warning(ts=TS, message="careful"),
    ],
)
def test_events_without_state_change_return_the_same_state(event: Event) -> None:
    state = State.initial([JIRA])
    assert reduce(state, event) is state


def request(number: int) -> RequestServed:
    return RequestServed(
        ts=TS + number, method="GET", path=f"/r/{number}", status=200, duration_ms=1.0
    )


def test_recent_requests_are_bounded() -> None:
    total = MAX_RECENT_REQUESTS + 5
    state = replay(State(), *(request(n) for n in range(total)))

    assert state.request_count == total
    assert len(state.recent_requests) == MAX_RECENT_REQUESTS == 200
    assert state.recent_requests[0] == request(5)
    assert state.recent_requests[-1] == request(total - 1)


def test_recent_requests_below_the_bound_keep_everything_in_order() -> None:
    state = replay(State(), *(request(n) for n in range(3)))
    assert state.recent_requests == (request(0), request(1), request(2))


def test_a_request_changes_the_request_fields_only() -> None:
    # reduce takes a shortcut for requests (the most frequent event); the result must be
    # exactly what replacing the four request fields would give.
    state = replay(
        State.initial([JIRA]),
        DescriptorLoaded(ts=TS, key="k", digest="d"),
        TunnelOpened(ts=TS, url="https://x", provider="ngrok"),
        Registered(ts=TS, host=JIRA, key="k", duration_ms=1),
    )
    failed = RequestServed(
        ts=TS, method="GET", path="/p", status=502, duration_ms=1, jwt={"verified": False}
    )
    after = reduce(state, failed)
    assert type(after) is State
    assert after == dataclasses.replace(
        state,
        recent_requests=(failed,),
        request_count=1,
        request_errors=1,
        jwt_rejected=1,
    )
    verified = RequestServed(
        ts=TS, method="GET", path="/p", status=200, duration_ms=1, jwt={"verified": True}
    )
    assert reduce(after, verified) == dataclasses.replace(
        after, recent_requests=(failed, verified), request_count=2
    )


def test_reduce_is_pure() -> None:
    events: list[Event] = [
        DescriptorLoaded(ts=TS, key="k", digest="d"),
        DescriptorInvalid(ts=TS, errors=INVALID),
        TunnelOpened(ts=TS, url="https://x", provider="ngrok"),
        TunnelClosed(ts=TS),
        Registering(ts=TS, host=JIRA, reason="startup"),
        Registered(ts=TS, host=JIRA, key="k", duration_ms=1),
        RegistrationFailed(ts=TS, host=JIRA, error="e"),
        Deregistered(ts=TS, host=JIRA),
        DeregistrationFailed(ts=TS, host=JIRA, error="e"),
        Registering(ts=TS, host="new-host", reason="manual"),
        request(1),
        Ready(ts=TS),
        Stopped(ts=TS),
    ]
    state = replay(State.initial([JIRA, CONFLUENCE]), request(0))
    for event in events:
        before = copy.deepcopy(state)
        hosts_before = state.hosts
        after = reduce(state, event)
        assert state == before, event
        assert state.hosts is hosts_before
        assert after is not state
        state = after


def test_descriptor_errors_are_copied_into_the_state() -> None:
    errors = [dict(INVALID[0])]
    state = reduce(State(), DescriptorInvalid(ts=TS, errors=errors))
    errors.append({"path": "$.x"})
    assert len(state.descriptor_errors) == 1


def test_config_reloads_follow_the_hosts_and_what_needs_a_restart() -> None:
    state = State.initial(["one", "two"])
    state = reduce(state, ConfigChanged(applied=[], needs_restart=["proxy.port"]))
    assert state.restart_needed == ("proxy.port",)
    state = reduce(state, ConfigReloaded(added=["three"], removed=["one"], changed=["two"]))
    assert list(state.hosts) == ["two", "three"]
    assert state.hosts["three"] == HostStatus(name="three")
    state = reduce(state, ConfigChanged(applied=[], needs_restart=[]))
    assert state.restart_needed == ()
