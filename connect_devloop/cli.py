"""``connect-dev``: arguments → settings → run. The only module that prints errors, configures
logging and picks exit codes (0 clean, 1 runtime failure, 2 usage or config error, 130 forced
quit). Heavy modules (aiohttp, watchfiles, textual) are imported inside the commands so that
``connect-dev --help`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import asyncio

    from .config import Config
    from .errors import DevloopError
    from .events import EventBus
    from .supervisor import Supervisor

__all__ = [
    "attach_log",
    "install_signal_handlers",
    "main",
    "make_supervisor",
    "run_until_signalled",
    "run_up",
    "wants_dashboard",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_FORCED = 130


def main(argv: Sequence[str] | None = None) -> int:
    _heed_ignored_signals()
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .errors import ConfigError, DevloopError

    try:
        code: int = args.run(args)
        return code
    except ConfigError as exc:
        _print_error(exc)
        return EXIT_USAGE
    except DevloopError as exc:
        _print_error(exc)
        return EXIT_FAILURE
    except OSError as exc:
        # The last resort: each command maps the errors it expects to a DevloopError where
        # they happen; one that slips through still gets a line, not a traceback.
        _print_error(_os_error(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FORCED


def _heed_ignored_signals() -> None:
    """A background job of a non-interactive shell starts with SIGINT (and maybe SIGTERM)
    ignored; Python then raises no KeyboardInterrupt. Until a command installs its own
    handlers (``install_signal_handlers``), restore the defaults, so that even start-up (the
    demo's host and add-on, a password prompt) stops on them."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connect-dev",
        description="A dev loop for Atlassian Connect add-ons written in any language: serves "
        "atlassian-connect.json through a tunnel, installs it on your dev hosts, re-installs "
        "on every save, and uninstalls on exit.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    up = commands.add_parser("up", help="run the dev loop until Ctrl-C")
    _add_config(up)
    up.add_argument("--no-tui", action="store_true", help="log lines instead of the dashboard")
    up.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="text (default without a terminal) or json: one object per line",
    )
    up.set_defaults(command="up", run=_cmd_up)

    down = commands.add_parser("down", help="uninstall whatever an earlier run left installed")
    _add_config(down)
    down.set_defaults(command="down", run=_cmd_down)

    validate = commands.add_parser("validate", help="check a descriptor offline")
    _add_config(validate)
    validate.add_argument("descriptor", nargs="?", help="descriptor file (default: from config)")
    validate.set_defaults(command="validate", run=_cmd_validate)

    host = commands.add_parser("host", help="run the emulated Jira/Confluence host")
    host.add_argument("--port", type=int, default=2990, help="port on 127.0.0.1 (0 = any free)")
    host.add_argument("--context", default="/jira", help='context path, e.g. /jira, /wiki, ""')
    host.add_argument(
        "--product",
        choices=("jira", "confluence"),
        default=None,
        help="product type (default: confluence for /wiki or /confluence)",
    )
    host.add_argument(
        "--flavour",
        choices=("cloud", "server"),
        default="cloud",
        help="cloud has the development-mode setting; server has none",
    )
    host.add_argument(
        "--user",
        action="append",
        metavar="NAME:PASSWORD",
        help="an admin account (repeatable; default admin:admin)",
    )
    host.add_argument(
        "--dev-mode",
        choices=("on", "off"),
        default="on",
        help="Cloud development mode (off refuses descriptor-URL installs)",
    )
    host.add_argument(
        "--require-signed-install",
        action="store_true",
        help='refuse JWT descriptors without "apiMigrations": {"signed-install": true}',
    )
    host.add_argument(
        "--descriptor-installs",
        choices=("allowed", "refused"),
        default="allowed",
        help="refused: fail descriptor-URL installs as Cloud does since 2026 (Forge installs work)",
    )
    host.add_argument(
        "--forge-deploy-delay",
        type=int,
        default=0,
        metavar="MS",
        help="time each deploy of the emulated Forge CLI takes, in ms",
    )
    host.add_argument(
        "--ping-after", type=int, default=100, metavar="MS", help="pingAfter of install tasks in ms"
    )
    host.add_argument(
        "--install-delay",
        type=int,
        default=0,
        metavar="MS",
        help="extra time each install takes, in ms",
    )
    _add_verbose(host)
    host.set_defaults(command="host", run=_cmd_host)

    demo = commands.add_parser(
        "demo", help="emulated host + sample add-on + `up`, on loopback, no account needed"
    )
    demo.add_argument("--dir", default=None, help="project directory (default: a temporary one)")
    demo.add_argument("--no-tui", action="store_true", help="log lines instead of the dashboard")
    demo.add_argument("--log-format", choices=("text", "json"), default=None)
    demo.add_argument(
        "--forge",
        action="store_true",
        help="the Forge path: deploy and install with the Forge CLI's emulation (docs/forge.md)",
    )
    _add_verbose(demo)
    demo.set_defaults(command="demo", run=_cmd_demo)

    # login, logout, token, open: secrets in the keychain and host-signed requests.
    from .commands_credentials import add_parsers

    add_parsers(commands, _add_config)
    from . import commands_forge  # forge convert: manifest.yml from the descriptor

    commands_forge.add_parsers(commands, _add_config)
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="connect-dev.toml (default: ./connect-dev.toml)",
    )
    _add_verbose(parser)


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    # Accepted after the command too (`connect-dev up -v`); SUPPRESS keeps the top-level value.
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging on stderr",
    )


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # aiohttp logs every aborted client connection at ERROR; they are expected here.
        logging.getLogger("aiohttp").setLevel(logging.CRITICAL)


