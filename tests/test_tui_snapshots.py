"""Snapshots of the dashboard (pytest-textual-snapshot), built from synthetic event sequences.

No server runs here: every event has a fixed timestamp, the clock is UTC, the URLs are fixed and
the terminal is 120x40, so the pictures only change when the dashboard does. Update the
baselines with ``python -m pytest tests/test_tui_snapshots.py --snapshot-update`` and look at
them (``snapshot_report.html`` shows the differences when one fails).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connect_devloop.config import Config, HostConfig, TunnelConfig
from connect_devloop.events import (
    DescriptorInvalid,
    DescriptorLoaded,
    Event,
    ForgeStep,
    Lifecycle,
    Ready,
    Registered,
    Registering,
    RegistrationFailed,
    RequestServed,
    TunnelOpened,
    Warning,
)
from connect_devloop.tui import DashboardApp

SIZE = (120, 40)
T0 = 1_700_000_000.0  # 22:13:20 UTC
PROJECT = Path("/home/dev/my-addon")
DIGEST = "3f2a9c1b7d0e"
PUBLIC_URL = "https://a1b2-203-0-113-7.ngrok-free.app"

CONFIG = Config(
    path=PROJECT / "connect-dev.toml",
    descriptor_path=PROJECT / "atlassian-connect.json",
    addon_url="http://localhost:3000",
    proxy_port=8000,
    tunnel=TunnelConfig(provider="ngrok"),
    hosts=(
        HostConfig("dev-jira", "https://acme-dev.atlassian.net", "jira", "me@acme.com"),
        HostConfig("dev-wiki", "https://acme-dev.atlassian.net/wiki", "confluence", "me@acme.com"),
        HostConfig("local-jira", "http://localhost:2990/jira", "jira", "admin"),
    ),
)
CLIENT_KEYS = {
    "dev-jira": "6b1c9a0e-2f4d-4c1e-9d3a-8f0b7e6c5d41",
    "dev-wiki": "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f60",
    "local-jira": "jira:00431267",
}
DURATIONS = {"dev-jira": 1840, "dev-wiki": 2310, "local-jira": 412}


def at(seconds: float) -> dict[str, Any]:
    return {"ts": T0 + seconds}


def startup(failing: str | None = None) -> list[Event]:
    events: list[Event] = [
        DescriptorLoaded(key="my-addon", digest=DIGEST, path=str(CONFIG.descriptor_path), **at(0)),
        TunnelOpened(url=PUBLIC_URL, provider="ngrok", **at(1.2)),
    ]
    events += [Registering(host=h.name, reason="startup", **at(1.3)) for h in CONFIG.hosts]
    for offset, host in enumerate(CONFIG.hosts):
        when = at(2 + offset)
        if host.name == failing:
            events.append(
                RegistrationFailed(
                    host=host.name,
                    error=f"{host.url} rejected the login of 'admin' (HTTP 401)",
                    hint="Local SDK hosts (atlas-run) use admin/admin; check username and "
                    "password in connect-dev.toml.",
                    **when,
                )
            )
            continue
        events.append(
            Lifecycle(
                host=host.name,
                event="installed",
                client_key=CLIENT_KEYS[host.name],
                verified=True,
                **when,
            )
        )
        events.append(
            Registered(
                host=host.name,
                key="my-addon",
                duration_ms=DURATIONS[host.name],
                digest=DIGEST,
                **when,
            )
        )
    events.append(Ready(public_url=PUBLIC_URL, **at(5)))
    return events


def requests() -> list[Event]:
    """Requests as the proxy reports them, with the inspector's verdicts (inspection.py)."""
    tenant = CLIENT_KEYS["dev-jira"]
    installed = {
        "verified": True,
        "verdict": "verified",
        "signature": "RS256",
        "kid": "0f1e2d3c",
        "iss": tenant,
        "aud": PUBLIC_URL,
        "qsh": "ok",
        "lifecycle": "installed",
    }
    page = {
        "verified": True,
        "verdict": "verified",
        "signature": "HS256",
        "iss": tenant,
        "tenant": tenant,
        "host": "dev-jira",
        "expires_in": 171,
        "qsh": "ok",
    }
    signed = "GET&/panel&lic=none&xdm_e=https%3A%2F%2Facme-dev.atlassian.net"
    received = "GET&/app/panel&lic=none&xdm_e=https%3A%2F%2Facme-dev.atlassian.net"
    qsh_mismatch = {
        "verified": False,
        "verdict": "qsh mismatch",
        "reason": f"qsh mismatch: the host signed {signed!r}, but the add-on will compute "
        f"{received!r} from the URL it receives",
        "hint": "The add-on hashes the method, its path minus its own base URL's path, and the "
        "query. It must see the path the host signed: check [addon] url in connect-dev.toml "
        "and any proxy in front of the add-on that rewrites paths.",
        "signature": "HS256",
        "qsh": "5b7e3a0c9d1f2e4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a",
        "qsh_expected": "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b",
        "canonical_signed": signed,
        "canonical_received": received,
        "iss": tenant,
    }
    token = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl"
    query = "lic=none&xdm_e=https%3A%2F%2Facme-dev.atlassian.net"
    return [
        RequestServed(
            method="GET", path="/atlassian-connect.json", status=200, duration_ms=1.4, **at(6)
        ),
        RequestServed(
            method="POST", path="/installed", status=204, duration_ms=38.2, jwt=installed, **at(6.2)
        ),
        RequestServed(
            method="GET",
            path=f"/panel?jwt={token}&{query}",
            status=200,
            duration_ms=12.7,
            jwt=page,
            **at(9),
        ),
        RequestServed(method="GET", path="/css/app.css", status=304, duration_ms=0.8, **at(9.1)),
        RequestServed(method="GET", path="/api/issues", status=502, duration_ms=3.1, **at(11)),
        RequestServed(
            method="GET",
            path=f"/panel?jwt={token}&{query}",
            status=401,
            duration_ms=4.6,
            jwt=qsh_mismatch,
            **at(12),
        ),
    ]


