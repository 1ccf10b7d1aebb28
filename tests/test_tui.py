"""The dashboard driven by Textual's pilot against real emulated hosts and a real add-on.

Each test runs the real Supervisor inside the app (as `connect-dev up` does on a terminal) and
asserts on two things: what the panels show, and what the emulated host's own record says it
installed and uninstalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from rich.console import Console
from textual.pilot import Pilot
from textual.widget import Widget

from connect_devloop.config import load_config
from connect_devloop.events import EventBus
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.ledger import Ledger
from connect_devloop.state import MAX_RECENT_REQUESTS
from connect_devloop.supervisor import Supervisor
from connect_devloop.tui import DashboardApp
from connect_devloop.tui.app import FLUSH_INTERVAL
from connect_devloop.tui.event_log import EventLog
from connect_devloop.tui.header import DescriptorHeader
from connect_devloop.tui.host_detail import HostDetail
from connect_devloop.tui.host_problems import HostProblems
from connect_devloop.tui.hosts import HostsTable
from connect_devloop.tui.request_detail import RequestDetail
from connect_devloop.tui.requests import MAX_ROWS, RequestTable
from connect_devloop.tui.teardown import TeardownPanel
from connect_devloop.tui.tunnel import TunnelBar
from connect_devloop.tui.validation import ValidationPanel

from .conftest import EventLog as Recorder
from .conftest import descriptor_text, eventually
from .e2e import RecordingAddon, host_toml, recording_addon, save, write_config

SIZE = (120, 40)


@dataclass
class Dashboard:
    app: DashboardApp
    pilot: Pilot[None]
    events: Recorder
    supervisor: Supervisor
    opened: list[str] = field(default_factory=list)

    def cell(self, host: str, column: str) -> str:
        return self.app.query_one(HostsTable).get_cell(host, column).plain

    def text(self, widget_type: type[Widget]) -> str:
        return rendered(self.app.query_one(widget_type))

    def words(self, widget_type: type[Widget]) -> str:
        """The panel's text with runs of spaces (column alignment) as one space."""
        return " ".join(self.text(widget_type).split())

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait for the panels to show something; they change at most every 100 ms."""
        await eventually(predicate, timeout)

    async def until_installed(self, host: str, digest: str, timeout: float = 10.0) -> None:
        await self.until(
            lambda: (
                self.cell(host, "state") == "✔ installed"
                and self.cell(host, "revision") == digest[:7]
            ),
            timeout,
        )

    async def until_exited(self, timeout: float = 15.0) -> None:
        await self.until(lambda: self.app.return_code is not None, timeout)


def rendered(widget: Widget) -> str:
    """The plain text a panel shows (its content as last updated), at the screen's width."""
    console = Console(width=SIZE[0] - 4, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)  # type: ignore[attr-defined]
    return console.export_text()


@contextlib.asynccontextmanager
async def dashboard(
    config_path: Path, *, teardown_timeout: float = 5.0
) -> AsyncIterator[Dashboard]:
    """The app with a real Supervisor; quit (with teardown) on the way out if still running."""
    events = Recorder()
    bus = EventBus()
    bus.subscribe(events)
    supervisor = Supervisor(
        load_config(config_path), bus, settle=0.2, teardown_timeout=teardown_timeout
    )
    opened: list[str] = []
    app = DashboardApp(
        supervisor.config, daemon=supervisor, bus=bus, opener=lambda url: opened.append(url)
    )
    async with app.run_test(size=SIZE) as pilot:
        board = Dashboard(app, pilot, events, supervisor, opened)
        try:
            yield board
            if app.return_code is None and not app.quitting:
                await pilot.press("q")
            if not app.forced:
                await board.until_exited()
        finally:
            # After a forced exit the real process ends at once (os._exit); this one lives on,
            # so let the abandoned teardown finish and close what it opened.
            app.stop.set()
            assert app.daemon_task is not None
            await asyncio.wait_for(app.daemon_task, 20)


def digest_of(text: str) -> str:
    from connect_devloop.descriptor import digest_of as digest

    return digest(text.encode())


# --- startup, saves, validation ----------------------------------------------------------------