def _os_error(exc: OSError) -> DevloopError:
    import errno

    from .errors import DevloopError

    logging.getLogger(__name__).debug("unexpected OSError", exc_info=exc)
    where = exc.filename if exc.filename is not None else "connect-dev"
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "Check the permissions of that path and the directories above it."
    elif exc.errno == errno.ENOSPC:
        hint = "Free some disk space and run the command again."
    else:
        hint = "Run again with -v for details; please report it if the cause is not clear."
    return DevloopError(f"{where}: {reason}", hint)


def _print_error(exc: DevloopError) -> None:
    print(f"connect-dev: error: {exc}", file=sys.stderr)
    if exc.hint:
        print(f"  hint: {exc.hint}", file=sys.stderr)


# --- up / demo ----------------------------------------------------------------------------------


def _cmd_up(args: argparse.Namespace) -> int:
    from .config import find_config, load_config

    config = load_config(find_config(args.config))
    return run_up(config, log_format=args.log_format, no_tui=args.no_tui)


def run_up(config: Config, *, log_format: str | None, no_tui: bool) -> int:
    """Run the dev loop in the foreground with signal handling: the dashboard on a terminal,
    else one line per event."""
    import asyncio

    if wants_dashboard(sys.stdout, log_format, no_tui):
        from .tui import run_dashboard

        return asyncio.run(run_dashboard(config))

    from . import eventloop
    from .events import EventBus

    bus = EventBus()
    attach_log(bus, sys.stdout, log_format, no_tui)
    return eventloop.run(run_until_signalled(config, bus))


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

    supervisor = Supervisor(
        config,
        bus,
        password_sources=prepare_password_sources(config.hosts),
        inspector=ConnectInspector.for_config(config, bus.emit, served_descriptor),
        ngrok_authtoken_lookup=ngrok_authtoken_lookup,
    )
    return supervisor


