"""``connect-dev``: arguments → settings → run. The only module that prints errors, configures
logging and picks exit codes (0 clean, 1 runtime failure, 2 usage or config error, 130 forced
quit). Heavy modules (aiohttp, watchfiles, textual) are imported inside the commands so that
``connect-dev --help`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .daemon import (
    EXIT_FAILURE,
    EXIT_FORCED,
    EXIT_OK,
    EXIT_USAGE,
    attach_log,
    install_signal_handlers,
    run_until_signalled,
    wants_dashboard,
)

if TYPE_CHECKING:
    from .config import Config
    from .errors import DevloopError

__all__ = ["main", "run_up", "version"]


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


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, with an option and its value written once (``-o, --output PATH``)
    as Python 3.13 writes it, so the help is the same on every Python connect-dev runs on
    (docs/commands.md is checked against it: scripts/commands_doc.py); and lines never broken
    inside a hyphenated word such as connect-dev."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        value = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {value}"

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )


class _Parser(argparse.ArgumentParser):
    """Every parser of connect-dev; ``add_subparsers`` makes its commands of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


class _VersionAction(argparse.Action):
    """``--version``: read from the installed package's metadata only when asked, so that
    building the parser stays cheap."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"connect-dev {version()}", flush=True)
        parser.exit()


def version() -> str:
    """The version of the installed distribution (pyproject.toml's), or the package's own
    when it runs from a source tree that was never installed."""
    from importlib import metadata

    try:
        return metadata.version("connect-devloop")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def _build_parser() -> argparse.ArgumentParser:
    # Typed as the base class: the commands' modules take a ``_SubParsersAction[ArgumentParser]``
    # (argparse still makes every command a _Parser).
    parser: argparse.ArgumentParser = _Parser(
        prog="connect-dev",
        description="A dev loop for Atlassian Connect add-ons written in any language: serves "
        "atlassian-connect.json through a tunnel, installs it on your dev hosts, re-installs "
        "on every save, and uninstalls on exit.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="run the dev loop (Ctrl-C: uninstall and quit)",
        # The two wordings of render.text.STOP_DASHBOARD and STOP_TEXT (cheaper than importing
        # them; tests/test_cli_help.py holds them together).
        description="Serve the descriptor through the proxy and the tunnel, install the add-on "
        "on every host of connect-dev.toml, re-install it on every save, and show it all in "
        "the dashboard (q or Ctrl-C: uninstall and quit) or as log lines (Ctrl-C: uninstall "
        "and quit).",
    )
    _add_config(up)
    _add_log_options(up)
    up.set_defaults(command="up", run=_cmd_up)

    down = commands.add_parser(
        "down",
        help="uninstall whatever an earlier run left installed",
        description="Uninstall every add-on the ledger (.connect-dev/ledger.json) lists, with "
        "the hosts and credentials of connect-dev.toml, and stop a tunnel process that a "
        "killed `up` left running.",
    )
    _add_config(down)
    down.set_defaults(command="down", run=_cmd_down)

    validate = commands.add_parser(
        "validate",
        help="check a descriptor (and the Forge manifest) offline",
        description="Check a descriptor offline: JSON, key, baseUrl, authentication, "
        "lifecycle, scopes and modules; and the project's Forge manifest with it. A .yml or "
        ".yaml file is checked as a Forge manifest alone. Exit 1 on any error.",
    )
    _add_config(validate)
    validate.add_argument(
        "descriptor",
        nargs="?",
        metavar="DESCRIPTOR",
        help="the file to check (default: the descriptor of connect-dev.toml, else "
        "./atlassian-connect.json)",
    )
    validate.set_defaults(command="validate", run=_cmd_validate)

    host = commands.add_parser(
        "host",
        help="run the emulated Jira/Confluence host",
        description="Run an emulated Jira or Confluence site on 127.0.0.1 in the foreground, "
        "until Ctrl-C: UPM REST installs, signed lifecycle callbacks, its install keys, and "
        "the /_emulator/ control API (docs/emulated-host.md).",
    )
    host.add_argument(
        "--port",
        type=int,
        default=2990,
        metavar="N",
        help="port on 127.0.0.1; 0 = any free port (default: %(default)s)",
    )
    host.add_argument(
        "--context",
        default="/jira",
        metavar="PATH",
        help='context path: /jira, /wiki, or "" for none (default: %(default)s)',
    )
    host.add_argument(
        "--product",
        choices=("jira", "confluence"),
        default=None,
        help="product type (default: confluence for /wiki or /confluence, else jira)",
    )
    host.add_argument(
        "--flavour",
        choices=("cloud", "server"),
        default="cloud",
        help="cloud has the development-mode setting, server has none (default: %(default)s)",
    )
    host.add_argument(
        "--user",
        action="append",
        metavar="NAME:PASSWORD",
        help="an admin account; repeatable (default: admin:admin)",
    )
    host.add_argument(
        "--dev-mode",
        choices=("on", "off"),
        default="on",
        help="Cloud development mode; off refuses descriptor-URL installs (default: %(default)s)",
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
        help="refused: fail descriptor-URL installs as Cloud does since 2026; Forge installs "
        "work (default: %(default)s)",
    )
    host.add_argument(
        "--reinstall-secret",
        choices=("new", "keep"),
        default="new",
        help="what a re-install in place carries: a new sharedSecret (Cloud) or the one it "
        "has (older Connect) (default: %(default)s)",
    )
    host.add_argument(
        "--forge-deploy-delay",
        type=int,
        default=0,
        metavar="MS",
        help="time each deploy of the emulated Forge CLI takes, in ms (default: %(default)s)",
    )
    host.add_argument(
        "--ping-after",
        type=int,
        default=100,
        metavar="MS",
        help="pingAfter of install tasks, in ms (default: %(default)s)",
    )
    host.add_argument(
        "--install-delay",
        type=int,
        default=0,
        metavar="MS",
        help="extra time each install takes, in ms (default: %(default)s)",
    )
    _add_verbose(host)
    host.set_defaults(command="host", run=_cmd_host)
    host_actions = host.add_subparsers(title="actions", metavar="ACTION")
    fire = host_actions.add_parser(
        "fire",
        help="fire a webhook on a running emulated host",
        description="Make a running `connect-dev host` send EVENT to every installed app that "
        "declares it in modules.webhooks, and print each delivery (status, time, URL). Exit 1 "
        "when none was delivered or one failed.",
    )
    fire.add_argument("event", metavar="EVENT", help="e.g. jira:issue_created, page_updated")
    fire.add_argument("--issue", metavar="KEY", help="the issue (Jira; default: the newest)")
    fire.add_argument("--page", metavar="ID", help="the page (Confluence; default: the newest)")
    fire.add_argument("--key", metavar="APP", help="only to this app (default: every app)")
    fire.add_argument(
        "--host",
        metavar="URL",
        default="http://127.0.0.1:2990",
        help="the emulated host (default: http://127.0.0.1:2990)",
    )
    _add_verbose(fire)
    fire.set_defaults(command="host fire", run=_cmd_host_fire)

    demo = commands.add_parser(
        "demo",
        help="emulated host + sample add-on + `up`, on loopback, no account needed",
        description="Start an emulated Jira and a sample add-on on 127.0.0.1, and run `up` "
        "against them in a project directory: edit its descriptor and watch it re-install. No "
        "account needed; nothing leaves this machine. Where things are is printed first (on "
        "stderr with --log-format json). The host, the add-on and a temporary directory go "
        "away on exit.",
    )
    demo.add_argument(
        "--dir",
        metavar="DIR",
        default=None,
        help="project directory, kept after exit (default: a temporary one, removed on exit)",
    )
    _add_log_options(demo)
    demo.add_argument(
        "--forge",
        action="store_true",
        help="the Forge path: deploy and install with the Forge CLI's emulation (docs/forge.md)",
    )
    _add_verbose(demo)
    demo.set_defaults(command="demo", run=_cmd_demo)

    # init: a commented connect-dev.toml from flags or a few questions.
    from .commands import init as init_command

    init_command.add_parser(commands, _add_verbose)

    # login, logout, token, open: secrets in the keychain and host-signed requests.
    from .commands.credentials import add_parsers

    add_parsers(commands, _add_config)
    from .commands import forge as forge_commands  # forge convert: manifest.yml from the descriptor

    forge_commands.add_parsers(commands, _add_config)
    # requests, replay: the traffic inspector of a running `up`, over its control socket.
    from .commands import traffic as traffic_commands

    traffic_commands.add_parsers(commands, _add_config)
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="connect-dev.toml, or a directory holding one (default: ./connect-dev.toml)",
    )
    _add_verbose(parser)


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    """``up`` and ``demo``: the dashboard on a terminal, else log lines (``wants_dashboard``)."""
    parser.add_argument(
        "--no-tui",
        action="store_true",
        help="log lines instead of the dashboard (default: the dashboard when stdout is a "
        "terminal)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="log lines instead of the dashboard: text, or json with one object per line "
        "(default: the dashboard on a terminal, else text)",
    )


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
    from .commands.forge import manifest_to_validate, validate_manifest_file
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
        reinstall_secret=args.reinstall_secret,
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


def _cmd_host_fire(args: argparse.Namespace) -> int:
    from .host.webhook_client import fire_remotely, report

    result = fire_remotely(args.host, args.event, issue=args.issue, page=args.page, key=args.key)
    lines, problem = report(result)
    for line in lines:
        print(line, flush=True)
    if problem is not None:
        raise problem
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