async def test_startup_shows_every_host_installed(project: Path) -> None:
    async with (
        recording_addon() as addon,
        run_host(context_path="/jira") as jira,
        run_host(context_path="/wiki", product="confluence") as wiki,
    ):
        config = write_config(
            project,
            addon.url,
            [
                host_toml("jira", jira.base_url),
                host_toml("wiki", wiki.base_url, product="confluence"),
            ],
        )
        digest = digest_of(descriptor_text())
        async with dashboard(config) as board:
            await board.until(lambda: board.app.state.ready)
            await board.pilot.pause()
            for name, host, product in (("jira", jira, "jira"), ("wiki", wiki, "confluence")):
                assert board.cell(name, "state") == "✔ installed"
                assert board.cell(name, "revision") == digest[:7]
                assert board.cell(name, "product") == product
                assert board.cell(name, "url") == host.base_url.removeprefix("http://")
                assert board.cell(name, "reason") == "startup"
                assert board.cell(name, "enabled") == "enabled"
                assert board.cell(name, "took").endswith(("ms", "s"))
                assert [i.key for i in host.record.installs] == ["test-addon"]
            header = board.text(DescriptorHeader)
            assert "test-addon  atlassian-connect.json  digest " + digest in header
            assert "✔ valid" in header
            assert "● ready" in header
            public = board.supervisor.public_url
            assert board.text(TunnelBar).split() == ["tunnel", "none", public, "●", "up"]
            assert not board.app.query_one(HostProblems).has_class("-problems")
            log = "\n".join(line.text for line in board.app.query_one(EventLog).lines)
            assert "[jira]  installed test-addon in" in log
            assert "[wiki]  installed test-addon in" in log


async def test_a_save_shows_reinstalling_then_installed_with_the_new_digest(
    project: Path,
) -> None:
    async with recording_addon() as addon, run_host(install_delay_ms=600) as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with dashboard(config) as board:
            await board.until_installed("jira", digest_of(descriptor_text()))
            edited = descriptor_text(name="Edited")
            save(project / "atlassian-connect.json", edited)
            await board.until(lambda: board.cell("jira", "state").endswith(" re-installing"))
            assert board.cell("jira", "reason") == "saved"
            spinner_frame = board.cell("jira", "state")[0]
            assert spinner_frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
            assert "digest " + digest_of(edited) in board.text(DescriptorHeader)
            await board.until_installed("jira", digest_of(edited))
            assert jira.record.installs[-1].descriptor["name"] == "Edited"
            assert board.cell("jira", "reason") == "saved"


async def test_a_bad_save_shows_the_validation_panel_and_a_good_one_hides_it(
    project: Path,
) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        good = digest_of(descriptor_text())
        async with dashboard(config) as board:
            await board.until_installed("jira", good)
            panel = board.app.query_one(ValidationPanel)
            assert not panel.has_class("-invalid")
            save(project / "atlassian-connect.json", descriptor_text(key="bad key!"))
            await board.until(lambda: panel.has_class("-invalid"))
            assert panel.display
            assert panel.border_title == "atlassian-connect.json: 1 problem"
            assert (
                panel.border_subtitle == "the last good revision stays installed; fix it and save"
            )
            text = board.text(ValidationPanel)
            # line:column, JSON path, message
            assert (
                text
                == "2:3  $.key  'bad key!' may contain only letters, digits, '-', '.' and '_'\n"
            )
            header = board.text(DescriptorHeader)
            assert f"digest {good} (last good)" in header
            assert "✖ invalid: 1 problem" in header
            assert board.cell("jira", "state") == "✔ installed"  # the last good one stays

            save(project / "atlassian-connect.json", descriptor_text(name="Fixed"))
            await board.until(lambda: not panel.has_class("-invalid"))
            await board.until_installed("jira", digest_of(descriptor_text(name="Fixed")))
            assert not panel.display
            assert len(jira.record.installs) == 2


