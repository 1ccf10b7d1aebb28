"""The daemon as every front end starts it: ``up`` (``cli``), ``demo`` and the dashboard (``tui``).

``make_supervisor`` builds it from the config, ``run_until_signalled`` runs it until SIGINT or
SIGTERM, ``install_signal_handlers`` gives those signals their two steps (teardown, then exit at
once), and ``attach_log``/``wants_dashboard`` choose what shows it. The exit codes live here too,
below the CLI that picks them: 0 clean, 1 runtime failure, 2 usage or config error, 130 forced quit.

Heavy modules are imported inside the functions, so importing this one (the CLI does, for
``--help`` too) stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import asyncio

    from .config import Config
    from .events import EventBus
    from .supervisor import Supervisor

__all__ = [
    "EXIT_FAILURE",
    "EXIT_FORCED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FORCED_EXIT",
    "attach_log",
    "install_signal_handlers",
    "make_supervisor",
    "run_until_signalled",
    "wants_dashboard",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_FORCED = 130
FORCED_EXIT = "forced exit; run `connect-dev down` to remove what is left."


def wants_dashboard(stream: TextIO, log_format: str | None, no_tui: bool) -> bool:
    """The dashboard when ``stream`` is a terminal and neither --no-tui nor --log-format says
    otherwise (a chosen log format means someone reads the lines)."""
    return not no_tui and log_format is None and stream.isatty()


def attach_log(bus: EventBus, stream: TextIO, log_format: str | None, no_tui: bool) -> None:
    """Log lines for a run without the dashboard (see ``wants_dashboard``)."""
    from .render import JsonLinesRenderer, TextRenderer

    del no_tui  # the caller chose the log already; kept for callers' signatures
    # Buffered: a flood of requests costs one write and flush per turn of the event loop, not
    # per line. Lines still reach the stream within that turn, and render.flush_all() writes
    # what is held whenever the run ends (see run_until_signalled, install_signal_handlers).
    if log_format == "json":
        bus.subscribe(JsonLinesRenderer(stream, buffered=True))
    else:
        bus.subscribe(TextRenderer(stream, buffered=True))


def make_supervisor(config: Config, bus: EventBus) -> Supervisor:
    """The one place `up`, `demo` and the dashboard build the daemon from the config.

    With a terminal on stdin, hosts without a password are asked for one here, before the
    daemon (and any dashboard) starts.
    """
    from .credentials import prepare_password_sources
    from .inspection import ConnectInspector
    from .keychain import ngrok_authtoken_lookup
    from .ledger import Ledger, ensure_state_dir
    from .supervisor import Supervisor

    # Before any prompt, server or screen: a state directory connect-dev cannot write, or a
    # damaged ledger, stops the command with one line instead of failing every install later.
    ensure_state_dir(config.ledger_path.parent, probe=True)
    Ledger(config.ledger_path).entries()

    supervisor: Supervisor | None = None

    def served_descriptor() -> bytes | None:
        # The descriptor as the proxy serves it now: its baseUrl and lifecycle paths.
        proxy = supervisor.proxy if supervisor is not None else None
        return proxy.descriptor if proxy is not None else None

    inspector = ConnectInspector.for_config(config, bus.emit, served_descriptor)
    supervisor = Supervisor(
        config,
        bus,
        password_sources=prepare_password_sources(config.hosts),
        inspector=inspector,
        ngrok_authtoken_lookup=ngrok_authtoken_lookup,
        # A replay re-signs a request with the sharedSecret the inspector stored for its tenant.
        signer=inspector.signing_secret,
    )
    return supervisor


async def run_until_signalled(
    config: Config,
    bus: EventBus,
    *,
    forced: str = FORCED_EXIT,
    before_forced_exit: Callable[[], None] | None = None,
) -> int:
    """Run the daemon until SIGINT or SIGTERM (see ``install_signal_handlers`` for
    ``forced`` and ``before_forced_exit``)."""
    import asyncio

    from .render import flush_all

    stop = asyncio.Event()
    install_signal_handlers(stop, forced=forced, before_forced_exit=before_forced_exit)
    try:
        return await make_supervisor(config, bus).run(stop)
    finally:
        # The last lines (teardown, `stopped`, or those before a crash) are out before the
        # loop closes and before any traceback on stderr.
        flush_all()


def install_signal_handlers(
    stop: asyncio.Event,
    *,
    prefix: str = "connect-dev",
    doing: str = "uninstalling (press Ctrl-C again to quit at once)",
    forced: str = FORCED_EXIT,
    before_forced_exit: Callable[[], None] | None = None,
) -> None:
    """First SIGINT/SIGTERM: graceful teardown. Second: exit at once; for `up`, the ledger
    keeps what is left for `connect-dev down`. ``before_forced_exit`` runs just before that
    exit, which skips every ``finally`` (the demo removes its temporary directory there); it
    must not raise.

    Explicit handlers rather than KeyboardInterrupt: a command started in the background of a
    non-interactive shell inherits SIGINT ignored, and Python then raises nothing for it.
    ``add_signal_handler`` replaces an inherited SIG_IGN, so such a process still stops.
    """
    import asyncio
    import signal

    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        # Act first, tell after: with a closed pipe (`up | head`) the message cannot be
        # written, and that must never keep a signal from stopping us.
        if stop.is_set():
            if before_forced_exit is not None:
                before_forced_exit()
            _say(f"{prefix}: {forced}")
            os._exit(EXIT_FORCED)
        stop.set()
        _say(f"{prefix}: {signal.Signals(signum).name}: {doing}")

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


def _say(message: str) -> None:
    """A line on stderr that may fail (closed pipe) without consequence. The log lines held
    in buffers go first: every line emitted before it is out, even before an ``os._exit``."""
    from .render import flush_all

    flush_all()  # never raises: a closed pipe only ends the log
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)