async def run_until_signalled(config: Config, bus: EventBus) -> int:
    import asyncio

    from .render import flush_all

    stop = asyncio.Event()
    install_signal_handlers(stop)
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
    forced: str = "forced exit; run `connect-dev down` to remove what is left.",
) -> None:
    """First SIGINT/SIGTERM: graceful teardown. Second: exit at once; for `up`, the ledger
    keeps what is left for `connect-dev down`.

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


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        project_dir=args.dir, log_format=args.log_format, no_tui=args.no_tui, forge=args.forge
    )


# --- down ---------------------------------------------------------------------------------------


def _cmd_down(args: argparse.Namespace) -> int:
    import asyncio

    from .config import find_config, load_config
    from .events import EventBus
    from .render import TextRenderer
    from .supervisor import run_down

    config = load_config(find_config(args.config))
    bus = EventBus()
    bus.subscribe(TextRenderer(sys.stdout))
    removed, left = asyncio.run(run_down(config, bus))
    if removed == 0 and left == 0:
        print(f"nothing to remove: the ledger ({config.ledger_path}) is empty")
        return EXIT_OK
    print(f"removed {removed} install(s); {left} left in {config.ledger_path}")
    return EXIT_OK if left == 0 else EXIT_FAILURE


# --- validate -----------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import descriptor
    from .commands_forge import manifest_to_validate, validate_manifest_file
    from .config import CONFIG_FILE_NAME, find_config, load_config
    from .errors import DescriptorError

    # A Forge manifest (docs/forge.md) is checked when named, and the project's with the
    # descriptor.
    config = None
    if args.descriptor is not None:
        path = Path(args.descriptor)
        if path.suffix.lower() in (".yml", ".yaml"):
            return validate_manifest_file(path)
    elif args.config is not None or Path(CONFIG_FILE_NAME).is_file():
        config = load_config(find_config(args.config))
        path = config.descriptor_path
    else:
        path = Path("atlassian-connect.json")
    manifest = manifest_to_validate(config, path)
    try:
        revision = descriptor.load(path)
    except DescriptorError as exc:
        for problem in exc.problems:
            print(problem.format(str(path)))
        count = len(exc.problems)
        print(f"{path}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
        if manifest is not None:
            validate_manifest_file(manifest)
        return EXIT_FAILURE
    for warning in revision.warnings:
        print(f"warning: {warning.format(str(path))}")
    print(f"{path}: ok: {revision.key} (digest {revision.digest})")
    if manifest is not None:
        return validate_manifest_file(manifest)
    return EXIT_OK


# --- host ---------------------------------------------------------------------------------------


def _cmd_host(args: argparse.Namespace) -> int:
    import asyncio

    from .errors import ConfigError
    from .host import EmulatedHost, HostSettings, serve_forever

    users: dict[str, str] = {}
    for item in args.user or ["admin:admin"]:
        name, sep, password = item.partition(":")
        if not sep or not name:
            raise ConfigError(
                f"--user {item!r}: expected NAME:PASSWORD", hint="e.g. --user admin:admin"
            )
        users[name] = password
    context = "/" + args.context.strip("/") if args.context.strip("/") else ""
    product = args.product or ("confluence" if context in ("/wiki", "/confluence") else "jira")
    settings = HostSettings(
        port=args.port,
        context_path=context,
        product=product,
        flavour=args.flavour,
        users=users,
        dev_mode=args.dev_mode == "on",
        ping_after_ms=args.ping_after,
        install_delay_ms=args.install_delay,
        require_signed_install=args.require_signed_install,
        descriptor_installs_refused=args.descriptor_installs == "refused",
        forge_deploy_delay_ms=args.forge_deploy_delay,
    )

    listening = False

    def on_ready(host: EmulatedHost) -> None:
        nonlocal listening
        listening = True
        print(f"emulated {product} ({args.flavour}) at {host.base_url}", flush=True)
        print(f"  UPM REST:   {host.base_url}/rest/plugins/1.0/", flush=True)
        print(f"  install keys: CONNECT_KEYS_CDN_URL={host.keys_url}", flush=True)
        print(f"  record:     {host.origin}/_emulator/record", flush=True)
        print(f"  forge:      CONNECT_DEV_FORGE_EMULATOR_URL={host.base_url}", flush=True)
        print("  users:      " + ", ".join(users), flush=True)

    async def serve() -> None:
        stop = asyncio.Event()
        install_signal_handlers(
            stop, prefix="connect-dev host", doing="stopping", forced="forced exit"
        )
        await serve_forever(settings, on_ready=on_ready, stop=stop)

    try:
        asyncio.run(serve())
    except OSError as exc:
        if listening:  # not the bind: e.g. stdout closed; cli.main says what it was
            raise
        raise ConfigError(
            f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}",
            hint="Pick another --port (0 = any free port).",
        ) from exc
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