async def test_a_failed_host_shows_its_error_and_hint(project: Path) -> None:
    async with recording_addon() as addon, run_host() as good, run_host() as bad:
        config = write_config(
            project,
            addon.url,
            [host_toml("good", good.base_url), host_toml("bad", bad.base_url, password="nope")],
        )
        async with dashboard(config) as board:
            await board.until(lambda: board.app.state.ready)
            await board.until(lambda: board.cell("bad", "state") == "✖ failed")
            problems = board.app.query_one(HostProblems)
            assert problems.has_class("-problems")
            text = board.text(HostProblems)
            assert text.startswith(f"✖ bad failed: {bad.base_url} rejected the login of 'admin'")
            assert "\n  hint: Local SDK hosts (atlas-run) use admin/admin" in text
            assert "good" not in text
            assert "nope" not in text


# --- keys --------------------------------------------------------------------------------------


def two_hosts(project: Path, addon: RecordingAddon, a: EmulatedHost, b: EmulatedHost) -> Path:
    return write_config(
        project, addon.url, [host_toml("a", a.base_url), host_toml("b", b.base_url)]
    )


async def test_r_reinstalls_every_host_and_r_on_the_hosts_table_only_the_selected_one(
    project: Path,
) -> None:
    async with (
        recording_addon() as addon,
        run_host() as a,
        run_host() as b,
        dashboard(two_hosts(project, addon, a, b)) as board,
    ):
        await board.until(lambda: board.app.state.ready)
        await board.pilot.press("r")
        await a.wait_for(lambda r: len(r.installs) == 2, timeout=10)
        await b.wait_for(lambda r: len(r.installs) == 2, timeout=10)
        await board.until(lambda: board.cell("b", "reason") == "manual")
        await board.until_installed("b", digest_of(descriptor_text()))

        table = board.app.query_one(HostsTable)
        table.focus()
        await board.pilot.press("down")  # select host b
        assert table.selected_host == "b"
        await board.pilot.press("r")
        await b.wait_for(lambda r: len(r.installs) == 3, timeout=10)
        await board.until_installed("b", digest_of(descriptor_text()))
        await asyncio.sleep(0.3)
        assert len(a.record.installs) == 2, "r on the hosts table re-installed host a too"


async def test_d_uninstalls_the_selected_host_only(project: Path) -> None:
    async with (
        recording_addon() as addon,
        run_host() as a,
        run_host() as b,
        dashboard(two_hosts(project, addon, a, b)) as board,
    ):
        await board.until(lambda: board.app.state.ready)
        board.app.query_one(HostsTable).move_cursor(row=1)
        await board.pilot.press("d")
        await b.wait_for(lambda r: bool(r.uninstalls), timeout=10)
        await board.until(lambda: board.cell("b", "state") == "○ uninstalled")
        assert [u.key for u in b.record.uninstalls] == ["test-addon"]
        assert b.record.plugins == {}
        assert a.record.uninstalls == []
        assert "test-addon" in a.record.plugins
        assert board.cell("a", "state") == "✔ installed"
        ledger = Ledger(project / ".connect-dev" / "ledger.json")
        assert [e.host for e in ledger.entries()] == ["a"]


async def test_q_shows_the_teardown_per_host_and_exits_when_everything_is_uninstalled(
    project: Path,
) -> None:
    async with recording_addon() as addon, run_host() as a, run_host() as b:
        addon.uninstalled_delay = 0.6  # slow enough to see the teardown in progress
        async with dashboard(two_hosts(project, addon, a, b)) as board:
            await board.until(lambda: board.app.state.ready)
            await board.pilot.press("q")
            panel = board.app.query_one(TeardownPanel)
            await board.until(lambda: panel.has_class("-active"))
            assert panel.border_title == "Quitting: uninstalling from every host"
            progress = board.words(TeardownPanel)
            assert "a uninstalling…" in progress
            assert "b uninstalling…" in progress
            assert "quitting" in board.text(DescriptorHeader)
            # Keys that start something new are greyed out during teardown.
            assert board.app.check_action("reinstall_all", ()) is None
            await board.until(lambda: "✔ a uninstalled test-addon" in board.words(TeardownPanel))
            await board.until(lambda: "done tunnel and proxy closed" in board.words(TeardownPanel))
            await board.until_exited()
            assert board.app.return_code == 0
            assert "✔ b uninstalled test-addon" in board.words(TeardownPanel)
            assert [e.name for e in board.app.after_quit][-2:] == ["tunnel_closed", "stopped"]
        for host in (a, b):
            assert [u.key for u in host.record.uninstalls] == ["test-addon"]
            assert host.record.plugins == {}
        assert Ledger(project / ".connect-dev" / "ledger.json").entries() == []


