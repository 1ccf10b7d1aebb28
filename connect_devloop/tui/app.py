"""The dashboard: `connect-dev up` as a live Textual app.

The daemon (``daemon.make_supervisor``) runs with its own ``stop`` event, on a thread and event loop
of its own (``daemon_thread``), so that no redraw holds up a proxied request. Its events reach the
panels only through the bus: the subscriber appends each event to an inbox and posts one
``EventsPending``; the app folds the whole inbox into ``State`` with the shared reducer and
updates every panel once, at most every ``FLUSH_INTERVAL``. A flood of requests therefore costs
ten redraws a second, whatever its rate, and every list is bounded.

Quitting (``q``, Ctrl-C, SIGTERM) sets ``stop`` and shows the teardown host by host until the
daemon returns; a second Ctrl-C exits at once with 130 and leaves the ledger for
``connect-dev down``, as the text mode does.

The traffic inspector: a request's card shows its captured exchange (``inspector.py``), ``/``
filters the requests, and ``p`` (or ``r``/``e`` on the card) replays one; every way of asking
for a replay posts ``ReplayRequested``, handled here, and the outcome opens beside the original.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import webbrowser
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Protocol, TextIO

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from ..config import Config
from ..daemon import EXIT_FAILURE, EXIT_FORCED
from ..errors import DevloopError
from ..events import AddonOutput, Event, EventBus, RequestServed
from ..render.text import STOP_DASHBOARD, TextRenderer
from ..state import HostState, State, reduce
from ..traffic.editor import has_request
from ..traffic.replay import ReplayError
from .addon_output import AddonOutputPanel
from .daemon_thread import ThreadedDaemon
from .event_log import EventLog
from .filter_bar import FilterBar
from .footer import DashboardFooter
from .format import SPINNER
from .header import DescriptorHeader
from .host_detail import HostDetail
from .host_problems import HostProblems
from .hosts import HostsTable
from .inspector import (
    NOT_CAPTURING,
    captured_detail,
    offers_unchanged,
    replay_via,
    traffic_of,
)
from .messages import BrowserOpened, DaemonExited, EventsPending, LogLine, ReplayRequested
from .model import TeardownStep, Tenant, teardown_steps, track_teardown, track_tenants
from .replay import ReplayFailed, ReplayResult
from .request_detail import RequestDetail
from .requests import RequestTable
from .teardown import TeardownPanel
from .tunnel import TunnelBar
from .validation import ValidationPanel

__all__ = ["FLUSH_INTERVAL", "Daemon", "DaemonFactory", "DashboardApp", "run_dashboard"]

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1  # seconds between two redraws at most: 10 per second under any flood
SPINNER_INTERVAL = 0.1
DAEMON_SWITCH_INTERVAL = 0.001  # seconds; see run_dashboard
UPM_PAGE = "/plugins/servlet/upm"


class Daemon(Protocol):
    """What the dashboard drives: ``Supervisor`` (or a fake in tests). A daemon may also offer
    ``traffic`` and ``replay`` (``inspector.Inspectable``) for the request card and replays."""

    async def run(self, stop: asyncio.Event) -> int: ...

    def reinstall(self, host: str | None = None, *, reason: str = "manual") -> None: ...

    async def uninstall(self, host: str) -> bool: ...

    def validate_now(self) -> None: ...


DaemonFactory = Callable[[Config, EventBus], Daemon]
Opener = Callable[[str], object]
Editor = Callable[[str], "str | None"]  # the request to edit -> as saved (None: not saved)


class DashboardApp(App[None]):
    """``daemon`` runs from mount until teardown; it must emit on ``bus``. Without one the app
    shows only ``events`` (replayed state, as the snapshot tests do)."""

    TITLE = "connect-dev"
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = "#requests"
    # Below 100 columns the footer keeps its essential keys (footer.py); below 30 rows the
    # panels under the hosts give up height so that the requests keep a few rows.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    CSS = """
    #hosts-box {
        height: auto;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    #hosts-box:focus-within {
        border: round $accent;
    }
    Screen.-narrow DashboardFooter FooterKey.-optional {
        display: none;
    }
    Screen.-short #host-problems {
        max-height: 5;
    }
    Screen.-short #log {
        min-height: 5;
    }
    Screen.-short #requests {
        min-height: 6;
    }
    """
    BINDINGS = [
        Binding("r", "reinstall_all", "Re-install all"),
        Binding("d", "uninstall", "Uninstall host"),
        # Short enough that "/ Filter" and "p Replay" leave "q Quit" on a 120-column footer.
        Binding("o", "open_host", "Open UPM"),
        Binding("c", "copy_url", "Copy URL"),
        Binding("v", "validate", "Validate"),
        Binding("l", "focus_log", "Log"),
        Binding("q", "quit", "Quit", tooltip=STOP_DASHBOARD),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        config: Config,
        *,
        daemon: Daemon | None,
        bus: EventBus | None = None,
        events: Iterable[Event] = (),
        notes: Sequence[str] = (),
        opener: Opener | None = None,
        handle_signals: bool = False,
        capture_logging: bool = False,
        clock: Callable[[], float] = time.time,
        editor: Editor | None = None,
    ) -> None:
        """``clock``: wall-clock seconds, for how long a Forge CLI step has been running (a
        replay passes the moment it shows). ``editor``: edits a request before its replay
        (by default ``$VISUAL``/``$EDITOR`` with the screen handed over to it)."""
        super().__init__()
        self.config = config
        self.bus = bus or EventBus()
        self.state = State.initial([host.name for host in config.hosts])
        self.tenants: Mapping[str, Tenant] = {}
        self.teardown: Mapping[str, TeardownStep] = {}
        self.quitting = False
        self.forced = False
        self.failure: BaseException | None = None
        self.after_quit: list[Event] = []  # printed again once the screen is gone
        self.daemon = daemon
        self._opener = opener or open_in_browser
        self._handle_signals = handle_signals
        self._capture_logging = capture_logging
        self._clock = clock
        self._editor = editor or self._edit_in_terminal
        self._notes = tuple(notes)
        self.stop = asyncio.Event()  # set to tear down: the daemon's own stop
        self.daemon_task: asyncio.Task[int] | None = None
        self._inbox: deque[Event] = deque(events)
        self._flush_posted = False
        self._last_flush = float("-inf")
        self.flushes = 0  # redraws from events; the flood test holds it to 10 a second
        self._requests_shown = 0
        self._frame = 0
        self._descriptor = descriptor_label(config)
        self._unsubscribe: Callable[[], None] | None = None
        self._saved_log_handlers: list[logging.Handler] | None = None

    def compose(self) -> ComposeResult:
        yield DescriptorHeader(self._descriptor, id="header")
        yield TunnelBar(id="tunnel")
        yield ValidationPanel(self._descriptor, id="validation")
        yield TeardownPanel(id="teardown")
        with Vertical(id="hosts-box"):
            yield HostsTable(self.config.hosts, id="hosts")
            yield HostProblems(id="host-problems")
        yield EventLog(id="log")
        yield AddonOutputPanel(id="addon-output")
        yield RequestTable(id="requests")
        yield FilterBar(id="request-filter")
        yield DashboardFooter()

    def on_mount(self) -> None:
        self.query_one("#hosts-box").border_title = "Hosts"
        self._spinner = self.set_interval(SPINNER_INTERVAL, self._spin, pause=True)
        log = self.query_one(EventLog)
        for note in self._notes:
            log.note(note)
        self._unsubscribe = self.bus.subscribe(self._receive)
        if self._capture_logging:
            self._route_logging_here()
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self.action_interrupt)
        self._flush_events()
        if self.daemon is not None:
            # A task, not a Textual worker: workers are cancelled when the app exits, and a
            # teardown must never be cut short by the screen closing (see run_dashboard).
            self.daemon_task = asyncio.create_task(self._run_daemon(), name="connect-dev up")

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._saved_log_handlers is not None:
            logging.getLogger().handlers = self._saved_log_handlers
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    # --- events in ----------------------------------------------------------------------------

    def _receive(self, event: Event) -> None:
        """The bus subscriber: cheap, and safe from any thread (``post_message`` is)."""
        self._inbox.append(event)
        if not self._flush_posted:
            self._flush_posted = True
            self.post_message(EventsPending())

    def feed(self, *events: Event) -> None:
        """Show ``events`` as if the daemon had emitted them (tests, replays)."""
        for event in events:
            self._receive(event)

    @property
    def events_pending(self) -> bool:
        """True while received events are not on screen yet (they are rendered in batches)."""
        return self._flush_posted or bool(self._inbox)

    def on_events_pending(self, _: EventsPending) -> None:
        wait = self._last_flush + FLUSH_INTERVAL - time.monotonic()
        if wait > 0:
            self.set_timer(wait, self._flush_events)
        else:
            self._flush_events()

    def _flush_events(self) -> None:
        self._flush_posted = False
        self.flushes += 1
        batch: list[Event] = []
        while self._inbox:
            batch.append(self._inbox.popleft())
        self._last_flush = time.monotonic()
        state, tenants, teardown = self.state, self.tenants, self.teardown
        for event in batch:
            state = reduce(state, event)
            tenants = track_tenants(tenants, event)
            if self.quitting:
                teardown = track_teardown(teardown, event)
                if not isinstance(event, RequestServed):
                    self.after_quit.append(event)
        self.state, self.tenants, self.teardown = state, tenants, teardown
        self._render(batch)

    def _render(self, batch: Sequence[Event]) -> None:
        state = self.state
        self.query_one(DescriptorHeader).show(state, self._phase(), self._phase(short=True))
        self.query_one(TunnelBar).show(state)
        self.query_one(ValidationPanel).show(state)
        self.query_one(HostsTable).show(state, self.tenants, self._frame, self._clock())
        self.query_one(HostProblems).show(state)
        if self.quitting:
            steps = teardown_steps(state, self.teardown)
            self.query_one(TeardownPanel).show(steps, state.stopped, self._frame)
        # The add-on's own lines have their panel, as the requests have theirs.
        self.query_one(EventLog).add(e for e in batch if not isinstance(e, AddonOutput))
        self.query_one(AddonOutputPanel).show(state, batch)
        new = state.request_count - self._requests_shown
        if new:
            shown = state.recent_requests[-min(new, len(state.recent_requests)) :]
            requests = self.query_one(RequestTable)
            requests.add(shown, state.request_count)
            requests.set_title(requests_title(state))
            self._requests_shown = state.request_count
        if self._spinning():
            self._spinner.resume()
        else:
            self._spinner.pause()

    def _spinning(self) -> bool:
        if self.state.stopped or self.daemon is None:
            return False  # replayed events (no daemon) are one still picture
        if self.quitting or not self.state.ready:
            return True
        return any(h.state == HostState.INSTALLING or h.step for h in self.state.hosts.values())

    def _spin(self) -> None:
        self._frame += 1
        self._render(())

    def _phase(self, *, short: bool = False) -> Text:
        """``short``: in fewer words, for a narrow terminal."""
        spinner = SPINNER[self._frame % len(SPINNER)]
        if self.state.stopped:
            return Text("stopped", "dim")
        if self.quitting:
            return Text(f"{spinner} quitting", "bold yellow")
        if not self.state.ready:
            return Text(f"{spinner} starting", "yellow")
        hosts = self.state.hosts.values()
        installed = sum(1 for host in hosts if host.state == HostState.INSTALLED)
        if installed < len(hosts):
            if short:
                return Text(f"● {installed}/{len(hosts)} installed", "yellow")
            return Text(f"● ready · waiting: {installed}/{len(hosts)} hosts installed", "yellow")
        if self.state.addon.answering is False:
            return Text(
                "● add-on not answering" if short else "● ready · add-on not answering", "yellow"
            )
        return Text("● ready", "green")

    # --- the daemon ---------------------------------------------------------------------------

    async def _run_daemon(self) -> int:
        assert self.daemon is not None
        try:
            code = await self.daemon.run(self.stop)
        except Exception as exc:
            self.failure = exc
            self.post_message(DaemonExited(EXIT_FAILURE, exc))
            return EXIT_FAILURE
        self.post_message(DaemonExited(code))
        return code

    def on_daemon_exited(self, message: DaemonExited) -> None:
        self._flush_events()
        if not self.forced:
            self.exit(return_code=message.code)

    # --- keys ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.quitting and action in (
            "reinstall_all",
            "reinstall_selected",
            "uninstall",
            "open_host",
            "validate",
        ):
            return None  # shown, greyed out: nothing new starts during teardown
        return True

    def action_reinstall_all(self) -> None:
        if self._ready_to_install():
            assert self.daemon is not None
            self.daemon.reinstall()

    def action_reinstall_selected(self) -> None:
        host = self.query_one(HostsTable).selected_host
        if host is not None and self._ready_to_install():
            assert self.daemon is not None
            self.daemon.reinstall(host)

    def _ready_to_install(self) -> bool:
        if self.daemon is None:
            self.notify("Not running: nothing to re-install.", severity="warning")
            return False
        if not self.state.digest:
            self.notify(
                f"Nothing to install: {self._descriptor} has not been valid yet.",
                severity="warning",
            )
            return False
        return True

    def action_uninstall(self) -> None:
        host = self.query_one(HostsTable).selected_host
        if host is None:
            return
        if self.daemon is None:
            self.notify("Not running: nothing to uninstall.", severity="warning")
            return
        self.run_worker(self._uninstall(self.daemon, host), name=f"uninstall {host}")

    async def _uninstall(self, daemon: Daemon, host: str) -> None:
        removed = await daemon.uninstall(host)
        self._flush_events()
        status = self.state.hosts.get(host)
        if removed and status is not None and status.state != HostState.UNINSTALLED:
            self.notify(f"{host}: nothing was installed.")

    def action_open_host(self) -> None:
        table = self.query_one(HostsTable)
        host = table.selected_host
        config = table.config_of(host) if host is not None else None
        if config is None:
            self.notify("This host is not in connect-dev.toml.", severity="warning")
            return
        url = config.base_url + UPM_PAGE
        self.run_worker(partial(self._open_in_browser, url), thread=True, name="browser")

    def _open_in_browser(self, url: str) -> None:
        """Runs in a thread (a browser can take seconds to start): it posts, never touches."""
        try:
            opened, error = bool(self._opener(url)), ""
        except Exception as exc:
            opened, error = False, str(exc) or type(exc).__name__
        self.post_message(BrowserOpened(url, opened, error))

    def on_browser_opened(self, message: BrowserOpened) -> None:
        if message.opened:
            self.notify(f"Opened {message.url}")
            return
        why = f" ({message.error})" if message.error else ""
        self.copy_to_clipboard(message.url)
        self.notify(
            f"No graphical browser here{why}. Copied {message.url} to the clipboard.",
            severity="warning",
            timeout=10,
        )

    def action_copy_url(self) -> None:
        url = self.state.tunnel_url
        if not url:
            self.notify("No public URL yet.", severity="warning")
            return
        self.copy_to_clipboard(url)
        self.notify(f"Copied {url}")

    def action_validate(self) -> None:
        if self.daemon is None:
            return
        self.daemon.validate_now()
        self._flush_events()
        if self.state.descriptor_valid:
            self.notify(f"{self._descriptor} is valid (digest {self.state.digest}).")
        else:
            count = len(self.state.descriptor_errors)
            self.notify(
                f"{self._descriptor}: {count} problem{'s' if count != 1 else ''}.",
                severity="error",
            )

    def action_focus_log(self) -> None:
        self.query_one(EventLog).focus()

    async def action_quit(self) -> None:
        if self.quitting:
            self.notify("Still uninstalling. Press ctrl+c to quit at once.")
            return
        self._begin_teardown()

    def action_interrupt(self) -> None:
        if self.quitting:
            self._force_exit()
        else:
            self._begin_teardown()

    def _begin_teardown(self) -> None:
        self.quitting = True
        self.refresh_bindings()
        if self.daemon is None:
            self.exit()
            return
        self.stop.set()
        self._flush_events()

    def _force_exit(self) -> None:
        self.forced = True
        self.exit(return_code=EXIT_FORCED)

    # --- details ------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#requests")
    def _show_request(self) -> None:
        request = self.query_one(RequestTable).request_at_cursor()
        if request is not None:
            traffic = traffic_of(self.daemon)
            capturing = self.config.inspector.capture
            detail, note = captured_detail(traffic, request, capturing=capturing)
            self.push_screen(RequestDetail(request, detail, note))

    @on(DataTable.RowSelected, "#hosts")
    def _show_host(self) -> None:
        table = self.query_one(HostsTable)
        host = table.selected_host
        if host is not None and host in self.state.hosts:
            self.push_screen(
                HostDetail(self.state.hosts[host], table.config_of(host), self.tenants.get(host))
            )

    # --- the requests' filter ------------------------------------------------------------------

    @on(RequestTable.FilterOpened)
    def _open_filter(self, message: RequestTable.FilterOpened) -> None:
        self.query_one(FilterBar).open(message.text)

    @on(Input.Changed, "#request-filter")
    def _filter_changed(self, message: Input.Changed) -> None:
        self.query_one(RequestTable).set_filter(message.value)

    @on(Input.Submitted, "#request-filter")
    def _filter_kept(self) -> None:
        self.query_one(FilterBar).close()
        self.query_one(RequestTable).focus()

    @on(FilterBar.Cancelled)
    def _filter_cleared(self) -> None:
        self.query_one(RequestTable).set_filter("")
        self.query_one(FilterBar).close()
        self.query_one(RequestTable).focus()

    # --- replays ------------------------------------------------------------------------------

    def on_replay_requested(self, message: ReplayRequested) -> None:
        number = message.id
        if self.quitting:
            self.notify("Quitting: nothing is replayed now.", severity="warning")
            return
        if not number:
            self.notify("This request was not captured: it cannot be replayed.", severity="warning")
            return
        if traffic_of(self.daemon) is None:
            self.notify(f"Cannot replay: {NOT_CAPTURING}.", severity="warning")
            return
        edited = message.edited
        if message.edit:
            edited = self._edit(number)
            if edited is None:
                return
        self.notify(f"Replaying request #{number}…", timeout=3)
        self.run_worker(self._replay(number, edited, message.unchanged), name=f"replay {number}")

    def _edit(self, number: int) -> str | None:
        """Request ``number`` as the user edited it; None when there is nothing to send."""
        traffic = traffic_of(self.daemon)
        assert traffic is not None
        try:
            edited = self._editor(traffic.editable(number))
        except DevloopError as exc:  # a binary body, no editor, an editor that failed
            self._replay_failed(number, exc, unchanged=False, edited=None)
            return None
        if edited is None or not has_request(edited):
            self.notify("Nothing sent: the edited request is empty.", severity="warning")
            return None
        return edited

    def _edit_in_terminal(self, text: str) -> str | None:
        """The editor on this terminal, the dashboard suspended meanwhile. The daemon goes on
        on its own thread: requests arriving meanwhile are on screen when the editor quits."""
        from ..traffic.editor import edit_in_editor

        try:
            with self.suspend():
                return edit_in_editor(text)
        except SuspendNotSupported:
            raise DevloopError(
                "this terminal cannot be handed over to an editor",
                hint="Edit and replay from another terminal: `connect-dev replay ID --edit`.",
            ) from None

    async def _replay(self, number: int, edited: str | None, unchanged: bool) -> None:
        try:
            outcome = await replay_via(self.daemon, number, edited=edited, unchanged=unchanged)
            result = outcome.to_dict()
        except DevloopError as exc:
            self._replay_failed(number, exc, unchanged=unchanged, edited=edited)
            return
        except Exception as exc:  # a bug must not take the dashboard (and the daemon) down
            logger.exception("replay of request %s failed", number)
            failure = DevloopError(f"the replay of request {number} failed: {exc!r}")
            self._replay_failed(number, failure, unchanged=unchanged, edited=edited)
            return
        self.push_screen(ReplayResult(result))

    def _replay_failed(
        self, number: int, error: DevloopError, *, unchanged: bool, edited: str | None
    ) -> None:
        offered = isinstance(error, ReplayError) and offers_unchanged(error, unchanged=unchanged)
        failed = ReplayFailed(
            number, error.message, error.hint, unchanged_offered=offered, edited=edited
        )
        self.push_screen(failed)

    # --- logging ------------------------------------------------------------------------------

    def _route_logging_here(self) -> None:
        """Log records would scribble over the screen; they go to the event log instead."""
        root = logging.getLogger()
        self._saved_log_handlers = root.handlers[:]
        bridge = _LogBridge(self)
        bridge.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.handlers = [bridge]

    def on_log_line(self, message: LogLine) -> None:
        self.query_one(EventLog).log_record(message.text, message.level, message.ts)


class _LogBridge(logging.Handler):
    def __init__(self, app: DashboardApp) -> None:
        super().__init__()
        self._app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._app.post_message(LogLine(text, record.levelno, record.created))


def open_in_browser(url: str) -> bool:
    """``webbrowser.open``, but never a text-mode browser (lynx, w3m): one started from here
    would fight the dashboard for the terminal. False when there is no graphical one."""
    graphical = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not graphical:
        return False
    return webbrowser.open(url)


def descriptor_label(config: Config) -> str:
    """The descriptor as the user named it: relative to the config file when it is beside it."""
    try:
        return str(config.descriptor_path.relative_to(config.project_dir))
    except ValueError:
        return str(config.descriptor_path)


def requests_title(state: State) -> str:
    parts = [f"Requests {state.request_count:,}"]
    if state.jwt_rejected:
        parts.append(f"{state.jwt_rejected:,} JWT rejected")
    if state.request_errors:
        parts.append(f"{state.request_errors:,} failed (5xx)")
    return " · ".join(parts)


async def run_dashboard(
    config: Config,
    *,
    notes: Sequence[str] = (),
    daemon_factory: DaemonFactory | None = None,
    stream: TextIO | None = None,
) -> int:
    """Run the dashboard until the daemon has torn down; return the exit code. The teardown's
    lines are printed to ``stream`` afterwards, since the screen they were on is gone."""
    if daemon_factory is None:
        from ..daemon import make_supervisor

        daemon_factory = make_supervisor
    out = stream or sys.stdout
    bus = EventBus()
    # Built before the screen is taken over: building may ask for a password on the terminal.
    # It runs on a thread of its own, so no redraw holds up a proxied request (daemon_thread).
    daemon = ThreadedDaemon(daemon_factory(config, bus))
    # While Textual renders, the daemon's thread waits for the interpreter's lock at most this
    # long (the default is 5 ms, which a request under a flood would pay at p99).
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(DAEMON_SWITCH_INTERVAL)
    try:
        return await _run_app(config, daemon, bus, notes, out)
    finally:
        sys.setswitchinterval(switch_interval)


async def _run_app(
    config: Config, daemon: Daemon, bus: EventBus, notes: Sequence[str], out: TextIO
) -> int:
    app = DashboardApp(
        config,
        daemon=daemon,
        bus=bus,
        notes=notes,
        handle_signals=True,
        capture_logging=True,
    )
    await app.run_async()
    task = app.daemon_task
    if app.forced:
        _print_after(app.after_quit, out)
        print(
            "connect-dev: forced exit; run `connect-dev down` to remove what is left.",
            file=sys.stderr,
            flush=True,
        )
        # As in the text mode: what is still running is abandoned, and the ledger keeps it.
        os._exit(EXIT_FORCED)
    if task is not None and not task.done():
        # The screen closed before the teardown (the dashboard itself failed): tear down
        # anyway, in the text log, so nothing is left installed.
        from ..daemon import install_signal_handlers

        bus.subscribe(TextRenderer(out))
        # The screen's signal handlers left with it; without these SIGTERM would kill the
        # teardown. A signal now is a second one: it quits at once, as in the text mode.
        install_signal_handlers(app.stop)
        app.stop.set()
        await task
        return EXIT_FAILURE
    _print_after(app.after_quit, out)
    if app.failure is not None:
        raise app.failure
    return app.return_code if app.return_code is not None else EXIT_FAILURE


def _print_after(events: Sequence[Event], out: TextIO) -> None:
    renderer = TextRenderer(out)
    for event in events:
        renderer(event)
    out.flush()
