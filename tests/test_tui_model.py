"""The dashboard's pure parts (wording, masking, tenants, teardown progress, the state it adds)
and its panels fed with synthetic events, without any server."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot

from connect_devloop.config import Config, HostConfig
from connect_devloop.daemon import wants_dashboard
from connect_devloop.events import (
    Deregistered,
    DeregistrationFailed,
    Lifecycle,
    Registered,
    Registering,
    RegistrationFailed,
    RequestServed,
    Stopped,
    TunnelClosed,
    TunnelOpened,
)
from connect_devloop.redact import mask_headers, mask_path, masked_mapping
from connect_devloop.state import HostStatus, State, reduce
from connect_devloop.tui import DashboardApp
from connect_devloop.tui.format import (
    duration,
    host_state_label,
    latency,
    reason_label,
    short_url,
    truncate,
    verdict_label,
)
from connect_devloop.tui.header import header_line
from connect_devloop.tui.hosts import COLUMNS, HostsTable
from connect_devloop.tui.layout import CELL_PADDING, elide_middle, fit_columns
from connect_devloop.tui.model import (
    Teardown,
    TeardownStep,
    Tenant,
    teardown_steps,
    track_teardown,
    track_tenants,
)
from connect_devloop.tui.request_detail import request_renderable
from connect_devloop.tui.requests import COLUMNS as REQUEST_COLUMNS
from connect_devloop.tui.requests import MAX_ROWS, RequestTable
from connect_devloop.tui.tunnel import describe

from .conftest import eventually

TS = 1_700_000_000.0
CONFIG = Config(
    path=Path("/p/connect-dev.toml"),
    descriptor_path=Path("/p/atlassian-connect.json"),
    hosts=(
        HostConfig("jira", "https://acme.atlassian.net", "jira", "me"),
        HostConfig("wiki", "https://acme.atlassian.net/wiki", "confluence", "me"),
    ),
)


async def shown(pilot: Pilot[int], timeout: float = 10.0) -> None:
    """Wait until the dashboard has rendered every event fed to it: rendering is batched on a
    timer, and a fixed pause is too short on a loaded CI machine."""
    app = pilot.app
    assert isinstance(app, DashboardApp)
    await pilot.pause()
    await eventually(lambda: not app.events_pending, timeout)
    await pilot.pause()


def replay(state: State, *events: object) -> State:
    for event in events:
        state = reduce(state, event)  # type: ignore[arg-type]
    return state


# --- wording -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (HostStatus("h"), "· pending"),
        (HostStatus("h", state="installing", reason="startup"), "⠋ installing"),
        (HostStatus("h", state="installing", reason="recovery"), "⠋ installing"),
        (HostStatus("h", state="installing", reason="descriptor_changed"), "⠋ re-installing"),
        (HostStatus("h", state="installed", enabled=True), "✔ installed"),
        (HostStatus("h", state="installed", enabled=False), "⚠ disabled"),
        (HostStatus("h", state="failed"), "✖ failed"),
        (HostStatus("h", state="uninstalled"), "○ uninstalled"),
        (HostStatus("h", state="uninstall_failed"), "✖ uninstall failed"),
    ],
)
def test_host_state_labels(status: HostStatus, label: str) -> None:
    assert host_state_label(status) == label


def test_the_spinner_turns_with_the_frame() -> None:
    installing = HostStatus("h", state="installing", reason="manual")
    frames = [host_state_label(installing, frame)[0] for frame in range(11)]
    assert frames == list("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏⠋")


def test_durations_reasons_and_urls() -> None:
    assert [duration(None), duration(61), duration(999.6), duration(1840)] == [
        "",
        "61 ms",
        "1000 ms",
        "1.8 s",
    ]
    assert [latency(0.04), latency(12.66), latency(120), latency(2500)] == [
        "0.0 ms",
        "12.7 ms",
        "120 ms",
        "2.5 s",
    ]
    assert reason_label("descriptor_changed") == "saved"
    assert reason_label("tunnel_changed") == "tunnel URL"
    assert reason_label("something_new") == "something new"
    assert short_url("https://acme.atlassian.net/wiki/") == "acme.atlassian.net/wiki"
    assert short_url("http://127.0.0.1:2990/jira") == "127.0.0.1:2990/jira"
    assert short_url("http://localhost:2990/jira") == "localhost:2990/jira"
    assert short_url("http://jira.lan:8080/jira") == "http://jira.lan:8080/jira"
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdefg", 6) == "abcde…"


def test_verdict_labels() -> None:
    assert verdict_label(None) == ""
    assert verdict_label({"verified": True, "verdict": "verified"}) == "✔ verified"
    failed = {"verified": False, "verdict": "expired", "reason": "the token expired 3 s ago"}
    assert verdict_label(failed) == "✖ expired"
    assert verdict_label({"verified": False, "reason": "inspection timed out"}) == (
        "✖ inspection timed out"
    )
    assert verdict_label({"verified": False}) == "✖ not verified"


# --- masking -----------------------------------------------------------------------------------


def test_headers_that_authenticate_are_masked_with_their_scheme_and_length() -> None:
    masked = mask_headers(
        {
            "Authorization": "JWT eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
            "Cookie": "session=abc123",
            "X-Api-Key": "k-123",
            "Content-Type": "application/json",
            "X-Forwarded-For": "203.0.113.7",
        }
    )
    assert masked == [
        ("Authorization", "JWT •••••• (29 chars)"),
        ("Cookie", "•••••• (14 chars)"),
        ("X-Api-Key", "•••••• (5 chars)"),
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", "203.0.113.7"),
    ]
    assert mask_headers(masked) == masked, "masking a masked value changes nothing"


def test_secret_query_parameters_are_masked_in_paths() -> None:
    assert mask_path("/p?jwt=eyJ.x.y&lic=none") == "/p?jwt=••••••&lic=none"
    assert mask_path("/p?a=1&access_token=t&b") == "/p?a=1&access_token=••••••&b"
    assert mask_path("/plain/path") == "/plain/path"


def test_verdict_values_named_like_secrets_are_masked_but_not_the_algorithm() -> None:
    verdict = {
        "signature": "HS256",
        "shared_secret": "s3cr3t",
        "claims": {"iss": "c", "token": "abc"},
        "context_token": True,
    }
    assert masked_mapping(verdict) == {
        "signature": "HS256",
        "shared_secret": "•••••• (6 chars)",
        "claims": {"iss": "c", "token": "•••••• (3 chars)"},
        "context_token": True,
    }


# --- what the dashboard derives from events -----------------------------------------------------


def test_tenants_come_from_lifecycle_events() -> None:
    tenants = track_tenants({}, Registered(ts=TS, host="jira", key="k", duration_ms=1))
    assert tenants == {}
    tenants = track_tenants(
        tenants, Lifecycle(ts=TS, host="jira", event="installed", client_key="ck", verified=True)
    )
    assert tenants == {"jira": Tenant("ck", "installed", True)}
    assert tenants["jira"].active
    tenants = track_tenants(
        tenants,
        Lifecycle(ts=TS, host="jira", event="uninstalled", client_key="ck", verified=False),
    )
    assert not tenants["jira"].active


@pytest.mark.parametrize(
    ("addon_status", "addon_error", "active"),
    [(204, "", True), (0, "", True), (500, "", False), (502, "connection refused", False)],
)
def test_an_installed_callback_the_addon_did_not_accept_is_no_tenant(
    addon_status: int, addon_error: str, active: bool
) -> None:
    lifecycle = Lifecycle(
        ts=TS,
        host="jira",
        event="installed",
        client_key="ck",
        verified=True,
        addon_status=addon_status,
        addon_error=addon_error,
    )
    assert track_tenants({}, lifecycle)["jira"].active is active


def test_teardown_progress_per_host() -> None:
    state = State.initial(["a", "b", "c"])
    outcomes = track_teardown({}, Deregistered(ts=TS, host="a", key="k"))
    outcomes = track_teardown(outcomes, DeregistrationFailed(ts=TS, host="b", error="timed out"))
    outcomes = track_teardown(outcomes, Deregistered(ts=TS, host="b", key="old"))  # sticks
    assert teardown_steps(state, outcomes) == [
        TeardownStep("a", Teardown.UNINSTALLED, "k"),
        TeardownStep("b", Teardown.FAILED, "timed out"),
        TeardownStep("c", Teardown.UNINSTALLING),
    ]
    stopped = reduce(state, Stopped(ts=TS))
    assert teardown_steps(stopped, outcomes)[2] == TeardownStep("c", Teardown.NOTHING)
    # A host known only from the ledger (no longer in the config) is listed too.
    ghost = track_teardown(outcomes, DeregistrationFailed(ts=TS, host="gone", error="e"))
    assert teardown_steps(state, ghost)[-1] == TeardownStep("gone", Teardown.FAILED, "e")


# --- what state.py gained for the panels --------------------------------------------------------


def test_tunnel_health_counts_reopenings_and_keeps_why_it_closed() -> None:
    state = replay(State(), TunnelOpened(ts=TS, url="https://one", provider="ngrok"))
    assert (state.tunnel_reopened, state.tunnel_closed_reason) == (0, "")
    state = replay(state, TunnelClosed(ts=TS, provider="ngrok", reason="agent exited"))
    assert (state.tunnel_open, state.tunnel_closed_reason) == (False, "agent exited")
    assert describe(state).plain.endswith("✖ down (agent exited)")
    state = replay(state, TunnelOpened(ts=TS, url="https://two", provider="ngrok"))
    assert (state.tunnel_reopened, state.tunnel_closed_reason) == (1, "")
    assert describe(state).plain == "tunnel       ngrok  https://two  ● up  reopened once"
    state = replay(state, TunnelClosed(ts=TS, provider="ngrok", reason="shutdown"))
    assert describe(state).plain.endswith("○ closed")
    assert replay(State(), TunnelClosed(ts=TS)).tunnel_closed_reason == "closed"


def test_the_tunnel_bar_shows_the_ngrok_inspector_when_there_is_one() -> None:
    opened = TunnelOpened(
        ts=TS, url="https://one", provider="ngrok", inspector_url="http://127.0.0.1:4040"
    )
    state = replay(State(), opened)
    assert describe(state).plain == (
        "tunnel       ngrok  https://one  ● up  inspector http://127.0.0.1:4040"
    )
    down = replay(state, TunnelClosed(ts=TS, provider="ngrok", reason="exited"))
    assert describe(down).plain.endswith("✖ down (exited)  inspector http://127.0.0.1:4040")
    ssh = replay(State(), TunnelOpened(ts=TS, url="https://one", provider="ssh"))
    assert "inspector" not in describe(ssh).plain


def test_request_counters() -> None:
    state = replay(
        State(),
        RequestServed(ts=TS, method="GET", path="/", status=200, duration_ms=1),
        RequestServed(ts=TS, method="GET", path="/", status=502, duration_ms=1),
        RequestServed(
            ts=TS, method="GET", path="/", status=401, duration_ms=1, jwt={"verified": False}
        ),
        RequestServed(
            ts=TS, method="GET", path="/", status=200, duration_ms=1, jwt={"verified": True}
        ),
    )
    assert (state.request_count, state.request_errors, state.jwt_rejected) == (4, 1, 1)


def test_removing_a_renamed_add_ons_old_key_leaves_the_host_installed() -> None:
    state = replay(
        State.initial(["jira"]),
        Registering(ts=TS, host="jira", reason="descriptor_changed"),
        Registered(ts=TS, host="jira", key="new-key", duration_ms=5),
        Deregistered(ts=TS, host="jira", key="old-key", reason="key_changed"),
    )
    assert state.hosts["jira"].state == "installed"
    assert state.hosts["jira"].key == "new-key"
    state = reduce(state, DeregistrationFailed(ts=TS, host="jira", key="older", error="e"))
    assert (state.hosts["jira"].state, state.hosts["jira"].error) == ("installed", "e")
    state = reduce(state, Deregistered(ts=TS, host="jira", key="new-key"))
    assert state.hosts["jira"].state == "uninstalled"


# --- panels fed with events ---------------------------------------------------------------------


def test_columns_are_sized_to_their_content_and_the_fill_column_takes_the_rest() -> None:
    content = {"host": 10, "product": 10, "url": 22, "state": 11, "revision": 7, "took": 6}
    layout = dict(fit_columns(COLUMNS, content | {"enabled": 7, "tenant": 36}, 118))
    assert layout == {
        "host": 10,
        "product": 10,
        "url": 22,
        "state": 11,
        "revision": 7,
        "took": 6,
        "enabled": 7,
        "tenant": 10,  # its maximum: the first digits identify a tenant
        "reason": 17,
    }
    # Cells have one column of padding each side.
    assert sum(width + CELL_PADDING for width in layout.values()) == 118


def test_on_a_narrow_terminal_the_least_useful_columns_go_first() -> None:
    content = {"host": 10, "product": 4, "url": 22, "state": 11, "revision": 7, "took": 5}
    assert [key for key, _ in fit_columns(COLUMNS, content, 78)] == [
        "host",
        "product",
        "url",
        "state",
        "revision",
        "reason",
    ]
    assert [key for key, _ in fit_columns(COLUMNS, content, 40)] == ["host", "state", "reason"]
    # A host's name and its state are never dropped nor cut: the table is.
    assert fit_columns(COLUMNS, {"host": 30}, 10) == (("host", 30), ("state", 5))


def test_the_request_table_keeps_status_and_jwt_and_gives_up_the_latency_first() -> None:
    content = {"time": 8, "method": 7, "status": 6, "took": 8, "jwt": 14}
    wide = dict(fit_columns(REQUEST_COLUMNS, content, 116))
    assert list(wide) == ["time", "method", "path", "status", "took", "jwt"]
    assert wide["path"] == 116 - 12 - (8 + 7 + 6 + 8 + 14)
    narrow = dict(fit_columns(REQUEST_COLUMNS, content, 76))
    assert list(narrow) == ["time", "method", "path", "status", "jwt"]
    tiny = dict(fit_columns(REQUEST_COLUMNS, content, 60))
    assert list(tiny) == ["path", "status", "jwt"]


def test_a_long_path_keeps_its_file_name_and_loses_its_middle() -> None:
    path = "/home/dev/work/acme/src/main/resources/atlassian-connect.json"
    assert elide_middle(path, 80) == path
    assert elide_middle(path, 40) == "/home/de…esources/atlassian-connect.json"
    assert len(elide_middle(path, 40)) == 40
    assert elide_middle(path, 24) == "…/atlassian-connect.json"
    assert elide_middle(path, 10) == "atlassian-connect.json"  # the name, even when too wide
    assert elide_middle("atlassian-connect.json", 10) == "atlassian-connect.json"


def test_the_header_gives_up_words_before_the_validity_and_the_phase() -> None:
    state = State(hosts={}, key="my-addon", digest="3f2a9c1b7d0e", descriptor_valid=True)
    path = "/home/dev/work/acme/issue-tracker/src/main/resources/atlassian-connect.json"
    phase = Text("● ready · waiting: 1/2 hosts installed")
    short = Text("● 1/2 installed")

    def line(width: int, state: State = state) -> str:
        left, right = header_line(state, path, phase, short, width)
        return f"{left.plain}  {right.plain}"

    assert line(200) == (
        f"connect-dev  my-addon  {path}  digest 3f2a9c1b7d0e  ✔ valid  "
        "● ready · waiting: 1/2 hosts installed"
    )
    assert line(118) == (
        "connect-dev  my-addon  /home/dev/work/acm…src/main/resources/atlassian-connect.json"
        "  3f2a9c1  ✔ valid  ● 1/2 installed"
    )
    assert line(78) == (
        "my-addon  /home/dev…resources/atlassian-connect.json  ✔ valid  ● 1/2 installed"
    )
    restart = replace(state, restart_needed=("proxy.port",))
    assert line(78, restart).endswith("✔ valid  ⟳ restart needed  ● 1/2 installed")
    assert "⟳ restart needed (proxy.port)" in line(240, restart)


async def test_the_tenant_column_shows_the_client_key_once_the_installed_callback_arrived() -> None:
    app = DashboardApp(CONFIG, daemon=None)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(HostsTable)
        assert table.get_cell("jira", "tenant").plain == ""
        app.feed(
            Registered(ts=TS, host="jira", key="k", duration_ms=1),
            Lifecycle(ts=TS, host="jira", event="installed", client_key="abc-123", verified=True),
            Lifecycle(
                ts=TS, host="wiki", event="installed", client_key="0123456789abcdef", verified=False
            ),
        )
        await shown(pilot)
        assert table.get_cell("jira", "tenant").plain == "abc-123"
        assert table.get_cell("wiki", "tenant").plain == "012345678…"
        assert str(table.get_cell("wiki", "tenant").style) == "yellow"  # not verified
        app.feed(
            Lifecycle(ts=TS, host="jira", event="uninstalled", client_key="abc-123", verified=True)
        )
        await shown(pilot)
        assert table.get_cell("jira", "tenant").plain == ""


async def test_the_request_table_keeps_the_newest_rows_only() -> None:
    app = DashboardApp(CONFIG, daemon=None)
    async with app.run_test(size=(120, 40)) as pilot:
        total = MAX_ROWS * 2 + 50
        for n in range(total):
            app.feed(RequestServed(ts=TS, method="GET", path=f"/r/{n}", status=200, duration_ms=1))
        await shown(pilot)
        table = app.query_one(RequestTable)
        assert table.row_count == MAX_ROWS
        assert table.get_row_at(0)[2].plain == f"/r/{total - MAX_ROWS}"
        assert table.get_row_at(MAX_ROWS - 1)[2].plain == f"/r/{total - 1}"
        assert table.cursor_row == MAX_ROWS - 1  # following the newest
        assert table.border_title == f"Requests {total:,}"


async def test_the_request_table_keeps_what_it_rendered_for_one_screen_only() -> None:
    """DataTable caches rendered cells per row and update; in a flood every batch adds rows, so
    without a bound the caches kept ~12 MiB of rows long gone (benchmarks/tui_flood.py)."""
    app = DashboardApp(CONFIG, daemon=None)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(RequestTable)
        for batch in range(20):
            for n in range(50):
                app.feed(
                    RequestServed(
                        ts=TS, method="GET", path=f"/r/{batch}/{n}", status=200, duration_ms=1
                    )
                )
            await shown(pilot)
        one_screen = table.size.height * len(table.columns)
        assert 0 < len(table._cell_render_cache) <= one_screen
        assert len(table._row_render_cache) <= table.size.height
        assert len(table._line_cache) <= table.size.height
        assert table.get_row_at(MAX_ROWS - 1)[2].plain == "/r/19/49"  # still drawn right


async def test_the_request_table_keeps_the_cursor_on_the_request_being_looked_at() -> None:
    app = DashboardApp(CONFIG, daemon=None)
    async with app.run_test(size=(120, 40)) as pilot:
        for n in range(10):
            app.feed(RequestServed(ts=TS, method="GET", path=f"/r/{n}", status=200, duration_ms=1))
        await shown(pilot)
        table = app.query_one(RequestTable)
        table.focus()
        await pilot.press("up", "up")
        assert table.request_at_cursor().path == "/r/7"  # type: ignore[union-attr]
        for n in range(10, 20):
            app.feed(RequestServed(ts=TS, method="GET", path=f"/r/{n}", status=200, duration_ms=1))
        await shown(pilot)
        assert table.request_at_cursor().path == "/r/7"  # type: ignore[union-attr]


async def test_a_flood_rebuilds_the_table_and_keeps_the_request_being_looked_at() -> None:
    """A batch that pushes most rows out rebuilds the table instead of trimming it row by row
    (that was 90 % of a redraw on the proxy's loop); what the user looks at stays selected."""
    app = DashboardApp(CONFIG, daemon=None)
    async with app.run_test(size=(120, 40)) as pilot:
        for n in range(MAX_ROWS):
            app.feed(RequestServed(ts=TS, method="GET", path=f"/r/{n}", status=200, duration_ms=1))
        await shown(pilot)
        table = app.query_one(RequestTable)
        table.focus()
        await pilot.press("up")
        looked_at = table.request_at_cursor()
        assert looked_at is not None
        assert looked_at.path == f"/r/{MAX_ROWS - 2}"
        for n in range(MAX_ROWS, MAX_ROWS + MAX_ROWS // 2):  # half the rows go at once
            app.feed(RequestServed(ts=TS, method="GET", path=f"/r/{n}", status=200, duration_ms=1))
        await shown(pilot)
        assert table.row_count == MAX_ROWS
        assert table.get_row_at(0)[2].plain == f"/r/{MAX_ROWS // 2}"
        assert table.request_at_cursor() is looked_at


async def test_without_a_daemon_quitting_exits_at_once() -> None:
    app = DashboardApp(CONFIG, daemon=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")  # nothing to do, and says so
        await pilot.press("q")
    assert app.return_code == 0


# --- choosing the dashboard ---------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "log_format", "no_tui", "expected"),
    [
        (Terminal(), None, False, True),
        (Terminal(), None, True, False),
        (Terminal(), "text", False, False),
        (Terminal(), "json", False, False),
        (io.StringIO(), None, False, False),
    ],
)
def test_the_dashboard_only_on_a_terminal_without_log_options(
    stream: io.StringIO, log_format: str | None, no_tui: bool, expected: bool
) -> None:
    assert wants_dashboard(stream, log_format, no_tui) is expected


def test_failures_keep_their_hint_in_the_hosts_problems() -> None:
    from connect_devloop.tui.host_problems import problem_lines

    state = replay(
        State.initial(["jira", "wiki"]),
        RegistrationFailed(ts=TS, host="jira", error="boom", hint="Do this."),
        Registered(ts=TS, host="wiki", key="k", duration_ms=1, enabled=False),
    )
    assert [line.plain for line in problem_lines(state)] == [
        "✖ jira failed: boom\n  hint: Do this.",
        "⚠ wiki has k installed but DISABLED: enable it in Manage apps (o opens it).",
    ]


async def test_log_records_go_to_the_event_log_while_the_dashboard_runs() -> None:
    import logging

    from connect_devloop.tui.event_log import EventLog

    root = logging.getLogger()
    before = root.handlers[:]
    app = DashboardApp(CONFIG, daemon=None, capture_logging=True)
    async with app.run_test(size=(120, 40)):
        logging.getLogger("connect_devloop.test").warning("installed key x, expected y")
        log = app.query_one(EventLog)
        await eventually(lambda: bool(log.lines) and "installed key x" in log.lines[-1].text)
        assert (
            log.lines[-1]
            .text.rstrip()
            .endswith("WARNING connect_devloop.test: installed key x, expected y")
        )
    assert root.handlers == before


async def test_o_without_a_browser_copies_the_url_instead() -> None:
    opened: list[str] = []

    def no_browser(url: str) -> bool:
        opened.append(url)
        return False

    app = DashboardApp(CONFIG, daemon=None, opener=no_browser)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("o")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert opened == ["https://acme.atlassian.net/plugins/servlet/upm"]
        assert app.clipboard == "https://acme.atlassian.net/plugins/servlet/upm"


def test_no_text_mode_browser_is_started_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    from connect_devloop.tui.app import open_in_browser

    def refuse(url: str) -> bool:
        raise AssertionError("webbrowser.open must not be called without a display")

    monkeypatch.setattr(webbrowser, "open", refuse)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert open_in_browser("https://acme.atlassian.net/plugins/servlet/upm") is False


class LockedDaemon:
    """A daemon that cannot start, as when another `connect-dev up` holds the project lock."""

    async def run(self, stop: object) -> int:
        from connect_devloop.errors import DevloopError

        raise DevloopError("another connect-dev is running here", hint="Stop it first.")

    def reinstall(self, host: str | None = None, *, reason: str = "manual") -> None: ...

    async def uninstall(self, host: str) -> bool:
        return False

    def validate_now(self) -> None: ...


async def test_a_daemon_that_cannot_start_closes_the_dashboard_with_its_error() -> None:
    from connect_devloop.errors import DevloopError

    app = DashboardApp(CONFIG, daemon=LockedDaemon())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
    assert app.return_code == 1
    assert isinstance(app.failure, DevloopError)
    assert app.failure.message == "another connect-dev is running here"


# --- the request card -----------------------------------------------------------------------


def _card(request: RequestServed) -> str:
    console = Console(width=116, file=io.StringIO(), record=True, color_system=None)
    console.print(request_renderable(request))
    return console.export_text()


def test_a_jwt_header_is_masked_once_with_the_tokens_own_length() -> None:
    token = "eyJ" + "a" * 685
    headers = dict(mask_headers([("Authorization", f"JWT {token}")]))  # as the proxy reports
    card = _card(RequestServed(method="GET", path="/", status=200, duration_ms=1, headers=headers))
    assert f"JWT •••••• ({len(token)} chars)" in card
    assert "(18 chars)" not in card


def test_the_qsh_mismatch_card_shows_no_python_values() -> None:
    verdict = {
        "verified": False,
        "verdict": "qsh mismatch",
        "reason": "qsh mismatch: the token was signed for another request",
        "signature": "HS256",
        "qsh": "5b7e",
        "qsh_expected": "9c8b",
        "canonical_signed": None,
        "canonical_received": "GET&/panel&",
        "signed_as_requested": False,
        "iss": "client-key",
    }
    card = _card(RequestServed(method="GET", path="/p", status=401, duration_ms=1, jwt=verdict))
    assert "None" not in card
    assert "False" not in card
    lines = {" ".join(line.split()) for line in card.splitlines()}
    assert "canonical signed —" in lines
    assert "signed as requested no" in lines


def test_the_card_says_when_the_add_on_did_not_answer() -> None:
    request = RequestServed(
        method="POST",
        path="/installed",
        status=502,
        duration_ms=1,
        addon_error="connection refused",
    )
    assert "the add-on did not answer (connection refused)" in " ".join(_card(request).split())