def invalid() -> list[Event]:
    return [
        DescriptorInvalid(
            errors=[
                {
                    "path": "$",
                    "message": "invalid JSON: Expecting property name enclosed in double quotes",
                    "line": 14,
                    "column": 5,
                    "severity": "error",
                },
            ],
            path=str(CONFIG.descriptor_path),
            **at(20),
        ),
        DescriptorInvalid(
            errors=[
                {
                    "path": "$.key",
                    "message": "must match ^[a-zA-Z0-9-._]+$ (got 'my addon!')",
                    "line": 2,
                    "column": 10,
                    "severity": "error",
                },
                {
                    "path": "$.lifecycle.installed",
                    "message": "must be a relative URL starting with /",
                    "line": 9,
                    "column": 18,
                    "severity": "error",
                },
                {
                    "path": "$.modules.generalPages[0].name",
                    "message": "required",
                    "line": None,
                    "column": None,
                    "severity": "error",
                },
            ],
            path=str(CONFIG.descriptor_path),
            **at(25),
        ),
    ]


# Any terminal (issue 12): one day of work, replayed at the three sizes a terminal has most often.
LONG_PATH_CONFIG = replace(
    CONFIG,
    path=PROJECT / "connect-dev.toml",
    descriptor_path=Path(
        "/home/dev/work/acme-corporation/issue-tracker-integration/"
        "src/main/resources/atlassian-connect.json"
    ),
    hosts=(
        HostConfig("dev-jira", "https://acme-dev.atlassian.net", "jira", "me@acme.com"),
        HostConfig("local-jira", "http://localhost:2990/jira", "jira", "admin"),
    ),
)