async def test_a_second_ctrl_c_exits_at_once_with_130_and_keeps_the_ledger(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        addon.uninstalled_delay = 2.0  # a teardown that takes a while
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with dashboard(config) as board:
            await board.until(lambda: board.app.state.ready)
            await board.pilot.press("ctrl+c")
            await board.until(lambda: board.app.query_one(TeardownPanel).has_class("-active"))
            assert "jira uninstalling…" in board.words(TeardownPanel)
            started = time.monotonic()
            await board.pilot.press("ctrl+c")
            await board.until_exited(timeout=2)
            assert time.monotonic() - started < 1.0
            assert board.app.forced
            assert board.app.return_code == 130
            # What os._exit(130) leaves behind: the ledger still lists the install.
            entries = Ledger(project / ".connect-dev" / "ledger.json").entries()
            assert [(e.host, e.key) for e in entries] == [("jira", "test-addon")]


async def test_o_opens_the_selected_hosts_app_management_page(project: Path) -> None:
    async with (
        recording_addon() as addon,
        run_host() as a,
        run_host(context_path="/wiki") as b,
        dashboard(two_hosts(project, addon, a, b)) as board,
    ):
        await board.until(lambda: board.app.state.ready)
        board.app.query_one(HostsTable).move_cursor(row=1)
        await board.pilot.press("o")
        await board.until(lambda: bool(board.opened))
        assert board.opened == [f"{b.base_url}/plugins/servlet/upm"]
        assert b.base_url.endswith("/wiki")


async def test_c_copies_the_public_url_and_l_focuses_the_log(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with dashboard(config) as board:
            await board.until(lambda: board.app.state.ready)
            await board.pilot.press("c")
            assert board.app.clipboard == board.supervisor.public_url
            await board.pilot.press("l")
            assert isinstance(board.app.focused, EventLog)


async def test_v_validates_now(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with dashboard(config) as board:
            await board.until(lambda: board.app.state.ready)
            before = len(board.events.of("descriptor_loaded"))
            await board.pilot.press("v")
            assert len(board.events.of("descriptor_loaded")) == before + 1
            assert board.app.state.descriptor_valid
            assert len(jira.record.installs) == 1  # unchanged: nothing to install


async def test_enter_opens_the_request_and_host_details(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with dashboard(config) as board, aiohttp.ClientSession() as session:
            await board.until(lambda: board.app.state.ready)
            proxy = board.supervisor.proxy
            assert proxy is not None
            url = f"{proxy.url}/page?jwt=eyJhbGciOiJIUzI1NiJ9.e30.sig&x=1"
            async with session.get(url, headers={"Authorization": "JWT secret.token"}) as r:
                assert await r.text() == "page /page?jwt=eyJhbGciOiJIUzI1NiJ9.e30.sig&x=1"
            table = board.app.query_one(RequestTable)

            def at_cursor() -> str:
                request = table.request_at_cursor()
                return request.path if request is not None else ""

            await board.until(lambda: at_cursor().startswith("/page"))
            table.focus()
            await board.pilot.press("enter")
            assert isinstance(board.app.screen, RequestDetail)
            detail = rendered(board.app.screen.query_one("Static"))
            assert detail.startswith("GET /page?jwt=••••••&x=1\nstatus 200")
            assert "eyJhbGciOiJIUzI1NiJ9" not in detail
            await board.pilot.press("escape")
            assert not isinstance(board.app.screen, RequestDetail)

            board.app.query_one(HostsTable).focus()
            await board.pilot.press("enter")
            assert isinstance(board.app.screen, HostDetail)
            detail = " ".join(rendered(board.app.screen.query_one("Static")).split())
            assert detail.startswith(
                f"URL {jira.base_url} product jira user admin state ✔ installed"
            )
            await board.pilot.press("escape")


# --- under load --------------------------------------------------------------------------------

FLOOD = 1000
BURST = 25
BURST_EVERY_S = 0.1
# The app answers a key (the focus visibly moves) after at most the flush in progress and one
# redraw of a bounded table: measured 20-40 ms typically and 0.2 s at worst while the requests go
# through, 0.4 s with the machine's two cores shared by four busy processes; hence 0.75 s.
ANSWER_BOUND_S = 0.75
# pilot.press returns once the app has handled the key and the whole test process has been idle
# for 20 ms (textual._wait.wait_for_idle, called twice, each capped at 1 s). The paced producer
# leaves such gaps: 0.3 s typically, 0.7 s at worst when run alone; with the cores oversubscribed
# the idle waits run into their caps and past them (2.8 s seen with four busy loops on two
# cores). So the bound is well above the two caps plus the answer bound, and well below what
# an app that stops answering costs (pilot would then wait 30 s): the answer bound above is
# the responsiveness check, this one only catches a hang.
PRESS_BOUND_S = 5.0


async def test_a_flood_of_requests_keeps_key_presses_answered(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with dashboard(config) as board, aiohttp.ClientSession() as session:
            await board.until(lambda: board.app.state.ready)
            await board.pilot.pause()
            proxy = board.supervisor.proxy
            assert proxy is not None
            base = board.app.state.request_count
            flushes_before = board.app.flushes

            async def one(n: int) -> None:
                async with session.get(f"{proxy.url}/flood/{n}") as response:
                    await response.read()
                    assert response.status == 200

            async def produce() -> None:
                # Bursts of 25 concurrent requests every 100 ms: 1,000 real round trips through
                # the proxy to the add-on in about 4 s. Paced, because pilot.press waits until
                # the whole test process is idle for 20 ms (textual._wait.wait_for_idle), and
                # the producer, the proxy and the add-on all run in this process.
                for start in range(0, FLOOD, BURST):
                    began = time.monotonic()
                    await asyncio.gather(*(one(n) for n in range(start, start + BURST)))
                    await asyncio.sleep(max(0.0, BURST_EVERY_S - (time.monotonic() - began)))

            started = time.monotonic()
            producer = asyncio.create_task(produce())
            presses: list[float] = []
            answers: list[float] = []
            log = board.app.query_one(EventLog)
            requests = board.app.query_one(RequestTable)
            while not producer.done():
                for key, focused in (("l", log), ("tab", requests)):
                    began = time.monotonic()
                    press = asyncio.create_task(board.pilot.press(key))
                    while board.app.focused is not focused and not press.done():  # noqa: ASYNC110
                        await asyncio.sleep(0.002)
                    answers.append(time.monotonic() - began)
                    await press
                    presses.append(time.monotonic() - began)
                    assert board.app.focused is focused
                await asyncio.sleep(0.05)
            await producer
            elapsed = time.monotonic() - started
            await board.until(lambda: board.app.state.request_count == base + FLOOD)
            await board.pilot.pause(2 * FLUSH_INTERVAL)

            assert len(presses) >= 4, (
                f"the flood ended before the keys were tried ({elapsed:.1f} s)"
            )
            assert max(answers) < ANSWER_BOUND_S, f"slowest answer {max(answers):.2f} s"
            assert max(presses) < PRESS_BOUND_S, f"slowest press {max(presses):.2f} s"
            # Batched: at most one flush per interval (plus the presses' own), not one per request.
            flushes = board.app.flushes - flushes_before
            assert flushes <= elapsed / FLUSH_INTERVAL + len(presses) + 5, flushes
            # Bounded: the table, the state and the log do not grow with the flood.
            assert requests.row_count == MAX_ROWS == MAX_RECENT_REQUESTS
            assert len(board.app.state.recent_requests) == MAX_RECENT_REQUESTS
            assert str(requests.border_title).startswith(f"Requests {base + FLOOD:,}")
            last = requests.get_row_at(requests.row_count - 1)
            assert last[2].plain.startswith("/flood/")
            assert not any("/flood/" in line.text for line in log.lines)