def busy_day() -> list[Event]:
    """Two hosts, one failed with a hint; 30 requests with every kind of JWT verdict."""
    hosts = {host.name for host in LONG_PATH_CONFIG.hosts}
    events = [
        event
        for event in startup(failing="local-jira")
        if getattr(event, "host", None) in hosts | {None}
    ]
    served = [event for event in requests() if isinstance(event, RequestServed)]
    expired = {"verified": False, "verdict": "expired", "reason": "the token expired 4 s ago"}
    for n in range(30):
        template = served[n % len(served)]
        jwt = expired if n % 7 == 3 else template.jwt
        events.append(replace(template, jwt=jwt, ts=T0 + 13 + n))
    return events


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_busy_day_at_every_terminal_size(
    snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    app = DashboardApp(LONG_PATH_CONFIG, daemon=None, events=busy_day())
    assert snap_compare(app, terminal_size=size)


def scene(*events: Event) -> DashboardApp:
    return DashboardApp(CONFIG, daemon=None, events=events)


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


SnapCompare = Callable[..., bool]


def test_all_hosts_installed(snap_compare: SnapCompare) -> None:
    assert snap_compare(scene(*startup(), *requests()), terminal_size=SIZE)


def test_one_host_failed_with_its_hint(snap_compare: SnapCompare) -> None:
    warning = Warning(message="password for local-jira is inline in connect-dev.toml", **at(0))
    assert snap_compare(scene(warning, *startup(failing="local-jira")), terminal_size=SIZE)


def test_invalid_descriptor_shows_every_problem_with_its_location(
    snap_compare: SnapCompare,
) -> None:
    assert snap_compare(scene(*startup(), *invalid()), terminal_size=SIZE)


def test_request_detail_view(snap_compare: SnapCompare) -> None:
    assert snap_compare(scene(*startup(), *requests()), press=["enter"], terminal_size=SIZE)


FORGE_CONFIG = replace(
    CONFIG,
    hosts=(
        *CONFIG.hosts,
        HostConfig(
            "cloud-dev",
            "https://acme.atlassian.net",
            "jira",
            "",
            registrar="forge",
            site="acme.atlassian.net",
        ),
    ),
)


def test_a_forge_host_mid_deploy_shows_the_step_and_its_time(snap_compare: SnapCompare) -> None:
    upm_hosts = [event for event in startup() if not isinstance(event, Ready)]
    forge = [
        Registering(host="cloud-dev", reason="startup", registrar="forge", **at(1.3)),
        ForgeStep(host="cloud-dev", step="validate", state="started", **at(1.3)),
        ForgeStep(host="cloud-dev", step="validate", state="done", duration_ms=412, **at(1.7)),
        ForgeStep(host="cloud-dev", step="deploy", state="started", **at(1.7)),
    ]
    events = sorted([*upm_hosts, *forge], key=lambda event: event.ts)
    app = DashboardApp(FORGE_CONFIG, daemon=None, events=events, clock=lambda: T0 + 48.7)
    assert snap_compare(app, terminal_size=SIZE)


def screen_text(app: DashboardApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_at_80x24_the_dashboard_keeps_what_matters() -> None:
    app = DashboardApp(LONG_PATH_CONFIG, daemon=None, events=busy_day())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert len(lines) == 24
        assert all(len(line) == 80 for line in lines)
        header, footer, screen = lines[0], lines[-1], "\n".join(lines)
        assert "✔ valid" in header
        assert "● 1/2 installed" in header
        assert "/home/dev…resources/atlassian-connect.json" in header
        assert " q Quit" in footer
        assert "Status" in screen
        assert "JWT" in screen
        assert "✖ qsh mismatch" in screen
        hosts = {line.split()[1]: line for line in lines if "-jira " in line}
        assert "✔ installed" in hosts["dev-jira"]
        assert "startup" in hosts["dev-jira"]
        assert "✖ failed" in hosts["local-jira"]
        assert "hint: Local SDK hosts" in screen
        # The keys left out of the footer still work.
        await pilot.press("l")
        assert app.focused is app.query_one("#log")
